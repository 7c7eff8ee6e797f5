"""/metrics through a real server: Prometheus text from prometheus_client, one registry per app,
and gauges that read the present (running requests are 0 when idle)."""

from __future__ import annotations

import time

import httpx
import openai
from prometheus_client.parser import text_string_to_metric_families

from llmos.serving.api import create_app


def sample(url: str, name: str, labels: dict[str, str] | None = None) -> float | None:
    """The value of one sample on the server's /metrics page, read by Prometheus's own parser."""
    response = httpx.get(url + "/metrics")
    assert response.status_code == 200
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            if s.name == name and (labels is None or all(s.labels.get(k) == v for k, v in labels.items())):
                return s.value
    return None


def wait_for(url: str, name: str, wanted: float, seconds: float = 5.0) -> float | None:
    deadline = time.time() + seconds
    value = sample(url, name)
    while value != wanted and time.time() < deadline:
        time.sleep(0.05)
        value = sample(url, name)
    return value


def test_running_requests_reads_zero_when_idle(server):
    out = httpx.post(server.url + "/v1/completions", json={"model": "tiny", "prompt": "hi", "max_tokens": 3})
    assert out.status_code == 200
    assert wait_for(server.url, "llmos_running_requests", 0.0) == 0.0


def test_running_requests_counts_the_requests_decoding_now(tokenizer, kit):
    model = kit.build_model(tokenizer.get_vocab_size())
    model.register_forward_pre_hook(lambda module, args: time.sleep(0.02))  # ~2 s for 100 tokens
    app = create_app(model, tokenizer, model_id="slow", max_batch=4)
    uv, thread, url = kit.start_server(app)
    try:
        client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
        streams = [client.completions.create(model="slow", prompt="hello", max_tokens=100, stream=True)
                   for _ in range(2)]
        for stream in streams:
            next(iter(stream))  # both are decoding now
        assert sample(url, "llmos_running_requests") == 2.0
        for stream in streams:
            stream.close()
        assert wait_for(url, "llmos_running_requests", 0.0) == 0.0
    finally:
        uv.should_exit = True
        thread.join(timeout=10)


def test_metrics_are_prometheus_text_with_the_known_names(server):
    httpx.post(server.url + "/v1/completions", json={"model": "tiny", "prompt": "hi", "max_tokens": 2})
    response = httpx.get(server.url + "/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    expected = {
        "llmos_requests": "counter", "llmos_http_responses": "counter", "llmos_prompt_tokens": "counter",
        "llmos_generation_tokens": "counter", "llmos_queue_depth": "gauge",
        "llmos_running_requests": "gauge", "llmos_batch_size": "histogram",
        "llmos_decode_step_seconds": "histogram", "llmos_time_to_first_token_seconds": "histogram",
        "llmos_inter_token_latency_seconds": "histogram", "llmos_request_latency_seconds": "histogram",
    }
    assert {name: families[name].type for name in expected if name in families} == expected
    assert sample(server.url, "llmos_requests_total", {"status": "cancelled"}) is not None  # listed at 0
    assert sample(server.url, "llmos_http_responses_total", {"route": "/v1/completions", "code": "200"}) >= 1


def test_two_servers_in_one_process_count_separately(tokenizer, kit):
    servers = []
    try:
        for name in ("a", "b"):
            app = create_app(kit.build_model(tokenizer.get_vocab_size()), tokenizer, model_id=name)
            servers.append(kit.start_server(app))
        url_a, url_b = servers[0][2], servers[1][2]
        for _ in range(3):
            httpx.post(url_a + "/v1/completions", json={"model": "a", "prompt": "hi", "max_tokens": 2})
        assert sample(url_a, "llmos_generation_tokens_total") == 6.0
        assert sample(url_b, "llmos_generation_tokens_total") == 0.0
    finally:
        for uv, thread, _ in servers:
            uv.should_exit = True
            thread.join(timeout=10)
