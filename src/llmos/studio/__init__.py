"""Layer 8b: LLMOS Studio, one local web app to train, watch, compare and try models.

`llmos studio` serves it (FastAPI + uvicorn, as the server; no build step, no CDN):
runs with live curves, a new-run form generated from the recipe dataclasses, models
and checkpoints with their evaluations, a side-by-side playground, and dataset
previews. Its state is the run folders themselves (recipe.yaml, metrics.jsonl,
checkpoints, and the job.json / job.log its jobs write), so a page reload, a second
tab or a studio restart all see the same thing.

It sits above `apps` (the playground's task picker uses the pipelines) and below `cli`.
"""
