"""Layer 8b: dataset previews: what a data file or a prepared token-shard folder holds, before training on it.

    GET /api/datasets -> {"datasets": [{"path", "name", "root", "kind", "size_bytes", "modified"}], "truncated"}
    GET /api/datasets/preview?path=...&tokenizer=<model id>
    -> {"path", "kind", "columns", "rows" (the first 20), "row_tokens", "num_rows", "complete", "estimated_rows",
        "note", "errors", "size_bytes", "tokens": {"total", "mean", "max", "min", "tokenizer"},
        "histogram": {"edges", "counts"}}

Kinds: JSONL (a row per line, columns = the keys), CSV / TSV (the `csv`
module; columns = the header), .txt (a row per paragraph, or per line when the
text has no blank lines), and prepared token-shard folders (`llmos data
prepare`'s index.json: documents read from the shards, decoded with the
folder's own tokenizer). A huge file previews fast: at most `MAX_BYTES` are
read and `MAX_ROWS` rows counted, and the answer says so ("first 1000 of ~N
rows"). Token counts use the tokenizer asked for (a model id, as the
playground takes), else a shard folder's own ids, else SmolLM2's tokenizer
when it is installed, else UTF-8 bytes; their spread is a numpy histogram.
Paths stay inside the studio's data folders.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter

from llmos.data.shards import INDEX_FILE, ShardError, TokenShards, read_index
from llmos.data.tokenizing import encode_texts, encoding_copy
from llmos.errors import LLMOSError
from llmos.model_names import EMBEDDED
from llmos.studio.models import resolve_model
from llmos.studio.paths import StudioError, confined, is_inside, quoted
from llmos.studio.playground import version_key
from llmos.studio.settings import StudioSettings

FILE_KINDS = {".jsonl": "jsonl", ".csv": "csv", ".tsv": "tsv", ".txt": "txt"}
PREVIEW_ROWS = 20  # rows shown
MAX_ROWS = 1000  # rows counted for the token statistics
MAX_BYTES = 4 << 20  # bytes read from a file
MAX_CELL_CHARS = 2000  # a shown value longer than this is cut (the counts use it whole)
MAX_ERRORS = 5
MAX_LISTED = 500  # datasets listed
MAX_FOLDERS_SCANNED = 5000  # folders walked while listing, so a data folder of `~` answers quickly
MAX_DEPTH = 6
HISTOGRAM_BINS = 20
SKIPPED_FOLDERS = {"node_modules", "__pycache__", "site-packages"}

Counter = Callable[[list[str]], list[int]]


# ---- the list -----------------------------------------------------------------------------------

def kind_of(path: Path) -> str | None:
    if path.is_dir():
        return "shards" if (path / INDEX_FILE).is_file() else None
    return FILE_KINDS.get(path.suffix.lower())


def is_shard_folder(path: Path) -> bool:
    try:
        read_index(path)
    except ShardError:
        return False
    return True


def find_datasets(settings: StudioSettings) -> tuple[list[dict[str, Any]], bool]:
    """(the data files and shard folders under the data folders, whether the list was cut). Hidden
    folders and the runs and models folders are not searched, nor linked folders; a linked file is listed
    only when it points inside a data folder; a folder inside two data folders is listed once."""
    found: dict[Path, dict[str, Any]] = {}
    scanned = 0
    not_data = {settings.runs_dir, settings.models_dir}
    for root in settings.data_dirs:
        for folder, subfolders, files in os.walk(root):
            here = Path(folder)
            scanned += 1
            if scanned > MAX_FOLDERS_SCANNED or len(found) > MAX_LISTED:
                return list(found.values())[:MAX_LISTED], True
            if INDEX_FILE in files and is_shard_folder(here):
                size = sum(p.stat().st_size for p in here.iterdir() if listable(p, settings.data_dirs))
                found.setdefault(here, entry(root, here, "shards", size))
                subfolders[:] = []
                continue
            depth = len(here.relative_to(root).parts)
            subfolders[:] = sorted(d for d in subfolders if depth < MAX_DEPTH and not d.startswith(".")
                                   and d not in SKIPPED_FOLDERS and here / d not in not_data)
            for name in sorted(files):
                kind = FILE_KINDS.get(Path(name).suffix.lower())
                if kind is not None and listable(here / name, settings.data_dirs):
                    found.setdefault(here / name, entry(root, here / name, kind, (here / name).stat().st_size))
    return list(found.values())[:MAX_LISTED], len(found) > MAX_LISTED


def listable(path: Path, roots: tuple[Path, ...]) -> bool:
    """Whether a file found in a data folder may be listed: an existing file, and, when it is a symlink,
    one that points inside the data folders (the size and date of a file elsewhere are not the studio's
    to show; its preview is refused as well)."""
    try:
        if path.is_symlink() and not is_inside(path.resolve(), roots):
            return False
        return path.is_file()
    except (OSError, RuntimeError):  # a link loop, or a file removed while listing
        return False


def entry(root: Path, path: Path, kind: str, size: int) -> dict[str, Any]:
    return {"path": str(path), "name": str(path.relative_to(root)), "root": str(root), "kind": kind,
            "size_bytes": size, "modified": path.stat().st_mtime}


# ---- token counting -----------------------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def loaded_tokenizer(source: str, version: int) -> Any:
    """A private copy of the tokenizer's backend (no padding, no truncation), loaded once per version."""
    from llmos.auto import AutoTokenizer

    return encoding_copy(AutoTokenizer.from_pretrained(source))


