"""The /docs page (Swagger UI) in headless Chromium with every request off the server refused:
it must render the API from /openapi.json without a CDN."""

from __future__ import annotations

import tempfile

import pytest
from browser import CHROMIUM, FLAGS


def test_docs_page_renders_the_operations_offline(server):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    refused = []

    def only_this_server(route):
        if route.request.url.startswith(server.url):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    with tempfile.TemporaryDirectory() as profile, sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True,
                                                       args=FLAGS)
        try:
            context.route("**/*", only_this_server)
            page = context.new_page()
            errors = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(server.url + "/docs")
            page.wait_for_selector(".opblock-summary-path", timeout=20000)
            paths = page.locator(".opblock-summary-path").all_inner_texts()
        finally:
            context.close()
    assert {"/v1/completions", "/v1/chat/completions", "/tokenize"} <= {p.replace("\u200b", "") for p in paths}
    assert refused == [] and errors == []
