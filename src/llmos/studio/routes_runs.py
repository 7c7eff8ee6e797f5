"""Layer 8b: the runs API: list, read, follow (SSE), create, stop and resume training runs.

A new run is validated like the CLI validates a recipe (`recipe_form`), written as
`<runs_dir>/<name>/recipe.yaml` and started as a `llmos pretrain|finetune --config`
job (`jobs`); stop and resume act on that job. See the module docstrings of
`runs` and `run_events` for what is read back.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body
from fastapi.responses import StreamingResponse

from llmos.studio import jobs, runs
from llmos.studio.paths import StudioError
from llmos.studio.recipe_form import RECIPES, build_config, form_fields
from llmos.studio.run_events import run_events
from llmos.studio.settings import StudioSettings


def router(settings: StudioSettings) -> APIRouter:
    api = APIRouter(prefix="/api")

    @api.get("/runs")
    def list_runs() -> dict[str, Any]:
        return {"runs": runs.list_runs(settings)}

    @api.get("/runs/{name}")
    def run_detail(name: str) -> dict[str, Any]:
        return runs.detail(runs.run_path(settings, name))

    @api.get("/runs/{name}/events")
    def run_event_stream(name: str) -> StreamingResponse:
        return StreamingResponse(run_events(runs.run_path(settings, name)), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @api.get("/recipes")
    def recipes() -> dict[str, Any]:
        return {verb: form_fields(verb) for verb in RECIPES}

    @api.post("/runs", status_code=201)
    def create_run(body: Any = Body(...)) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise StudioError("the body must be a JSON object with verb, name and fields")
        verb = body.get("verb")
        if verb not in RECIPES:
            raise StudioError(f"verb {verb!r} is not valid; expected one of {list(RECIPES)}", field="verb")
        name = runs.check_name(body.get("name"))
        path = runs.run_path(settings, name, must_exist=False)
        if path.exists():
            raise _taken(name)
        config = build_config(verb, body.get("fields") or {}, settings, path)
        try:
            path.mkdir()
        except FileExistsError:
            raise _taken(name) from None
        config.save_yaml(path / "recipe.yaml")
        jobs.start(verb, path, ["--config", path / "recipe.yaml"])
        return runs.summary(path)

    @api.post("/runs/{name}/stop", status_code=202)
    def stop_run(name: str) -> dict[str, Any]:
        path = runs.run_path(settings, name)
        jobs.stop(path)
        return {**runs.summary(path), "state": "stopping"}

    @api.post("/runs/{name}/resume")
    def resume_run(name: str) -> dict[str, Any]:
        path = runs.run_path(settings, name)
        if not (path / "recipe.yaml").is_file():
            raise StudioError(f"run {name!r} has no recipe.yaml to resume from", status=409)
        verb = runs.summary(path)["verb"]
        jobs.start(verb, path, ["--config", path / "recipe.yaml", "--resume", "auto"])
        return runs.summary(path)

    return api


def _taken(name: str) -> StudioError:
    return StudioError(f"run {name!r} already exists; resume it or pick another name", status=409, field="name")
