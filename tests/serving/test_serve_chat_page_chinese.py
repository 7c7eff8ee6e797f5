"""The web chat page with Chinese: typed Chinese in, the Chinese answer streamed and rendered whole.

Headless Debian Chromium driven by Playwright, against a server of the tiny
model that answers in Chinese (tests/chinese_model.py). Every text the answer
bubble shows while it streams is recorded in the page, so a half character on
screen, not only in the final text, fails the test.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest
from browser import browser_page
from chinese_model import QUESTION, REPLY, chinese_chat_model

from llmos.serving.api import create_app

SCREENSHOT = Path(os.environ.get("LLMOS_SCREENSHOT_DIR", "runs")) / "serve_chat_page_chinese.png"
RECORD = """() => {
  window.seen = [];
  new MutationObserver(() => {
    for (const bubble of document.querySelectorAll('.message.assistant')) {
      window.seen.push(bubble.firstChild ? bubble.firstChild.nodeValue || '' : '');
    }
  }).observe(document.getElementById('messages'), {childList: true, subtree: true, characterData: true});
}"""


@pytest.fixture(scope="module")
def chinese_server(kit):
    model, tokenizer = chinese_chat_model()
    app = create_app(model, tokenizer, model_id="zh-tiny")
    server, thread, url = kit.start_server(app)
    yield url, app
    server.should_exit = True
    thread.join(timeout=10)


def test_chat_page_shows_the_chinese_answer_to_a_chinese_question(chinese_server, monkeypatch):
    url, app = chinese_server
    api_answer = httpx.post(url + "/v1/chat/completions", timeout=30, json={
        "model": "zh-tiny", "messages": [{"role": "user", "content": QUESTION}], "temperature": 0,
        "max_tokens": 80}).json()["choices"][0]["message"]["content"]
    assert api_answer == REPLY
    with browser_page(viewport={"width": 1100, "height": 700}) as page:
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        engine = app.state.llmos.engine
        decode = engine._decode

        def slow_decode(rows):  # the tiny model is too quick for the page to show states between tokens
            time.sleep(0.02)
            decode(rows)

        monkeypatch.setattr(engine, "_decode", slow_decode)
        page.goto(url + "/")
        page.wait_for_selector("#model-name:has-text('zh-tiny')")
        page.eval_on_selector("#temperature", "el => { el.value = '0'; el.dispatchEvent(new Event('input')); }")
        page.fill("#max-tokens", "80")
        page.evaluate(RECORD)
        page.fill("#input", QUESTION)
        page.keyboard.press("Enter")
        page.wait_for_function(
            "document.querySelector('.message.assistant')?.dataset.finish === 'stop'", timeout=20000)
        shown = page.evaluate("document.querySelector('.message.assistant').firstChild.nodeValue")
        seen = page.evaluate("window.seen")
        assert page.locator(".message.user").first.inner_text() == QUESTION
        assert shown == api_answer  # the page renders what the API answers
        assert all("\ufffd" not in text for text in seen)  # never a half character on screen
        assert all(REPLY.startswith(text) for text in seen)  # each state a prefix of the answer
        assert len(set(seen)) > 2  # it streamed, not appeared at once
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT))
        assert errors == []