def token_counter(settings: StudioSettings, tokenizer_id: str | None) -> tuple[str, Counter]:
    """(what counts, the counting function): the tokenizer asked for, else SmolLM2's, else bytes."""
    if tokenizer_id is None and EMBEDDED["smollm2"].path() is None:
        return "bytes", lambda texts: [len(t.encode("utf-8")) for t in texts]
    name = tokenizer_id or "smollm2"
    try:
        source = resolve_model(settings, name)
        backend = loaded_tokenizer(*version_key(source))
    except StudioError as exc:
        raise StudioError(f"tokenizer: {exc}", status=exc.status, field="tokenizer") from None
    except (LLMOSError, OSError) as exc:
        raise StudioError(f"tokenizer {quoted(name)} cannot be loaded: {exc}", field="tokenizer") from None
    return name, lambda texts: [len(ids) for ids in encode_texts(backend, texts)] if texts else []


def statistics(lengths: list[int], counted_with: str) -> tuple[dict[str, Any], dict[str, list]]:
    """(the token totals, their histogram)."""
    if not lengths:
        return {"total": 0, "mean": 0.0, "max": 0, "min": 0, "tokenizer": counted_with}, {"edges": [], "counts": []}
    values = np.asarray(lengths)
    counts, edges = np.histogram(values, bins=min(HISTOGRAM_BINS, len(np.unique(values))))
    return ({"total": int(values.sum()), "mean": round(float(values.mean()), 2), "max": int(values.max()),
             "min": int(values.min()), "tokenizer": counted_with},
            {"edges": [round(float(e), 2) for e in edges], "counts": counts.tolist()})


