"""Corpus reading: txt/jsonl/folders/globs, documents, invalid UTF-8, errors."""

from __future__ import annotations

import json

import pytest

from llmos.data.corpus import Corpus, CorpusError, find_corpus_files
from llmos.errors import LLMOSError


def test_jsonl_gives_one_document_per_line_from_the_text_field(tmp_path):
    path = tmp_path / "a.jsonl"
    rows = [{"text": "first doc", "id": 1}, {"text": "second doc"}, {"text": "   "}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    assert list(Corpus([path])) == ["first doc", "second doc"]


def test_jsonl_text_field_is_configurable(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps({"content": "hello"}) + "\n", encoding="utf-8")
    assert list(Corpus([path], text_field="content")) == ["hello"]


def test_jsonl_missing_field_names_file_line_and_keys(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps({"text": "ok"}) + "\n" + json.dumps({"body": "x"}) + "\n")
    with pytest.raises(LLMOSError, match=r"a\.jsonl:2.*'text'.*body"):
        list(Corpus([path]))


def test_jsonl_bad_json_names_file_and_line(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"text": "ok"}\n{not json\n')
    with pytest.raises(CorpusError, match=r"a\.jsonl:2"):
        list(Corpus([path]))


def test_txt_file_is_one_document(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("para one\nline two\n\n\npara two\n")
    assert list(Corpus([path])) == ["para one\nline two\n\n\npara two"]


def test_huge_txt_file_is_cut_at_blank_lines_into_documents(tmp_path):
    path = tmp_path / "book.txt"
    paragraphs = [f"paragraph {i} " + "word " * 20 for i in range(30)]
    path.write_text("\n\n".join(paragraphs) + "\n")
    docs = list(Corpus([path], max_document_chars=300))
    assert len(docs) > 5
    # Nothing lost, nothing cut inside a paragraph.
    assert "\n\n".join(docs) == "\n\n".join(paragraphs)
    assert all(d.startswith("paragraph") for d in docs)


def test_folders_are_searched_recursively_for_corpus_suffixes_only(tmp_path):
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "sub" / "b.jsonl").write_text('{"text": "b"}\n')
    (tmp_path / "sub" / "deeper" / "c.md").write_text("c")
    (tmp_path / "sub" / "image.png").write_bytes(b"\x89PNG")
    files = find_corpus_files([tmp_path])
    assert [f.name for f in files] == ["a.txt", "b.jsonl", "c.md"]
    assert sorted(Corpus([tmp_path])) == ["a", "b", "c"]


def test_globs_and_duplicates_resolve_to_sorted_unique_files(tmp_path):
    for name in ["x1.txt", "x2.txt", "y.txt"]:
        (tmp_path / name).write_text(name)
    files = find_corpus_files([str(tmp_path / "x*.txt"), tmp_path / "x1.txt"])
    assert [f.name for f in files] == ["x1.txt", "x2.txt"]


def test_invalid_utf8_is_replaced_counted_and_warned_once_per_file(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"good \xff text\nmore \xc3\x28 here\n")
    corpus = Corpus([path])
    with pytest.warns(UserWarning, match=r"bad\.txt.*replaced 2 invalid"):
        docs = list(corpus)
    assert docs[0].count("\ufffd") == 2
    assert corpus.invalid_utf8_total == 2
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert list(corpus) == docs  # a second pass does not warn again


def test_missing_path_is_an_error_naming_it(tmp_path):
    with pytest.raises(LLMOSError, match="nope.txt"):
        Corpus([tmp_path / "nope.txt"])


def test_empty_folder_is_an_error_naming_the_paths_searched(tmp_path):
    (tmp_path / "notes.bin").write_bytes(b"\x00")
    with pytest.raises(CorpusError, match=str(tmp_path)):
        Corpus([tmp_path])
