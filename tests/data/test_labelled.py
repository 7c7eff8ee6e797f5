"""`read_labelled` reads TSV, CSV and JSONL labelled text against a given or discovered label set;
every bad file is one DataError naming the file, the line and the value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmos.data.labelled import DataError, LabelledData, read_labelled
from llmos.errors import LLMOSError

SST2 = Path(__file__).parents[3] / "shared" / "data" / "sst2" / "train.tsv"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_tsv_with_the_sst2_header_reads_integer_labels_as_ids(tmp_path):
    data = read_labelled(write(tmp_path / "a.tsv", "label\tsentence\n0\tbad film \"really\"\n1\tgreat fun\n\n1\tok\n"))
    assert isinstance(data, LabelledData) and data.source == str(tmp_path / "a.tsv")
    assert data.texts == ['bad film "really"', "great fun", "ok"]
    assert data.labels == [0, 1, 1] and data.label_names == ["0", "1"]


def test_tsv_column_order_comes_from_the_header(tmp_path):
    data = read_labelled(write(tmp_path / "a.tsv", "sentence\tlabel\nnice one\tpos\nawful\tneg\n"))
    assert data.texts == ["nice one", "awful"]
    assert data.label_names == ["neg", "pos"] and data.labels == [1, 0]


def test_tsv_without_a_header_is_label_then_text_and_keeps_tabs_in_the_text(tmp_path):
    data = read_labelled(write(tmp_path / "a.tsv", "2\ta\tb\n0\tc\n"))
    assert data.texts == ["a\tb", "c"]
    assert data.labels == [2, 0] and data.label_names == ["0", "1", "2"]


def test_csv_with_quotes_and_named_labels_maps_names_to_the_given_label_set(tmp_path):
    path = write(tmp_path / "a.csv", 'id,text,label\n1,"hello, world",positive\n2,"multi\nline",negative\n3,meh,1\n')
    data = read_labelled(path, label_names=["negative", "positive"])
    assert data.texts == ["hello, world", "multi\nline", "meh"]
    assert data.labels == [1, 0, 1] and data.label_names == ["negative", "positive"]


def test_jsonl_and_json_array_read_the_same_records(tmp_path):
    records = [{"text": "a b", "label": "x"}, {"sentence": "c", "label": "y"}, {"text": "d", "label": "x"}]
    jsonl = write(tmp_path / "a.jsonl", "\n".join(json.dumps(r) for r in records) + "\n\n")
    array = write(tmp_path / "b.json", json.dumps(records, indent=1))
    for path in (jsonl, array):
        data = read_labelled(path)
        assert data.texts == ["a b", "c", "d"] and data.labels == [0, 1, 0] and data.label_names == ["x", "y"]


def test_head_keeps_the_label_set(tmp_path):
    data = read_labelled(write(tmp_path / "a.tsv", "0\ta\n1\tb\n2\tc\n")).head(2)
    assert data.texts == ["a", "b"] and data.label_names == ["0", "1", "2"]


@pytest.mark.parametrize(
    ("name", "content", "label_names", "expected"),
    [
        ("a.tsv", "label\ttext\n0\thi\n1\t  \n", None, ["a.tsv:3", "text is empty"]),
        ("a.tsv", "0\thi\n1\n", None, ["a.tsv:2", "found 1"]),
        ("a.tsv", "0\thi\n7\tyo\n", ["neg", "pos"], ["a.tsv:2", "label 7", "['neg', 'pos']", "0..1"]),
        ("a.jsonl", '{"text": "a", "label": "neg"}\n{"text": "b", "label": "meh"}\n', ["neg", "pos"],
         ["a.jsonl:2", "'meh'", "['neg', 'pos']"]),
        ("a.jsonl", '{"text": "a", "label": 0}\n{"text": "b", "label": 1\n', None, ["a.jsonl:2", "not valid JSON"]),
        ("a.jsonl", '\n{"text": "a"}\n', None, ["a.jsonl:2", "'label'", "['text']"]),
        ("a.jsonl", '{"text": "a", "label": 0.5}\n', None, ["a.jsonl:1", "0.5"]),
        ("a.csv", "sentence,score\nhi,1\n", None, ["a.csv:1", "'label'"]),
        ("a.csv", "text,label\nhi,1,extra\n", None, ["a.csv:2", "found 3"]),
        ("a.tsv", "\n\n", None, ["a.tsv", "no examples"]),
        ("a.json", "[]", None, ["a.json", "no examples"]),
        ("a.json", '[{"text": "a", "label": 0},\n {"label": 1}]', None, ["a.json:2", "'text'"]),
        ("a.txt", "hello", None, ["a.txt", ".tsv"]),
    ],
)
def test_bad_files_raise_one_error_naming_file_line_and_value(tmp_path, name, content, label_names, expected):
    path = write(tmp_path / name, content)
    with pytest.raises(DataError) as exc:
        read_labelled(path, label_names=label_names)
    assert isinstance(exc.value, LLMOSError)
    for part in expected:
        assert part in str(exc.value)


def test_a_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_labelled(tmp_path / "nope.tsv")


@pytest.mark.skipif(not SST2.is_file(), reason="../shared/data/sst2 is not present")
def test_the_shared_sst2_training_file_reads_as_two_classes():
    data = read_labelled(SST2, label_names=["negative", "positive"])
    assert len(data) == 67_349 and set(data.labels) == {0, 1}
    assert data.texts[0] == "hide new secretions from the parental units"