def row_text(value: Any) -> str:
    """The text of a row, whatever its shape ({"text"}, {"prompt", "completion"}, {"messages": [...]})."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "\n".join(filter(None, map(row_text, value.values())))
    if isinstance(value, list):
        return "\n".join(filter(None, map(row_text, value)))
    return ""


def shown(value: Any) -> Any:
    """A row as shown: long texts cut to MAX_CELL_CHARS."""
    if isinstance(value, str) and len(value) > MAX_CELL_CHARS:
        return value[:MAX_CELL_CHARS] + "…"
    if isinstance(value, dict):
        return {k: shown(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shown(v) for v in value]
    return value


# ---- reading files ------------------------------------------------------------------------------

def read_head(path: Path) -> tuple[str, bool]:
    """(the first MAX_BYTES of the file as text, cut at a line end; whether that is the whole file)."""
    with path.open("rb") as f:
        data = f.read(MAX_BYTES + 1)
    whole = len(data) <= MAX_BYTES
    if not whole:
        data = data[:MAX_BYTES]
        data = data[:data.rfind(b"\n") + 1] or data
    return data.decode("utf-8-sig", errors="replace"), whole


def jsonl_rows(text: str) -> tuple[list[Any], list[str], int]:
    """(rows, errors, characters read) of up to MAX_ROWS + 1 JSON lines."""
    rows, errors, used = [], [], 0
    for number, line in enumerate(text.splitlines(keepends=True), 1):
        if len(rows) > MAX_ROWS:
            break
        used += len(line)
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError as exc:
            errors.append(f"line {number}: not valid JSON ({exc})")
    return rows, errors, used


def delimited_rows(text: str, delimiter: str) -> tuple[list[Any], list[str], int]:
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter, restkey="(extra)")
    rows, errors = [], []
    try:
        for row in reader:
            rows.append(row)
            if len(rows) > MAX_ROWS:
                break
    except csv.Error as exc:
        errors.append(f"line {reader.line_num}: {exc}")
    used = sum(map(len, text.splitlines(keepends=True)[:reader.line_num]))
    return rows, errors, used


def text_rows(text: str) -> tuple[list[Any], list[str], int]:
    """Paragraphs (split at blank lines), or lines when the text has no blank line."""
    pieces = re.split(r"\n[ \t]*\n", text) if re.search(r"\n[ \t]*\n", text) else text.splitlines()
    rows, used = [], 0
    for piece in pieces:
        if len(rows) > MAX_ROWS:
            break
        used += len(piece) + 1
        if piece.strip():
            rows.append({"text": piece.strip()})
    return rows, [], min(used, len(text))


def columns_of(rows: list[Any]) -> list[str]:
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row if isinstance(row, dict) else ["value"]))
    return list(columns)


def file_preview(path: Path, kind: str, count: Counter, counted_with: str) -> dict[str, Any]:
    text, whole = read_head(path)
    delimiter = {"csv": ",", "tsv": "\t"}.get(kind)
    if delimiter is None:
        rows, errors, used = (jsonl_rows if kind == "jsonl" else text_rows)(text)
        columns = columns_of(rows)
    else:
        rows, errors, used = delimited_rows(text, delimiter)
        header = next(csv.reader(io.StringIO(text), delimiter=delimiter), [])  # kept when there are no rows
        columns = list(dict.fromkeys([*header, *columns_of(rows)]))
    complete = whole and len(rows) <= MAX_ROWS
    rows = [row if isinstance(row, dict) or kind != "jsonl" else {"value": row} for row in rows[:MAX_ROWS]]
    size = path.stat().st_size
    estimated = None
    if not complete and used:
        read_bytes = len(text[:used].encode("utf-8"))
        estimated = max(len(rows), round(len(rows) * size / max(read_bytes, 1)))
    lengths = count([row_text(row) for row in rows])
    tokens, histogram = statistics(lengths, counted_with)
    return {"kind": kind, "columns": columns, "rows": [shown(r) for r in rows[:PREVIEW_ROWS]],
            "row_tokens": lengths[:PREVIEW_ROWS], "num_rows": len(rows), "complete": complete,
            "estimated_rows": estimated, "note": None if complete else cut_note(len(rows), estimated, size),
            "errors": errors[:MAX_ERRORS], "size_bytes": size, "tokens": tokens, "histogram": histogram}


def cut_note(rows: int, estimated: int | None, size: int) -> str:
    return (f"first {rows} of ~{estimated or rows} rows (the file has {size / 1e6:.1f} MB; the preview reads at "
            f"most {MAX_ROWS} rows and {MAX_BYTES / 1e6:.1f} MB)")


# ---- prepared token shards ----------------------------------------------------------------------

def document_lengths(split: TokenShards, limit: int) -> np.ndarray:
    """Tokens in each of the split's first `limit` documents (each ends with its EOS id)."""
    starts = np.asarray(split.document_starts()[:limit + 1], dtype=np.int64)
    ends = np.append(starts[1:], split.num_tokens) if len(starts) <= limit else starts[1:]
    return ends - starts[:len(ends)]


