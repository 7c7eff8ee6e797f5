"""The /docs page (Swagger UI) in headless Chromium with every request off the server refused:
it must render the API from /openapi.json without a CDN."""

from __future__ import annotations

from browser import browser_page


def test_docs_page_renders_the_operations_offline(server):
    refused = []

    def only_this_server(route):
        if route.request.url.startswith(server.url):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    with browser_page() as page:
        page.route("**/*", only_this_server)
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(server.url + "/docs")
        page.wait_for_selector(".opblock-summary-path", timeout=20000)
        paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert {"/v1/completions", "/v1/chat/completions", "/tokenize"} <= {p.replace("\u200b", "") for p in paths}
    assert refused == [] and errors == []
