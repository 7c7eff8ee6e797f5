"""Sections of README.md shown in the site as they are, read at build time (a MkDocs hook).

A page holding `<!-- readme-section: TITLE -->` gets the body of the README's
`## TITLE` section in its place (down to the next `## ` heading), with its
`###` headings shifted to `##` so they nest under the page title. The README
keeps the measured figures; the site shows the same text, never a copy that
could fall behind.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parent.parent / "README.md"
MARKER = re.compile(r"<!-- readme-section: (.+?) -->")


def readme_section(title: str, text: str | None = None) -> str:
    """The body of README.md's `## title` section; a missing section is an error naming the ones there."""
    text = README.read_text(encoding="utf-8") if text is None else text
    sections = re.split(r"^## ", text, flags=re.M)[1:]
    for section in sections:
        heading, _, body = section.partition("\n")
        if heading.strip() == title:
            return re.sub(r"^###", "##", body.strip(), flags=re.M) + "\n"
    names = [s.partition("\n")[0].strip() for s in sections]
    raise ValueError(f"README.md has no section '## {title}'; its sections: {names}")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs hook: put the named README sections in place of their markers."""
    return MARKER.sub(lambda m: readme_section(m.group(1).strip()), markdown)
