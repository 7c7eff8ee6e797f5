"""Fuzz a real server against its own /openapi.json with schemathesis: bodies drawn from the
published request schemas must never get a 5xx, and every answer must match the published status
codes, content types and response schemas. Bounded and derandomized, so it runs the same cases in
a few seconds each time."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
OPERATIONS = [("GET", "/health"), ("GET", "/version"), ("GET", "/metrics"), ("GET", "/v1/models"),
              ("GET", "/v1/models/{name}"), ("POST", "/v1/completions"), ("POST", "/v1/chat/completions"),
              ("POST", "/tokenize"), ("POST", "/detokenize")]
EXAMPLES = 12  # per operation: the whole file takes about 15 s on two busy CPU cores


@pytest.fixture(scope="module")
def schema(server):
    return schemathesis.openapi.from_url(server.url + "/openapi.json")


def test_the_fuzzed_operations_are_all_the_published_ones(schema):
    published = {(op.ok().method.upper(), op.ok().path) for op in schema.get_all_operations()}
    assert published == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_fuzzed_requests_get_no_server_error_and_match_the_schema(schema, server, method, path):
    operation = schema[path][method]

    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def check(case):
        if isinstance(case.body, dict) and "model" in case.body:
            case.body["model"] = "tiny"  # past the model check, into validation and generation
        case.call_and_validate(base_url=server.url, checks=CHECKS, timeout=60)

    check()


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/completions", {"model": "tiny", "prompt": ["hello", "to be"], "n": 2, "max_tokens": 3, "stream": True,
                         "echo": True, "logprobs": 1, "stream_options": {"include_usage": True}}),
    ("/v1/chat/completions", {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3,
                              "stream": True, "logprobs": True, "top_logprobs": 2}),
])
def test_streamed_answers_match_the_published_event_schema(schema, server, path, body):
    response = schema[path]["POST"].Case(body=body).call_and_validate(base_url=server.url, checks=CHECKS)
    assert response.headers["content-type"][0].startswith("text/event-stream")