def shards_preview(path: Path, counter: tuple[str, Counter] | None) -> dict[str, Any]:
    """Documents of a prepared folder: decoded with its own tokenizer; counted in its own tokens, or
    re-counted with the tokenizer asked for."""
    try:
        index = read_index(path)
        splits = [TokenShards(path, name) for name in index.get("splits", {})]
    except (ShardError, KeyError, ValueError) as exc:
        raise StudioError(f"path {str(path)!r} is not a readable token-shard folder: {exc}", field="path") from None
    own = None
    if splits and (splits[0].tokenizer_dir / "tokenizer.json").is_file():
        from llmos.tokenizer import Tokenizer

        own = Tokenizer.from_pretrained(splits[0].tokenizer_dir)
    rows, lengths, texts = [], [], []
    for split in splits:
        split_lengths = document_lengths(split, MAX_ROWS - len(lengths))
        start = 0
        for length in split_lengths.tolist():
            if len(texts) < (MAX_ROWS if counter else PREVIEW_ROWS):
                ids = split.window(start, length)
                text = own.decode(ids, skip_special_tokens=True) if own is not None else None
                texts.append(text or "")
                if len(rows) < PREVIEW_ROWS:
                    rows.append({"split": split.split, "text": shown(text)} if own is not None
                                else {"split": split.split, "ids": ids[:64].tolist()})
            start += length
        lengths += split_lengths.tolist()
    counted_with = "the folder's own token ids"
    if counter is not None:
        counted_with, count = counter
        lengths = count(texts)
    documents = sum(s.num_documents for s in splits)
    tokens, histogram = statistics(lengths, counted_with)
    if counter is None:
        tokens["total"] = sum(s.num_tokens for s in splits)  # exact, from the index, however many were counted
    complete = len(lengths) == documents
    return {"kind": "shards", "columns": list(rows[0]) if rows else [], "rows": rows,
            "row_tokens": lengths[:PREVIEW_ROWS], "num_rows": documents, "complete": complete,
            "estimated_rows": None, "note": None if complete else f"token statistics over the first {len(lengths)} "
            f"of {documents} documents", "errors": [], "size_bytes": sum(p.stat().st_size for p in path.iterdir()
                                                                          if p.is_file()),
            "splits": {s.split: {"documents": s.num_documents, "tokens": s.num_tokens} for s in splits},
            "tokens": tokens, "histogram": histogram}


# ---- the routes ---------------------------------------------------------------------------------

def preview(settings: StudioSettings, path: str, tokenizer: str | None) -> dict[str, Any]:
    target = confined(path, settings.data_dirs, what="path", field="path")
    if not target.exists():
        raise StudioError(f"path {quoted(path)} does not exist", status=404, field="path")
    kind = kind_of(target)
    if kind is None:
        raise StudioError(f"path {quoted(path)} is not a dataset; give a {', '.join(FILE_KINDS)} file or a prepared "
                          f"token-shard folder (with {INDEX_FILE}, from `llmos data prepare`)", field="path")
    if kind == "shards":
        result = shards_preview(target, token_counter(settings, tokenizer) if tokenizer else None)
    else:
        counted_with, count = token_counter(settings, tokenizer)
        result = file_preview(target, kind, count, counted_with)
    return {"path": str(target), **result}


def router(settings: StudioSettings) -> APIRouter:
    api = APIRouter()

    @api.get("/api/datasets")
    def list_datasets() -> dict[str, Any]:
        found, truncated = find_datasets(settings)
        return {"datasets": found, "truncated": truncated}

    @api.get("/api/datasets/preview")
    def preview_dataset(path: str = "", tokenizer: str | None = None) -> dict[str, Any]:
        return preview(settings, path, tokenizer or None)

    return api
