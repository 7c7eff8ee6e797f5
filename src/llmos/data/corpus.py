"""Layer 6 (data): find corpus files and read them as a stream of documents.

A corpus is given as files, folders (searched recursively) and glob patterns.
What counts as one document:

- ``.jsonl``: one document per line, the string in ``text_field`` (default
  ``"text"``); blank lines are skipped.
- ``.txt`` (also ``.text``, ``.md``, ``.rst``): the whole file is one document,
  unless it is longer than ``max_document_chars``; then it is cut at blank-line
  runs into documents of about that size, so a single big book (say
  tinyshakespeare) still gives the train/validation split something to split.

Invalid UTF-8 is replaced with U+FFFD, counted, and reported once per file with
a warning that names the file and the count. Files are read line by line, so a
multi-gigabyte text file never sits in memory whole.
"""

from __future__ import annotations

import codecs
import glob
import json
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

from llmos.errors import LLMOSError

TEXT_SUFFIXES = frozenset({".txt", ".text", ".md", ".rst"})
JSONL_SUFFIXES = frozenset({".jsonl"})
CORPUS_SUFFIXES = TEXT_SUFFIXES | JSONL_SUFFIXES
DEFAULT_MAX_DOCUMENT_CHARS = 65_536

_GLOB_CHARS = frozenset("*?[")


class CorpusError(LLMOSError):
    """A corpus path, file or record that cannot be read as documents."""


class _ReplacementCounter:
    """A codec error handler that replaces invalid bytes with U+FFFD and counts them."""

    name = "llmos.count_replace"

    def __init__(self) -> None:
        self.count = 0
        codecs.register_error(self.name, self)

    def __call__(self, exc: UnicodeError) -> tuple[str, int]:
        if not isinstance(exc, UnicodeDecodeError):
            raise exc
        self.count += 1
        return "\ufffd", exc.end


_COUNTER = _ReplacementCounter()


def _decode(line: bytes) -> tuple[str, int]:
    """Decode one line of bytes; return the text and how many invalid sequences were replaced."""
    try:
        return line.decode("utf-8"), 0
    except UnicodeDecodeError:
        before = _COUNTER.count
        text = line.decode("utf-8", errors=_COUNTER.name)
        return text, _COUNTER.count - before


def find_corpus_files(inputs: Iterable[str | Path]) -> list[Path]:
    """Resolve files, folders (recursive) and globs into a sorted, de-duplicated file list.

    An explicit file is always taken (read as text unless it ends in ``.jsonl``);
    folders and globs contribute only files with a corpus suffix
    (``.txt .text .md .rst .jsonl``). Raises CorpusError naming what was searched
    when nothing is found.
    """
    inputs = [str(i) for i in ([inputs] if isinstance(inputs, (str, Path)) else inputs)]
    if not inputs:
        raise CorpusError("no corpus inputs given; pass text/jsonl files, folders or globs")
    found: dict[Path, None] = {}
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_file():
            found[path.resolve()] = None
        elif path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and child.suffix.lower() in CORPUS_SUFFIXES:
                    found[child.resolve()] = None
        elif any(c in item for c in _GLOB_CHARS):
            for match in sorted(glob.glob(str(path), recursive=True)):
                m = Path(match)
                if m.is_dir():
                    for child in sorted(m.rglob("*")):
                        if child.is_file() and child.suffix.lower() in CORPUS_SUFFIXES:
                            found[child.resolve()] = None
                elif m.is_file() and m.suffix.lower() in CORPUS_SUFFIXES:
                    found[m.resolve()] = None
        else:
            raise CorpusError(
                f"corpus input {item!r} is not a file, a folder or a glob that exists"
            )
    if not found:
        raise CorpusError(
            f"no corpus files ({', '.join(sorted(CORPUS_SUFFIXES))}) found in: {', '.join(inputs)}"
        )
    return sorted(found)


class Corpus:
    """Documents read from corpus files, re-iterable, in a fixed order.

    ``invalid_utf8`` holds the number of invalid UTF-8 sequences replaced, per
    file, once a full pass has been made; each affected file is warned about
    once, however many passes are made.
    """

    def __init__(
        self,
        inputs: Iterable[str | Path] | str | Path,
        text_field: str = "text",
        max_document_chars: int = DEFAULT_MAX_DOCUMENT_CHARS,
    ) -> None:
        if max_document_chars < 1:
            raise CorpusError(f"max_document_chars must be >= 1, got {max_document_chars}")
        self.inputs = [str(i) for i in ([inputs] if isinstance(inputs, (str, Path)) else inputs)]
        self.paths = find_corpus_files(self.inputs)
        self.text_field = text_field
        self.max_document_chars = max_document_chars
        self.invalid_utf8: dict[Path, int] = {}

    @property
    def invalid_utf8_total(self) -> int:
        return sum(self.invalid_utf8.values())

    def __iter__(self) -> Iterator[str]:
        for path in self.paths:
            counted = [0]
            if path.suffix.lower() in JSONL_SUFFIXES:
                yield from self._read_jsonl(path, counted)
            else:
                yield from self._read_text(path, counted)
            if path not in self.invalid_utf8:
                self.invalid_utf8[path] = counted[0]
                if counted[0]:
                    warnings.warn(
                        f"{path}: replaced {counted[0]} invalid UTF-8 sequence(s) with U+FFFD",
                        stacklevel=2,
                    )

    def count_documents(self) -> int:
        """Make one full pass and return the number of documents."""
        return sum(1 for _ in self)

    def _read_text(self, path: Path, counted: list[int]) -> Iterator[str]:
        parts: list[str] = []
        size = 0
        blank_run = False
        with open(path, "rb") as f:
            for raw in f:
                line, bad = _decode(raw)
                counted[0] += bad
                line = line.replace("\r\n", "\n")
                is_blank = not line.strip()
                # Cut only where a blank-line run ends, so paragraphs stay whole.
                if size >= self.max_document_chars and blank_run and not is_blank:
                    text = "".join(parts).strip("\n")
                    if text.strip():
                        yield text
                    parts, size = [], 0
                parts.append(line)
                size += len(line)
                blank_run = is_blank
        text = "".join(parts).strip("\n")
        if text.strip():
            yield text

    def _read_jsonl(self, path: Path, counted: list[int]) -> Iterator[str]:
        with open(path, "rb") as f:
            for number, raw in enumerate(f, start=1):
                line, bad = _decode(raw)
                counted[0] += bad
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise CorpusError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
                if not isinstance(record, dict) or self.text_field not in record:
                    keys = sorted(record) if isinstance(record, dict) else type(record).__name__
                    raise CorpusError(
                        f"{path}:{number}: no text field {self.text_field!r}; "
                        f"the record has {keys}; choose the field with --text-field"
                    )
                text = record[self.text_field]
                if not isinstance(text, str):
                    raise CorpusError(
                        f"{path}:{number}: field {self.text_field!r} is "
                        f"{type(text).__name__}, expected a string"
                    )
                if text.strip():
                    yield text
