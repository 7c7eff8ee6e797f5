"""A web page the user visits cannot drive the local server (issue 22, item 5): over real HTTP, a
foreign Host header (DNS rebinding) is refused on loopback, JSON routes take only application/json
(a form or text/plain POST needs no CORS preflight), another site's POST is refused, and the
origins the user allows get proper CORS answers, preflight included."""

from __future__ import annotations

import json

import httpx
import pytest

from llmos.errors import LLMOSError
from llmos.serving.origin_guard import OriginGuard

CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 2}
JSON = {"Content-Type": "application/json"}
APP_ORIGIN = "http://localhost:3000"


def port_of(server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def test_a_foreign_host_is_refused_on_loopback_and_loopback_names_pass(server):
    port = port_of(server)
    for host in (f"attacker.example:{port}", "attacker.example", f"127.0.0.1.attacker.example:{port}"):
        for response in (httpx.get(server.url + "/v1/models", headers={"Host": host}),
                         httpx.post(server.url + "/v1/chat/completions", json=CHAT, headers={"Host": host})):
            assert response.status_code == 403, (host, response.text)
            message = response.json()["error"]["message"]
            assert "not this server's" in message and "--allowed-hosts" in message
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", f"LOCALHOST:{port}"):
        assert httpx.get(server.url + "/v1/models", headers={"Host": host}).status_code == 200, host


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/jsonx"])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions", "/tokenize", "/detokenize"])
def test_json_routes_refuse_a_body_not_sent_as_application_json(server, path, content_type):
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = httpx.post(server.url + path, content=json.dumps(CHAT).encode(), headers=headers)
    assert response.status_code == 415, response.text
    error = response.json()["error"]
    assert "Content-Type: application/json" in error["message"] and error["code"] == "unsupported_media_type"


def test_application_json_with_a_charset_and_the_openai_client_are_served(server, client):
    response = httpx.post(server.url + "/v1/chat/completions", content=json.dumps(CHAT).encode(),
                          headers={"Content-Type": "Application/JSON; charset=utf-8"})
    assert response.status_code == 200, response.text
    assert client.chat.completions.create(**CHAT).choices[0].finish_reason == "length"


def test_another_sites_post_is_refused_and_the_servers_own_page_passes(server):
    port = port_of(server)
    for origin in ("http://attacker.example", f"http://127.0.0.1:{port + 1}", "null"):
        refused = httpx.post(server.url + "/v1/chat/completions", json=CHAT, headers={"Origin": origin})
        assert refused.status_code == 403, origin
        assert origin in refused.json()["error"]["message"] and "--allowed-origins" in refused.json()["error"]["message"]
        read = httpx.get(server.url + "/v1/models", headers={"Origin": origin})  # the browser keeps it from the page
        assert read.status_code == 200 and "access-control-allow-origin" not in read.headers
        assert httpx.options(server.url + "/v1/chat/completions", headers={
            "Origin": origin, "Access-Control-Request-Method": "POST"}).status_code >= 400
    own = httpx.post(server.url + "/v1/chat/completions", json=CHAT, headers={"Origin": f"http://127.0.0.1:{port}"})
    assert own.status_code == 200, own.text


@pytest.fixture(scope="module")
def open_server(tokenizer, kit):
    """A server whose user allowed one more host name and one web app's origin."""
    from llmos.serving.api import create_app

    app = create_app(kit.build_model(tokenizer.get_vocab_size()), tokenizer, model_id="tiny", max_batch=4,
                     allowed_hosts=["MyBox.lan"], allowed_origins=[APP_ORIGIN + "/"], api_key="k")
    uv, thread, url = kit.start_server(app)
    yield type("Running", (), {"url": url})
    uv.should_exit = True
    thread.join(timeout=10)


def test_allowed_hosts_and_origins_are_answered_with_cors(open_server):
    url, key = open_server.url, {"Authorization": "Bearer k"}
    port = int(url.rsplit(":", 1)[1])
    assert httpx.get(url + "/v1/models", headers={**key, "Host": f"mybox.lan:{port}"}).status_code == 200
    assert httpx.get(url + "/v1/models", headers={**key, "Host": f"other.lan:{port}"}).status_code == 403

    preflight = httpx.options(url + "/v1/chat/completions", headers={
        "Origin": APP_ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, x-stainless-lang"})
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] == APP_ORIGIN
    assert "POST" in preflight.headers["access-control-allow-methods"]
    allowed_headers = preflight.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed_headers and "content-type" in allowed_headers

    answer = httpx.post(url + "/v1/chat/completions", json=CHAT, headers={**key, "Origin": APP_ORIGIN})
    assert answer.status_code == 200, answer.text
    assert answer.headers["access-control-allow-origin"] == APP_ORIGIN
    assert "x-request-id" in answer.headers["access-control-expose-headers"].lower()
    wrong_key = httpx.post(url + "/v1/chat/completions", json=CHAT, headers={"Origin": APP_ORIGIN})
    assert wrong_key.status_code == 401  # the page can read why: the refusal carries CORS headers too
    assert wrong_key.headers["access-control-allow-origin"] == APP_ORIGIN

    other = httpx.post(url + "/v1/chat/completions", json=CHAT, headers={**key, "Origin": "http://evil.example"})
    assert other.status_code == 403 and "access-control-allow-origin" not in other.headers
    other_preflight = httpx.options(url + "/v1/chat/completions", headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    assert other_preflight.status_code >= 400 and "access-control-allow-origin" not in other_preflight.headers


def test_bound_beyond_loopback_any_host_passes_unless_names_are_given():
    exposed = OriginGuard("0.0.0.0")
    assert exposed.host_refusal("whatever.example:8000", 8000) is None
    named = OriginGuard("0.0.0.0", allowed_hosts=("mybox.lan",))
    assert named.host_refusal("mybox.lan:8000", 8000) is None
    assert named.host_refusal("localhost:8000", 8000) is None
    assert "not this server's" in named.host_refusal("whatever.example:8000", 8000)
    assert OriginGuard("127.0.0.1", allowed_hosts=("*",)).host_refusal("any.example", 8000) is None
    assert OriginGuard("127.0.0.1", allowed_origins=("*",)).origin_refusal("POST", "http://a.example", "x") is None


@pytest.mark.parametrize(("hosts", "origins", "needle"), [
    (["http://mybox.lan"], [], "not a host name"),
    (["mybox.lan:8000"], [], "not a host name"),
    ([], ["localhost:3000"], "not an origin"),
    ([], ["http://localhost:3000/app"], "not an origin"),
    ([], ["ftp://localhost"], "not an origin"),
])
def test_a_malformed_allowed_host_or_origin_is_one_clear_error(hosts, origins, needle):
    with pytest.raises(LLMOSError, match=needle):
        OriginGuard("127.0.0.1", allowed_hosts=tuple(hosts), allowed_origins=tuple(origins))
