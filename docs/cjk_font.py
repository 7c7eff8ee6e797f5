"""The site's bundled CJK font: the characters of Noto Sans CJK SC that the pages use, as a small WOFF.

Chinese text on the site (the 中文 navigation label, the Chinese getting-started page, examples
in other pages) must read on a machine with no CJK font at all, where the system fallback of
the font stack (docs/assets/stylesheets/llmos.css) finds nothing and shows boxes. So the site
ships `assets/fonts/llmos-cjk-sc.woff`, a subset of Noto Sans CJK SC (SIL Open Font License,
see OFL.txt beside it) holding only the CJK characters of docs/**/*.md, mkdocs.yml and the
README sections the site includes; the stylesheet names it last before `sans-serif`, so a
reader's own CJK font still wins. A page that adds characters needs the file made again
(tests/test_docs_examples.py says which characters are missing):

    apt-get install fonts-noto-cjk   # the source font (or pass --source PATH to a Noto Sans CJK file)
    .venv/bin/python docs/cjk_font.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FONT = ROOT / "docs" / "assets" / "fonts" / "llmos-cjk-sc.woff"
SOURCE = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
# CJK radicals to ideographs (punctuation, kana, Hangul and the unified ideographs), compatibility
# ideographs, full-width forms: the stylesheet's unicode-range for the font says the same.
CJK_RANGES = ((0x2E80, 0x9FFF), (0xF900, 0xFAFF), (0xFF00, 0xFFEF))


def is_cjk(char: str) -> bool:
    return any(low <= ord(char) <= high for low, high in CJK_RANGES)


def site_texts() -> list[Path]:
    """The files whose text the site shows: its pages, its navigation, the README it includes."""
    return [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "mkdocs.yml", ROOT / "README.md"]


def cjk_characters() -> set[str]:
    return {c for path in site_texts() for c in path.read_text(encoding="utf-8") if is_cjk(c)}


def font_characters(path: Path = FONT) -> set[str]:
    from fontTools.ttLib import TTFont

    return {chr(code) for code in TTFont(path).getBestCmap()}


def make_font(source: Path, out: Path = FONT) -> int:
    """Write the subset of `source` (Noto Sans CJK; its SC face when a collection) to `out`."""
    from fontTools import subset
    from fontTools.ttLib import TTCollection, TTFont

    if source.suffix.lower() == ".ttc":
        faces = TTCollection(source).fonts
        font = next(f for f in faces if "SC" in f["name"].getDebugName(1))
    else:
        font = TTFont(source)
    options = subset.Options()
    options.flavor = "woff"  # zlib: no brotli needed; far smaller than the OTF
    options.layout_features = ["*"]
    options.name_IDs = ["*"]
    options.notdef_outline = True
    subsetter = subset.Subsetter(options)
    characters = sorted(cjk_characters())
    subsetter.populate(unicodes=[ord(c) for c in characters])
    subsetter.subset(font)
    out.parent.mkdir(parents=True, exist_ok=True)
    font.flavor = "woff"
    font.save(out)
    return len(characters)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=SOURCE, help="Noto Sans CJK (.ttc or the SC .otf)")
    options = parser.parse_args()
    count = make_font(options.source)
    print(f"{FONT.relative_to(ROOT)}: {count} characters, {FONT.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
