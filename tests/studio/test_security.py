"""The studio's guard over real HTTP: with --api-key every route (page, static, API, SSE) needs the key, as a
Bearer header or the cookie /?key= sets; the Host header must be loopback (DNS rebinding) and another
site's Origin cannot POST."""

from __future__ import annotations

import json

import httpx
from studio_helpers import studio

KEY = "s3cret-key"


def test_every_route_needs_the_key_and_the_page_trades_it_for_a_cookie(tmp_path):
    with studio(tmp_path, api_key=KEY) as (client, settings):
        run_dir = settings.runs_dir / "r"
        run_dir.mkdir()
        (run_dir / "metrics.jsonl").write_text(json.dumps({"kind": "train", "step": 1, "loss": 2.0}) + "\n")
        bare = httpx.Client(base_url=str(client.base_url), timeout=10)
        for path in ("/api/runs", "/api/runs/r", "/api/runs/r/events", "/api/recipes", "/api/models",
                     "/static/plotly.min.js", "/static/studio.js"):
            refused = bare.get(path)
            assert refused.status_code == 401, path
            assert "Bearer" in refused.json()["error"]["message"]
        assert bare.post("/api/runs", json={}).status_code == 401
        page = bare.get("/")
        assert page.status_code == 401 and "/?key=" in page.text and page.headers["content-type"].startswith("text/html")
        assert bare.get("/", params={"key": "wrong"}).status_code == 401

        opened = bare.get("/", params={"key": KEY})
        assert opened.status_code == 303 and opened.headers["location"] == "/"
        cookie = opened.headers["set-cookie"].lower()
        assert "llmos_studio_key=" in cookie and "httponly" in cookie and "samesite=strict" in cookie
        assert bare.get("/").status_code == 200  # the cookie now opens the page ...
        assert bare.get("/api/runs").json()["runs"][0]["name"] == "r"  # ... and the API
        with bare.stream("GET", "/api/runs/r/events") as stream:  # ... and the live events
            assert stream.status_code == 200
            assert next(stream.iter_lines()) == "event: metric"
        bare.close()

        plotly = client.get("/static/plotly.min.js")  # the Bearer header works everywhere too
        assert plotly.status_code == 200 and "javascript" in plotly.headers["content-type"]
        assert len(plotly.content) > 1_000_000


def test_a_foreign_host_or_origin_is_refused(tmp_path):
    with studio(tmp_path) as (client, _):
        port = client.base_url.port
        assert client.get("/api/runs", headers={"Host": f"localhost:{port}"}).status_code == 200
        rebinding = client.get("/api/runs", headers={"Host": f"attacker.example:{port}"})
        assert rebinding.status_code == 403 and "not this studio's" in rebinding.json()["error"]["message"]
        assert client.get("/", headers={"Host": "attacker.example"}).status_code == 403
        forged = client.post("/api/runs", json={"verb": "pretrain", "name": "x", "fields": {}},
                             headers={"Origin": "http://attacker.example"})
        assert forged.status_code == 403
        other_local = client.post("/api/runs/x/stop", headers={"Origin": f"http://127.0.0.1:{port + 1}"})
        assert other_local.status_code == 403  # another server on this machine is another site
        same = client.post("/api/runs", json={"verb": "pretrain", "name": "x", "fields": {"data_dir": "none"}},
                           headers={"Origin": f"http://127.0.0.1:{port}"})
        assert same.status_code == 400  # through the guard, refused by validation
