"""`llmos run TASK [MODEL] --input TEXT|FILE` on a tiny random checkpoint: one text, files of inputs as
batches written as they finish, a failing item that keeps the results before it, and bad input as one
line and exit 2 before any model loads."""

from __future__ import annotations

import csv
import json

import pytest

from llmos.apps.pipelines.batch import read_inputs, run_inputs


@pytest.fixture(scope="module")
def checkpoint(tiny_chat_model, tmp_path_factory):
    model, tokenizer = tiny_chat_model
    path = tmp_path_factory.mktemp("tiny") / "model"
    model.save_pretrained(path, tokenizer=tokenizer)
    return path


@pytest.fixture
def no_loading(monkeypatch):
    """Fails the test if a model or tokenizer loads."""
    from llmos import auto

    def refuse(*args, **kwargs):
        raise AssertionError("nothing should load")

    monkeypatch.setattr(auto.AutoModelForCausalLM, "from_pretrained", refuse)
    monkeypatch.setattr(auto.AutoTokenizer, "from_pretrained", refuse)


def test_list_and_show_template_print_every_task_and_its_prompts_without_loading(llmos_cli, no_loading):
    code, out, err = llmos_cli("run", "--list")
    assert code == 0, err
    assert out.splitlines()[0].startswith("chat ") and "quiz" in out and "--show-template" in out
    code, out, err = llmos_cli("run", "summarization", "--show-template")
    assert code == 0, err
    assert "Summarize the following text" in out and "options: max_words=40" in out and "2 * max_words + 16" in out


def test_one_text_prints_its_result(checkpoint, llmos_cli):
    code, out, err = llmos_cli("run", "summarization", checkpoint, "--input", "the cat sat on the mat",
                               "--max-new-tokens", "5")
    assert code == 0, err
    assert out.strip() and "{" not in out.splitlines()[0][:1]
    code, out, err = llmos_cli("run", "chat", checkpoint, "--input", "hi", "--max-new-tokens", "3")
    assert code == 0, err
    code, out, err = llmos_cli("run", "question-answering", checkpoint, "--input", "the cat sat on the mat",
                               "--question", "who sat?")
    assert code == 0, err
    assert set(json.loads(out)) == {"answer", "score", "start", "end"}


@pytest.mark.parametrize(("template", "says"), [
    ("{{ 'x' * 1000000000 }}", "a '*' repetition would hold 1,000,000,000 characters or items; the limit is"),
    ("{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
     "it took more than 1,000,000 steps"),
])
def test_a_model_whose_chat_template_goes_past_a_limit_is_one_line_and_exit_2(tiny_chat_model, tmp_path, llmos_cli,
                                                                              template, says):
    model, tokenizer = tiny_chat_model
    shipped = tokenizer.chat_template
    tokenizer.chat_template = template  # as a downloaded model file could ship it
    try:
        model.save_pretrained(tmp_path / "model", tokenizer=tokenizer)
    finally:
        tokenizer.chat_template = shipped
    code, out, err = llmos_cli("run", "chat", tmp_path / "model", "--input", "hi", "--max-new-tokens", "3")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err[-2000:]
    assert "chat template" in err and "is refused: " + says in err


def test_files_of_inputs_run_as_batches_into_jsonl_or_csv(checkpoint, llmos_cli, tmp_path):
    (tmp_path / "in.txt").write_text("the cat\n\nthe dog sat\nParis is nice\n")
    code, out, err = llmos_cli("run", "translation_en_to_fr", checkpoint, "--input", tmp_path / "in.txt",
                               "--output", tmp_path / "out.jsonl", "--batch-size", "2", "--max-new-tokens", "4")
    assert code == 0, err
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["item"] for r in rows] == ["line 1", "line 3", "line 4"]
    assert all(isinstance(r["translation_text"], str) for r in rows)
    assert "ran 3 item(s)" in out and "3 row(s)" in out
    with (tmp_path / "qa.csv").open("w", newline="") as f:
        csv.writer(f).writerows([["context", "question"], ["the cat sat", "who?"], ["Paris is nice", "what?"]])
    code, out, err = llmos_cli("run", "qa", checkpoint, "--input", tmp_path / "qa.csv", "--output",
                               tmp_path / "qa_out.csv")
    assert code == 0, err
    with (tmp_path / "qa_out.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["item"] for r in rows] == ["row 1", "row 2"] and rows[0]["answer"] in "the cat sat"


def test_a_batch_without_output_prints_json_lines(checkpoint, llmos_cli, tmp_path):
    (tmp_path / "in.jsonl").write_text('{"text": "the cat sat"}\n{"text": "a dog"}\n')
    code, out, err = llmos_cli("run", "sentiment-analysis", checkpoint, "--input", tmp_path / "in.jsonl",
                               "--labels", "sad,happy")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["item"] for r in rows] == ["line 1", "line 2"] and {r["label"] for r in rows} <= {"sad", "happy"}
    assert "ran 2 item(s)" in err


