"""The README stays a reference: small enough to read, with links that lead somewhere."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _local_links(page: Path) -> list[str]:
    return [t for t in _LINK.findall(page.read_text()) if "://" not in t and ":" not in t]


def test_the_readme_is_at_most_20_kb_with_contents() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.encode()) <= 20480
    assert "## Contents" in text


def test_links_of_the_readme_and_the_docs_resolve() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = [
        f"{page.relative_to(ROOT)} -> {target}"
        for page in pages
        for target in _local_links(page)
        if not (page.parent / target).exists()
    ]
    assert not broken
