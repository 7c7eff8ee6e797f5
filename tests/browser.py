"""Test helper: Debian's Chromium for Playwright (no browser download), with the flags this machine needs.

`browser_page(**options)` gives a page of a fresh headless Chromium with its own temporary profile
(options go to Playwright's `launch_persistent_context`, e.g. `viewport=`); it skips the test when
chromium or playwright is missing, and closes the browser afterwards.
"""

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@contextmanager
def browser_page(**options) -> Iterator:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with tempfile.TemporaryDirectory() as profile, sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True,
                                                       args=FLAGS, **options)
        try:
            yield context.new_page()
        finally:
            context.close()
