"""LLMOS Studio's page in headless Chromium against the real studio app on uvicorn, with tiny token shards
built here: a run started from the form draws its curve live, stops and resumes; a checkpoint is evaluated;
two checkpoints answer side by side in the playground; a dataset is previewed; bad input on the page gets
the server's message next to the field. Each page is screenshotted into build/screenshots/studio-<page>.png.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from urllib.parse import quote

import pytest
from browser import browser_page
from live_server import start_server
from typer.testing import CliRunner

from llmos.cli.main import app as cli
from llmos.studio.app import create_app
from llmos.studio.settings import StudioSettings

SCREENSHOTS = Path(os.environ.get("LLMOS_SCREENSHOT_DIR", Path(__file__).resolve().parents[2] / "build" / "screenshots"))
VIEWPORT = {"width": 1280, "height": 900}
TEXT = [f"Section {i}. The function returns the value of the argument, or None if it is missing. "
        f"Use the module to read files line by line; each line ends with a newline. Example {i}: x = f({i})"
        for i in range(80)]
TINY = {"model": "micro", "context": 32, "batch_size": 4, "eval_every": 100, "eval_batches": 2, "log_every": 2}


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    """(base URL, data folder, runs folder): a studio over two finished tiny runs, "early" (30 steps) and "done"."""
    from llmos.data import prepare

    root = tmp_path_factory.mktemp("studio")
    data, runs = root / "data", root / "runs"
    (root / "docs").mkdir()
    for i, paragraph in enumerate(TEXT):
        (root / "docs" / f"doc{i:03d}.txt").write_text(paragraph + "\n")
    prepare([root / "docs"], data / "shards", vocab_size=300, val_fraction=0.2, progress=False)
    (data / "held-out.txt").write_text("\n".join(TEXT[::7]) + "\n")
    (data / "notes.jsonl").write_text("".join(json.dumps({"text": t, "id": i}) + "\n" for i, t in enumerate(TEXT)))
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    for name, steps in (("early", 30), ("done", 250)):
        trained = CliRunner().invoke(cli, ["pretrain", "--data-dir", str(data / "shards"), "--out-dir",
                                           str(runs / name), "--max-steps", str(steps), "--no-progress", *flags],
                                     catch_exceptions=False)
        assert trained.exit_code == 0, trained.output
    settings = StudioSettings(runs_dir=runs, models_dir=root / "models", data_dirs=(data,)).resolved()
    server, thread, url = start_server(create_app(settings))
    yield url, data, runs
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def page():
    with browser_page(viewport=VIEWPORT) as page:
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        yield page
        assert errors == []


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"studio-{name}.png"), full_page=True)


def fill_form(page, name: str, fields: dict) -> None:
    page.wait_for_selector("#field-data_dir")
    page.fill("#field-name", name)
    page.locator("#advanced").evaluate("node => node.open = true")
    for field, value in fields.items():
        if page.locator(f"select#field-{field}").count():
            page.select_option(f"#field-{field}", str(value))
        else:
            page.fill(f"#field-{field}", str(value))


def points(page) -> int:
    return int(page.locator("#loss-chart").get_attribute("data-points") or 0)


def test_a_run_started_from_the_form_draws_its_curve_stops_and_resumes(studio, page):
    url, _, runs = studio
    page.goto(url + "/#new")
    # max_minutes: the job ends by itself even if this test fails before it stops it
    fill_form(page, "live", {"data_dir": "shards", "max_steps": 100000, "max_minutes": 2, **TINY})
    page.locator("#advanced").evaluate("node => node.open = false")
    screenshot(page, "new-run")
    page.click("#new-start")
    page.wait_for_url("**/#run/live")
    page.wait_for_function("() => +document.querySelector('#loss-chart').dataset.points >= 20", timeout=30000)
    first = points(page)
    page.wait_for_function(f"() => +document.querySelector('#loss-chart').dataset.points > {first}", timeout=15000)
    assert page.locator("#run-state").inner_text() == "running"
    # the job's log shows the run as it goes (plain progress lines off a terminal)
    page.wait_for_function("() => /step \\d+\\/100000 \\| loss/.test(document.querySelector('#run-log').textContent)",
                           timeout=15000)
    screenshot(page, "run")

    page.click("#run-stop")
    page.wait_for_function("() => document.querySelector('#run-state').textContent === 'stopped'", timeout=30000)
    page.wait_for_function("() => /trained \\d+ steps/.test(document.querySelector('#run-log').textContent)")
    assert "last" in page.locator("#run-checkpoints").inner_text()
    stopped_at = points(page)
    page.reload()  # the hash keeps the view, and the curve comes back from metrics.jsonl
    page.wait_for_function(f"() => +document.querySelector('#loss-chart').dataset.points >= {stopped_at}")
    page.click("#run-resume")
    page.wait_for_function("() => document.querySelector('#run-state').textContent === 'running'", timeout=15000)
    page.wait_for_function(f"() => +document.querySelector('#loss-chart').dataset.points > {stopped_at}",
                           timeout=30000)
    page.click("#run-stop")
    page.wait_for_function("() => document.querySelector('#run-state').textContent === 'stopped'", timeout=30000)

    page.goto(url + "/#runs")
    row = page.locator("#runs-body tr[data-run='live']")
    row.wait_for()
    assert row.locator("[data-testid=state]").inner_text() == "stopped"
    assert page.locator("#runs-body tr[data-run='done'] [data-testid=state]").inner_text() == "finished"
    screenshot(page, "runs")

    page.goto(url + "/#run/live")
    page.wait_for_function("() => +document.querySelector('#loss-chart').dataset.points > 0")
    shutil.rmtree(runs / "live")
    page.wait_for_selector("#run-gone:not([hidden])", timeout=10000)
    assert "deleted" in page.inner_text("#run-gone")


def test_bad_input_on_the_form_shows_the_servers_message_next_to_the_field(studio, page):
    url, _, runs = studio
    page.goto(url + "/#new")
    fill_form(page, "bad", {"data_dir": "shards", "max_steps": 0})
    page.click("#new-start")
    page.wait_for_selector("#error-max_steps:not([hidden])")
    assert "max_steps" in page.inner_text("#error-max_steps")
    assert page.input_value("#field-max_steps") == "0" and page.input_value("#field-name") == "bad"  # kept

    page.click("#verb-finetune")  # the other recipe's fields, then back: what was typed is still there
    page.wait_for_selector("#field-base_model")
    assert page.locator("#field-data_dir").count() == 0
    page.click("#verb-pretrain")
    assert page.input_value("#field-max_steps") == "0" and page.input_value("#field-data_dir") == "shards"
    page.fill("#field-max_steps", "5")
    page.fill("#field-data_dir", "no-such-shards")
    page.click("#new-start")
    page.wait_for_selector("#error-data_dir:not([hidden])")
    assert "does not exist" in page.inner_text("#error-data_dir")
    assert page.locator("#error-max_steps").is_hidden()
    screenshot(page, "new-run-error")

    page.fill("#field-data_dir", "shards")
    page.fill("#field-name", "done")  # a second start of an existing run
    page.click("#new-start")
    page.wait_for_function("() => /already exists/.test(document.querySelector('#error-name').textContent + "
                           "document.querySelector('#new-error').textContent)")
    assert not (runs / "bad").exists()


def test_a_checkpoint_is_evaluated_from_the_models_page(studio, page):
    url, _, runs = studio
    page.goto(url + "/#models")
    row = page.locator("#models-body tr[data-model='runs:done/best']")
    row.wait_for()
    row.get_by_role("button", name="Evaluate").click()
    page.click("#eval-start")  # no data path
    page.wait_for_selector("#eval-error:not([hidden])")
    assert "data" in page.inner_text("#eval-error")
    page.fill("#eval-data", "held-out.txt")
    page.click("#eval-start")
    page.wait_for_selector("#eval-result[data-state='finished']", timeout=60000)
    assert "perplexity" in page.inner_text("#eval-result")
    # The table is listed again after the result shows (seconds: every checkpoint's config is read).
    row.locator("ul.evals", has_text="perplexity").wait_for(timeout=60000)
    assert "perplexity" in row.locator("ul.evals").inner_text()
    screenshot(page, "models")


def test_the_models_table_says_loading_until_the_list_arrives(studio, page):
    url, _, _ = studio
    held = []  # GET /api/models, answered only when the test lets it through
    page.route("**/api/models", lambda route: held.append(route))
    page.goto(url + "/#models")
    loading = page.locator("#models-body tr.placeholder")
    loading.wait_for()
    assert loading.inner_text().strip() == "loading…"
    page.wait_for_timeout(200)
    assert held and loading.is_visible()  # asked, no answer yet: still loading
    for route in held:  # the table's request and the model pickers' (fillPathLists)
        route.continue_()
    page.locator("#models-body tr[data-model='runs:done/best']").wait_for()
    assert page.locator("#models-body tr.placeholder").count() == 0


def test_the_playground_streams_two_runs_side_by_side(studio, page):
    url, _, _ = studio
    page.goto(url + "/#playground/" + quote("runs:early/last", safe=""))  # a run page's "try in the playground"
    page.wait_for_selector("#model-b option[value='runs:done/best']", state="attached")
    assert page.input_value("#model-a") == "runs:early/last"
    page.select_option("#model-b", "runs:done/best")
    page.fill("#max-new-tokens", "24")
    page.fill("#temperature", "0.8")  # blank decodes greedily, and an early checkpoint's greedy text is blanks
    page.fill("#prompt", "The function returns")
    page.fill("#json-schema", "{not json")
    page.click("#play-run")
    assert "not valid JSON" in page.inner_text("#error-json-schema")
    assert page.inner_text("#output-a") == ""  # nothing was sent
    page.fill("#json-schema", "")
    page.click("#play-run")
    page.wait_for_selector("#output-a[data-done='true']", timeout=30000)
    page.wait_for_selector("#output-b[data-done='true']", timeout=30000)
    for side in "ab":
        assert page.inner_text(f"#output-{side}").strip()
        assert "tokens/s" in page.inner_text(f"#stats-{side}")
    screenshot(page, "playground")


def test_the_datasets_page_previews_shards_and_a_jsonl_file(studio, page):
    url, _, _ = studio
    page.goto(url + "/#datasets")
    page.locator("#dataset-list a", has_text="notes.jsonl").click()
    page.wait_for_selector("#dataset-rows tbody tr")
    assert page.locator("#dataset-rows tbody tr").count() == 20
    assert "text" in page.inner_text("#dataset-rows thead")
    assert page.inner_text("[data-stat=Rows]") == "80"
    page.wait_for_selector("#token-histogram .bars path", state="attached")
    page.locator("#dataset-list a", has_text="shards").click()
    page.wait_for_function("() => /shards/.test(document.querySelector('#dataset-path').textContent)")
    assert int(page.inner_text("[data-stat=Tokens]").replace(",", "")) > 1000
    screenshot(page, "datasets")


def test_a_studio_with_a_key_opens_from_its_key_link_and_asks_for_the_key_when_a_request_gets_401(studio, page):
    _, data, runs = studio
    settings = StudioSettings(runs_dir=runs, models_dir=runs.parent / "models", data_dirs=(data,), api_key="s3cret")
    server, thread, url = start_server(create_app(settings))
    try:
        assert page.goto(url + "/").status == 401
        assert "/?key=" in page.inner_text("body")
        page.goto(url + "/?key=s3cret#runs")  # sets the cookie, back to / with the hash kept
        page.wait_for_selector("#runs-body tr[data-run='done']")
        assert page.locator("#key-box").is_hidden()

        page.context.clear_cookies()
        page.evaluate("location.hash = '#models'")
        page.wait_for_selector("#key-box:not([hidden])")
        page.fill("#key-input", "s3cret")
        page.click("#key-submit")
        page.wait_for_selector("#models-body tr[data-model='runs:done/best']")
        assert page.url.endswith("/#models") and page.locator("#key-box").is_hidden()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
