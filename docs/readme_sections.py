"""Sections of README.md shown in the site as they are, read at build time (a MkDocs hook).

A page holding `<!-- readme-section: TITLE -->` gets the body of the README's
`## TITLE` section in its place (down to the next `## ` heading), with its
`###` headings kept (they nest under the page's own `##` headings); with
`<!-- readme-section: TITLE | from START -->` the body begins at its first line
that starts with START. The README
keeps the measured figures; the site shows the same text, never a copy that
could fall behind.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parent.parent / "README.md"
MARKER = re.compile(r"<!-- readme-section: (.+?)(?: \| from (.+?))? -->")


def readme_section(title: str, start: str | None = None, text: str | None = None) -> str:
    """The body of README.md's `## title` section (from its first line starting with `start`);
    a missing section or start line is an error naming what is there."""
    text = README.read_text(encoding="utf-8") if text is None else text
    sections = re.split(r"^## ", text, flags=re.M)[1:]
    for section in sections:
        heading, _, body = section.partition("\n")
        if heading.strip() == title:
            if start is not None:
                lines = body.splitlines()
                first = next((i for i, line in enumerate(lines) if line.startswith(start)), None)
                if first is None:
                    raise ValueError(f"README.md's section '## {title}' has no line starting with {start!r}")
                body = "\n".join(lines[first:])
            return body.strip() + "\n"
    names = [s.partition("\n")[0].strip() for s in sections]
    raise ValueError(f"README.md has no section '## {title}'; its sections: {names}")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs hook: put the named README sections in place of their markers."""
    return MARKER.sub(lambda m: readme_section(m.group(1).strip(), m.group(2)), markdown)
