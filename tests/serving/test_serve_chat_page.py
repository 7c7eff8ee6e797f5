"""The web chat page in headless Chromium (Debian's), driven by Playwright: a real round trip."""

from __future__ import annotations

import os
import time
from pathlib import Path

from browser import browser_page

from llmos.generation_config import CHAT_SAMPLING, DEFAULT_REPLY_TOKENS

SCREENSHOT = Path(os.environ.get("LLMOS_SCREENSHOT_DIR", "runs")) / "serve_chat_page.png"


def test_chat_page_streams_an_answer_and_keeps_history(server, monkeypatch):
    with browser_page(viewport={"width": 1100, "height": 700}) as page:
        console_errors = []
        page.on("pageerror", lambda exc: console_errors.append(str(exc)))
        page.goto(server.url + "/")
        page.wait_for_selector("#model-name:has-text('tiny')")
        # the settings start at the server's defaults for this model, and say so
        assert float(page.input_value("#temperature")) == CHAT_SAMPLING["temperature"]
        assert float(page.input_value("#top-p")) == CHAT_SAMPLING["top_p"]
        assert page.input_value("#max-tokens") == str(DEFAULT_REPLY_TOKENS)
        shown = page.inner_text("#defaults")
        assert f"repetition penalty {CHAT_SAMPLING['repetition_penalty']}" in shown and "max tokens" in shown
        page.fill("#system-prompt", "You are terse.")
        page.fill("#max-tokens", "12")
        page.fill("#input", "hello there")
        page.click("#send")
        answer = page.locator(".message.assistant").first
        page.wait_for_function(
            "document.querySelector('.message.assistant')?.dataset.finish === 'length'", timeout=20000)
        first_text = answer.inner_text()
        assert len(first_text.replace("length", "").strip()) > 0
        assert page.locator(".message.user").first.inner_text() == "hello there"

        page.fill("#input", "and again")
        page.keyboard.press("Enter")  # Enter sends
        page.wait_for_function(
            "document.querySelectorAll('.message.assistant')[1]?.dataset.finish === 'length'",
            timeout=20000)
        assert page.locator(".message").count() == 4  # history kept on screen
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT))

        engine = server.app.state.llmos.engine
        decode = engine._decode

        def slow_decode(rows):  # the tiny model is too quick to catch mid-answer otherwise
            time.sleep(0.05)
            decode(rows)

        monkeypatch.setattr(engine, "_decode", slow_decode)
        page.click("#reset")
        page.fill("#max-tokens", "60")
        page.fill("#input", "a long one")
        page.click("#send")
        page.wait_for_selector("#stop:not([disabled])")
        page.click("#stop")
        page.wait_for_function(
            "document.querySelector('.message.assistant')?.dataset.finish === 'stopped'",
            timeout=20000)
        assert page.locator("#send").is_enabled()
        deadline = time.time() + 10
        while engine.rows and time.time() < deadline:  # the aborted request's slot is freed
            time.sleep(0.05)
        assert engine.rows == []
        assert console_errors == []
