"""The task routes (`llmos.apps.task_routes`) on a served tiny random chat model: the task list, structured
results, one clear 400 for a bad task or option, the API key, and the chat page's task picker in Chromium."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import jsonschema
import pytest
import torch
from browser import browser_page
from live_server import start_server

from llmos.apps.task_routes import add_task_routes
from llmos.config import ModelConfig
from llmos.model import CausalLM
from llmos.serving.api import create_app

SCREENSHOT = Path(os.environ.get("LLMOS_SCREENSHOT_DIR", "runs")) / "serve_tasks_page.png"
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
TEXT = "Ada lives in Paris. The cat sat on the mat; it was a lovely day."
SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 8},
                                           "age": {"type": "integer", "minimum": 0, "maximum": 150}},
          "required": ["name", "age"], "additionalProperties": False}


@pytest.fixture(scope="module")
def chat_model():
    from llmos.tokenizer.training import train_tokenizer

    texts = ['{"name": "Ada", "city": "Paris"}', "the cat sat on the mat", "Ada lives in Paris", "巴黎 猫"] * 5
    tokenizer = train_tokenizer(texts, kind="bpe", vocab_size=300, min_frequency=1)
    tokenizer.chat_template = CHATML
    config = ModelConfig.from_preset("nano", vocab_size=len(tokenizer), d_model=32, n_layers=2, n_heads=4,
                                     n_kv_heads=2, d_ff=48, max_seq_len=1024, eos_token_id=tokenizer.eos_token_id,
                                     lm_head_bias=True)
    torch.manual_seed(0)
    model = CausalLM(config).eval()
    quotes = [i for i in range(len(tokenizer)) if '"' in tokenizer.decode([i])]
    with torch.no_grad():  # JSON strings close within a few tokens, so extraction fits a short reply
        model.lm_head.bias[quotes] = 1.0
    return model, tokenizer


def serve(chat_model, api_key=None):
    app = create_app(*chat_model, model_id="tiny", api_key=api_key, max_batch=4)
    add_task_routes(app)
    return start_server(app)


@pytest.fixture(scope="module")
def url(chat_model):
    uv, thread, base = serve(chat_model)
    yield base
    uv.should_exit = True
    thread.join(timeout=10)


def test_task_list_names_each_task_with_its_options_and_defaults(url):
    body = httpx.get(url + "/v1/tasks").json()
    tasks = {t["name"]: t for t in body["data"]}
    assert {"chat", "extraction", "sentiment-analysis", "question-answering", "quiz"} <= set(tasks)
    assert tasks["summarization"]["options"] == {"max_words": 40}
    assert tasks["question-answering"]["fields"] == ["context", "question"]
    assert "rewrite" in tasks["writing"]["choices"]["mode"]
    assert all(t["summary"] for t in tasks.values())


def test_sentiment_gives_every_label_with_probabilities_summing_to_one(url):
    res = httpx.post(url + "/v1/tasks/sentiment-analysis",
                     json={"input": "今天天气很好", "options": {"top_k": None}}, timeout=30)
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["task"] == "sentiment-analysis" and body["seconds"] >= 0
    labels = body["result"][0]
    assert {r["label"] for r in labels} == {"negative", "positive"}
    assert abs(sum(r["score"] for r in labels) - 1) < 1e-4


def test_extraction_gives_an_object_valid_against_the_schema(url):
    res = httpx.post(url + "/v1/tasks/extraction",
                     json={"input": TEXT, "options": {"schema": SCHEMA, "max_new_tokens": 60}}, timeout=30)
    assert res.status_code == 200, res.text
    jsonschema.validate(res.json()["result"], SCHEMA)


def test_question_answering_takes_question_and_context(url):
    res = httpx.post(url + "/v1/tasks/question-answering",
                     json={"input": {"question": "Where?", "context": TEXT}}, timeout=30)
    assert res.status_code == 200, res.text
    result = res.json()["result"]
    assert TEXT[result["start"]:result["end"]] == result["answer"]


def test_tasks_decode_through_the_servers_engine_and_give_the_pipelines_own_results(chat_model, monkeypatch):
    from llmos.apps.pipelines import pipeline
    from llmos.serving.engine import Engine

    submitted, submit = [], Engine.submit
    monkeypatch.setattr(Engine, "submit", lambda self, prompt, params, emit: (
        submitted.append(self), submit(self, prompt, params, emit))[1])
    app = create_app(*chat_model, model_id="tiny", max_batch=4)
    add_task_routes(app)
    uv, thread, base = start_server(app)
    try:
        texts = ["Ada lives in Paris.", "The cat sat on the mat."]
        summary = httpx.post(base + "/v1/tasks/summarization", json={"input": texts[0], "options": {"max_words": 5}},
                             timeout=30).json()["result"]
        sentiment = httpx.post(base + "/v1/tasks/sentiment-analysis", json={"input": texts[1]},
                               timeout=30).json()["result"]
    finally:
        uv.should_exit = True
        thread.join(timeout=10)
    assert len(submitted) >= 2 and all(engine is app.state.llmos.engine for engine in submitted)
    model, tokenizer = chat_model
    assert summary == pipeline("summarization", model=model, tokenizer=tokenizer, max_words=5)(texts[0])
    [expected] = pipeline("sentiment-analysis", model=model, tokenizer=tokenizer)(texts[1])
    assert sentiment[0]["label"] == expected["label"] and abs(sentiment[0]["score"] - expected["score"]) < 1e-4


@pytest.mark.parametrize("path, body, param, words", [
    ("/v1/tasks/astrology", {"input": "x"}, "task", "valid tasks"),
    ("/v1/tasks/summarization", {"input": "x", "options": {"colour": 1}}, "options.colour", "max_words"),
    ("/v1/tasks/summarization", {"input": "x", "options": {"max_words": 0}}, "options.max_words", "max_words"),
    ("/v1/tasks/translation", {"input": "x", "options": {"tgt_lang": "en"}}, "options.tgt_lang", "both English"),
    ("/v1/tasks/extraction", {"input": "x", "options": {"schema": "/etc/passwd"}}, "options.schema", "file"),
    ("/v1/tasks/extraction", {"input": "x", "options": {"fields": "name", "max_new_tokens": 10**6}},
     "options.max_new_tokens", "from 1 to"),
    ("/v1/tasks/question-answering", {"input": {"context": "x"}}, "input.question", "question"),
    ("/v1/tasks/question-answering", {"input": {"question": "Where?", "context": "?!"}}, "input.context",
     "no words"),
    ("/v1/tasks/quiz", {"input": "... !"}, "input", "no words"),
    ("/v1/tasks/summarization", {"text": "x"}, "input", "Missing required"),
])
def test_a_bad_task_option_or_input_is_one_400_naming_it(url, path, body, param, words):
    res = httpx.post(url + path, json=body, timeout=30)
    assert res.status_code == 400, res.text
    error = res.json()["error"]
    assert error["param"] == param and words in error["message"], error


def test_task_routes_need_the_api_key_when_the_server_has_one(chat_model):
    uv, thread, base = serve(chat_model, api_key="s3cret")
    try:
        assert httpx.get(base + "/v1/tasks").status_code == 401
        assert httpx.post(base + "/v1/tasks/sentiment-analysis", json={"input": "hi"}).status_code == 401
        ok = httpx.post(base + "/v1/tasks/sentiment-analysis", json={"input": "hi"},
                        headers={"Authorization": "Bearer s3cret"}, timeout=30)
        assert ok.status_code == 200, ok.text
    finally:
        uv.should_exit = True
        thread.join(timeout=10)


def test_page_task_picker_shows_a_table_for_extraction_and_bars_for_sentiment(url):
    with browser_page(viewport={"width": 1100, "height": 760}) as page:
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url + "/")
        page.wait_for_selector("#task option[value='extraction']", state="attached")
        page.select_option("#task", "extraction")
        page.fill("#option-fields", "name,city")
        page.fill("#max-tokens", "60")
        page.fill("#input", TEXT)
        page.click("#send")
        page.wait_for_selector(".message.task[data-finish]", timeout=20000)
        assert page.locator("#error").is_hidden(), page.locator("#error").inner_text()
        page.wait_for_selector(".message.task table.result-table")
        rows = page.locator(".message.task table.result-table tbody tr")
        assert rows.count() == 2
        assert rows.first.locator("th").inner_text() == "name"

        page.select_option("#task", "sentiment-analysis")
        page.fill("#input", "今天天气很好，我很开心")
        page.click("#send")
        page.wait_for_selector(".message.task[data-finish] >> nth=1", timeout=20000)
        assert page.locator("#error").is_hidden(), page.locator("#error").inner_text()
        page.wait_for_selector(".message.task .label-bars")
        assert page.locator(".message.task .label-bar").count() == 2
        assert "今天天气很好，我很开心" in page.locator(".message.user").last.inner_text()
        page.locator(".message.task details").last.click()  # the raw JSON opens
        assert '"label"' in page.locator(".message.task details pre").last.inner_text()
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT))
        assert errors == []
