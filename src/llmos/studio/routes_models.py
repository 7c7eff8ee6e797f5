"""Layer 8b: the models API: every model the studio can use, its checkpoints' evaluations, and new ones.

GET /api/models lists embedded models, the models folder and run checkpoints (see
`models`); POST /api/evaluate starts `llmos eval` as a job; GET /api/evals/{owner}/{name}
reads one evaluation (its state, report and log).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body

from llmos.studio import models
from llmos.studio.settings import StudioSettings


def router(settings: StudioSettings) -> APIRouter:
    api = APIRouter(prefix="/api")

    @api.get("/models")
    def list_models() -> dict[str, Any]:
        return {"models": models.list_models(settings)}

    @api.post("/evaluate", status_code=201)
    def evaluate(body: Any = Body(...)) -> dict[str, Any]:
        return models.start_evaluation(settings, body)

    @api.get("/evals/{owner}/{name}")
    def evaluation(owner: str, name: str) -> dict[str, Any]:
        return models.eval_detail(models.eval_path(settings, owner, name))

    return api
