"""A throwaway PostgreSQL cluster: initdb in a temporary directory, started on a free
loopback port, stopped and removed afterwards. Tests using it are marked ``postgres``.

PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` user
(Debian's package creates it) or ``nobody``. ``initdb`` is found on PATH or under
``/usr/lib/postgresql/*/bin`` (Debian does not put it on PATH).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rt_server.serving import free_port


def find_bin() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres, or None."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True):
        return Path(candidate).parent
    return None


def _run_as() -> list[str]:
    if os.geteuid() != 0:
        return []
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        return ["runuser", "-u", user, "--"]
    raise RuntimeError("running as root and no postgres or nobody user to run PostgreSQL as")


@dataclass
class Cluster:
    """One PostgreSQL server; ``url(db)`` is a ``postgresql://`` URL for database ``db``."""

    bin: Path
    root: Path
    port: int
    user: str = "rt"

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def _run(self, program: str, *args: str) -> None:
        argv = [*_run_as(), str(self.bin / program), *args]
        subprocess.run(argv, check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        if os.geteuid() == 0:
            account = pwd.getpwnam(_run_as()[2])
            os.chown(self.root, account.pw_uid, account.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", self.user, "-A", "trust", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -h 127.0.0.1 -k {self.root} -c fsync=off -c max_connections=300"
        log = str(self.root / "log")
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "-t", "30", "start"
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "30", "-m", "fast", "stop")

    async def create_database(self, name: str) -> str:
        """A new empty database; its ``postgresql://`` URL."""
        import asyncpg  # type: ignore[import-untyped]

        conn = await asyncpg.connect(self.url())
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return self.url(name)


def start_cluster() -> Cluster:
    bin = find_bin()
    assert bin is not None
    root = Path(tempfile.mkdtemp(prefix="rt-pg-"))
    cluster = Cluster(bin, root, free_port())
    cluster.init()
    cluster.start()
    return cluster


def remove_cluster(cluster: Cluster) -> None:
    try:
        cluster.stop()
    finally:
        shutil.rmtree(cluster.root, ignore_errors=True)
