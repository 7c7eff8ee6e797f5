"""Layer 6 (data): read a labelled-text file (text + class label per example) for classification.

One reader for fine-tuning and evaluating classifiers, chosen by suffix:

- ``.tsv``: ``label<TAB>text`` per line, with an optional header row naming the
  columns (``label``, and ``text`` or ``sentence``) in either order, so the
  GLUE SST-2 file (``label<TAB>sentence``, header included) and GLUE's original
  ``sentence<TAB>label`` both read. No quoting: a quote is part of the text.
- ``.csv``: a header row with a ``text`` (or ``sentence``) and a ``label``
  column; standard CSV quoting.
- ``.jsonl`` (``.json`` too): one object per line, ``{"text": ..., "label": ...}``
  (``sentence`` accepted for ``text``). A ``.json`` file holding one JSON array
  of such objects reads as well.

Labels are names (``positive``) or integer ids (``1``). Given ``label_names``
(a classifier's, from its config) names map to their index and ids must be in
range; otherwise the label set comes from the file: sorted names, or, when
every label is an integer, the ids as they are with names ``"0"``, ``"1"``, ...
Every error names the file, the line and the value at fault.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmos.data.jsonl import DataError, jsonl_records

LABELLED_SUFFIXES = (".tsv", ".csv", ".jsonl", ".json")
TEXT_FIELDS = ("text", "sentence")
LABEL_FIELD = "label"

_INTEGER = re.compile(r"[+-]?\d+")


@dataclass
class LabelledData:
    """Examples as parallel lists: texts[i] has class labels[i], named label_names[labels[i]]."""

    texts: list[str]
    labels: list[int]
    label_names: list[str]
    source: str  # the file, for messages

    def __len__(self) -> int:
        return len(self.texts)

    def head(self, n: int | None) -> LabelledData:
        """The first n examples (all when n is None), same label set."""
        if n is None:
            return self
        return LabelledData(self.texts[:n], self.labels[:n], self.label_names, self.source)


def read_labelled(path: str | Path, label_names: list[str] | None = None) -> LabelledData:
    """Read `path` (.tsv, .csv, .jsonl or .json) as labelled texts; see the module docstring."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in LABELLED_SUFFIXES:
        raise DataError(f"{path}: a labelled-text file must end in one of {list(LABELLED_SUFFIXES)}, "
                        f"not {suffix or 'no suffix'!r}")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    readers = {".tsv": _read_tsv, ".csv": _read_csv, ".jsonl": _read_jsonl, ".json": _read_json}
    rows = list(readers[suffix](path))
    if not rows:
        raise DataError(f"{path}: the file holds no examples (expected {_FORMATS[suffix]})")
    texts = [text for _, text, _ in rows]
    if label_names is not None:
        if not label_names:
            raise DataError("label_names is empty; give the classifier's label names, or None to read them "
                            "from the file")
        labels = [_label_id(raw, list(label_names), path, line) for line, _, raw in rows]
        return LabelledData(texts, labels, list(label_names), str(path))
    raws = [raw for _, _, raw in rows]
    if all(isinstance(raw, int) for raw in raws):
        for line, _, raw in rows:
            if raw < 0:
                raise DataError(f"{path}:{line}: label {raw} is negative; integer labels are class ids 0, 1, ...")
        return LabelledData(texts, list(raws), [str(i) for i in range(max(raws) + 1)], str(path))
    names = sorted({str(raw) for raw in raws})
    index = {name: i for i, name in enumerate(names)}
    return LabelledData(texts, [index[str(raw)] for raw in raws], names, str(path))


_FORMATS = {
    ".tsv": "label<TAB>text lines, optionally under a header row",
    ".csv": "a header row with text and label columns, then one row per example",
    ".jsonl": 'one {"text": ..., "label": ...} object per line',
    ".json": 'one {"text": ..., "label": ...} object per line, or a JSON array of them',
}


def _label_id(raw: int | str, names: list[str], path: Path, line: int) -> int:
    if str(raw) in names:
        return names.index(str(raw))
    if isinstance(raw, int) and 0 <= raw < len(names):
        return raw
    raise DataError(f"{path}:{line}: label {raw!r} is not in the label set; valid: names {names} "
                    f"or ids 0..{len(names) - 1}")