def test_a_failing_item_stops_the_run_naming_it_and_keeps_every_result_before_it(checkpoint, llmos_cli,
                                                                                 tmp_path):
    too_long = " ".join(["word"] * 3000)  # more tokens than the model's 2048-token context
    (tmp_path / "in.txt").write_text(f"one\ntwo\nthree\n{too_long}\nfive\n")
    out_path = tmp_path / "out.jsonl"
    code, out, err = llmos_cli("run", "summarization", checkpoint, "--input", tmp_path / "in.txt", "--output",
                               out_path, "--batch-size", "2", "--max-new-tokens", "3")
    assert code == 2 and err.count("\n") == 1
    assert "item 'line 4' failed" in err and "context window" in err and f"the 3 item(s) before it are in {out_path}" in err
    assert [json.loads(line)["item"] for line in out_path.read_text().splitlines()] == ["line 1", "line 2", "line 3"]


def test_run_inputs_writes_each_batch_as_it_finishes(tiny_chat_model, tmp_path):
    from llmos import pipeline

    pipe = pipeline("summarization", model=tiny_chat_model[0], tokenizer=tiny_chat_model[1], batch_size=2,
                    max_new_tokens=3)
    seen = []

    def progress(done, total):
        seen.append((done, total, len((tmp_path / "o.jsonl").read_text().splitlines())))

    (tmp_path / "in.txt").write_text("a\nb\nc\n")
    run_inputs(pipe, read_inputs(tmp_path / "in.txt"), tmp_path / "o.jsonl", progress=progress)
    assert seen == [(2, 3, 2), (3, 3, 3)]


BAD = {  # arguments (FILE: a file written first) -> what the one line says
    "unknown task": (["summarise", "--input", "x"], "unknown task 'summarise'; valid tasks: chat, text-generation"),
    "language": (["translation", "--tgt-lang", "klingon", "--input", "x"],
                 "does not know the target language 'klingon'; it knows en (English), fr (French)"),
    "language in name": (["translation_en_to_xx", "--input", "x"], "target language 'xx'"),
    "input format": (["summarization", "--input", "FILE.xml"], "unknown format '.xml'; give .txt (one input per"),
    "missing file": (["summarization", "--input", "nowhere/in.txt"], "input file 'nowhere/in.txt' does not exist"),
    "empty text": (["summarization", "--input", ""], "the input's 'text' is empty"),
    "empty file": (["summarization", "--input", "FILE.txt"], "holds no inputs"),
    "empty item": (["summarization", "--input", "FILE.jsonl"], "line 2: summarization: the input's 'text' is empty"),
    "no input": (["summarization"], "give --input TEXT or --input FILE"),
    "option of another task": (["summarization", "--tgt-lang", "fr", "--input", "x"],
                               "unknown option 'tgt_lang'; its options are max_words"),
    "output format": (["summarization", "--input", "x", "--output", "out.txt"], "write .jsonl or .csv"),
    "workflow option": (["summarization", "--dry-run", "--input", "x"], "--dry-run is for a workflow file"),
    "task option": (["flow.yaml", "--input", "x"], "--input is for a task"),
}
FILES = {"input format": "<a/>", "empty file": "\n\n", "empty item": '{"text": "ok"}\n{"text": ""}\n'}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_and_exit_2_before_anything_loads(case, llmos_cli, no_loading, tmp_path,
                                                               monkeypatch):
    monkeypatch.chdir(tmp_path)
    arguments, message = BAD[case]
    for argument in arguments:
        if argument.startswith("FILE"):
            (tmp_path / argument).write_text(FILES[case])
    code, out, err = llmos_cli("run", *arguments)
    assert code == 2 and err.count("\n") == 1, err
    assert message in err


def test_an_input_file_past_the_size_limit_is_one_line_and_exit_2(llmos_cli, no_loading, tmp_path, monkeypatch):
    monkeypatch.setattr("llmos.apps.workflow_inputs.MAX_INPUT_BYTES", 1000)  # 64 MiB takes a big file to reach
    for name, text in (("in.txt", "a line of input\n"), ("in.jsonl", '{"text": "a line"}\n'),
                       ("in.csv", "text\na line of input\n")):
        (tmp_path / name).write_text(text * (1000 // len(text) + 1))
        code, out, err = llmos_cli("run", "summarization", "--input", tmp_path / name)
        assert code == 2 and err.count("\n") == 1, err
        assert "one input is read whole, so it holds at most 1,000 bytes" in err
