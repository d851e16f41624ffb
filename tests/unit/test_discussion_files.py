"""Discussion files are replaced whole, even when two writers race for the same file."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rt_server.records.discussions import _write


def test_concurrent_writes_of_one_file_all_land(tmp_path: Path) -> None:
    target = tmp_path / "discussions" / "call.md"
    writers = 8
    start = threading.Barrier(writers)

    def write(n: int) -> None:
        start.wait()
        _write(target, f"version {n}\n" * 2000)

    with ThreadPoolExecutor(writers) as pool:
        for future in [pool.submit(write, n) for n in range(writers)]:
            future.result()  # a rename of another writer's partial file would raise here

    lines = set(target.read_text(encoding="utf-8").splitlines())
    assert len(lines) == 1 and lines.pop().startswith("version ")
    assert [p.name for p in target.parent.iterdir()] == ["call.md"]