def _parse_label(value: Any, path: Path, line: int) -> int | str:
    """A label as an int id or a str name; JSON numbers must be whole."""
    if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
        raise DataError(f"{path}:{line}: label {json.dumps(value)} is not a class name or integer id")
    if isinstance(value, float):
        if not value.is_integer():
            raise DataError(f"{path}:{line}: label {value} is not a whole number; ids are 0, 1, ...")
        return int(value)
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if not text:
        raise DataError(f"{path}:{line}: the label is empty")
    return int(text) if _INTEGER.fullmatch(text) else text


def _check_text(value: Any, path: Path, line: int) -> str:
    if not isinstance(value, str):
        raise DataError(f"{path}:{line}: the text must be a string, got {json.dumps(value)[:60]}")
    if not value.strip():
        raise DataError(f"{path}:{line}: the text is empty")
    return value


def _columns(header: list[str]) -> tuple[int, int] | None:
    """(text column, label column) when `header` names them, else None."""
    names = [h.strip().lower() for h in header]
    text = next((names.index(f) for f in TEXT_FIELDS if f in names), None)
    label = names.index(LABEL_FIELD) if LABEL_FIELD in names else None
    if text is None or label is None:
        return None
    return text, label


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its newline) for each line; utf-8, BOM tolerated."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            for number, line in enumerate(f, 1):
                yield number, line.rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _read_tsv(path: Path) -> Iterator[tuple[int, str, int | str]]:
    text_col, label_col, width = 1, 0, 2
    first = True
    for number, line in _lines(path):
        if not line.strip():
            continue
        fields = line.split("\t")
        if first:
            first = False
            columns = _columns(fields)
            if columns is not None:
                (text_col, label_col), width = columns, len(fields)
                continue
        if len(fields) < width:
            raise DataError(f"{path}:{number}: expected {width} tab-separated columns (label<TAB>text), "
                            f"found {len(fields)}: {line[:60]!r}")
        if width == 2:  # no header: everything after the first tab is the text
            fields = line.split("\t", 1)
        yield number, _check_text(fields[text_col], path, number), _parse_label(fields[label_col], path, number)


def _read_csv(path: Path) -> Iterator[tuple[int, str, int | str]]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            while header is not None and not any(h.strip() for h in header):
                header = next(reader, None)
            if header is None:
                return
            columns = _columns(header)
            if columns is None:
                raise DataError(f"{path}:{reader.line_num}: the header {header} needs a 'text' (or 'sentence') "
                                "column and a 'label' column")
            text_col, label_col = columns
            for fields in reader:
                number = reader.line_num
                if not any(f.strip() for f in fields):
                    continue
                if len(fields) != len(header):
                    raise DataError(f"{path}:{number}: expected {len(header)} columns ({', '.join(header)}), "
                                    f"found {len(fields)}")
                yield number, _check_text(fields[text_col], path, number), _parse_label(fields[label_col], path,
                                                                                        number)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise DataError(f"{path}: not valid CSV: {exc}") from None


def _record(obj: Any, path: Path, where: int) -> tuple[int, str, int | str]:
    if not isinstance(obj, dict):
        raise DataError(f"{path}:{where}: expected a JSON object with 'text' and 'label', "
                        f"got {type(obj).__name__}")
    text_key = next((k for k in TEXT_FIELDS if k in obj), None)
    missing = [name for name, present in (("text", text_key), (LABEL_FIELD, LABEL_FIELD in obj)) if not present]
    if missing:
        raise DataError(f"{path}:{where}: the record has no {' or '.join(repr(m) for m in missing)} field "
                        f"(its keys: {sorted(obj)})")
    return where, _check_text(obj[text_key], path, where), _parse_label(obj[LABEL_FIELD], path, where)


def _read_jsonl(path: Path) -> Iterator[tuple[int, str, int | str]]:
    for number, obj in jsonl_records(path):
        yield _record(obj, path, number)


def _read_json(path: Path) -> Iterator[tuple[int, str, int | str]]:
    try:
        content = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not content.lstrip().startswith("["):
        yield from _read_jsonl(path)
        return
    try:
        items = json.loads(content)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    starts = _item_lines(content, len(items))
    for i, obj in enumerate(items):
        yield _record(obj, path, starts[i])


def _item_lines(content: str, count: int) -> list[int]:
    """The line each top-level array item starts on (a decoder pass, so messages can name lines)."""
    decoder, lines, pos = json.JSONDecoder(), [], content.index("[") + 1
    for _ in range(count):
        while content[pos] in " \t\r\n,":
            pos += 1
        lines.append(content.count("\n", 0, pos) + 1)
        _, pos = decoder.raw_decode(content, pos)
    return lines
