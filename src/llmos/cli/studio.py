"""Layer 9: `llmos studio`: the local web app to train, watch, compare and try models.

`llmos studio --runs-dir runs --data-dir data` serves it on http://127.0.0.1:8500/.
Every path a page sends must lie in the runs folder, the models folder or a
--data-dir (repeatable; default: the current folder). --host 0.0.0.0 exposes it
to the network: give it an --api-key then.
"""

from __future__ import annotations

from pathlib import Path

import typer

from llmos.errors import LLMOSError


def studio_command(
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Folder of the runs (created if missing)."),
    models_dir: Path = typer.Option(None, "--models-dir", help="Models folder (default: LLMOS_MODELS_DIR or "
                                                               "~/.cache/llmos/models)."),
    data_dir: list[Path] = typer.Option(None, "--data-dir", help="A folder data paths may point into (repeatable; "
                                                                 "default: the current folder)."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind; 0.0.0.0 exposes the studio to the network."),
    port: int = typer.Option(8500, help="TCP port."),
    api_key: str = typer.Option(None, envvar="LLMOS_STUDIO_KEY", help="Require this key on every route "
                                                                      "(open /?key=KEY once in the browser)."),
) -> None:
    """Open LLMOS Studio: runs with live curves, a new-run form, models, evaluations, a playground."""
    import uvicorn

    from llmos.studio.app import create_app
    from llmos.studio.settings import StudioSettings

    if not 1 <= port <= 65535:
        raise LLMOSError(f"--port must be between 1 and 65535, got {port}")
    if runs_dir.exists() and not runs_dir.is_dir():
        raise LLMOSError(f"--runs-dir {str(runs_dir)!r} is not a directory")
    if models_dir is not None and not models_dir.is_dir():
        raise LLMOSError(f"--models-dir {str(models_dir)!r} is not a directory")
    for folder in data_dir or []:
        if not folder.is_dir():
            raise LLMOSError(f"--data-dir {str(folder)!r} is not a directory")
    if api_key is not None and not api_key.strip():
        raise LLMOSError("--api-key is empty; give a key, or leave the option out")
    settings = StudioSettings(runs_dir, models_dir, tuple(data_dir or [Path(".")]), api_key, host, port)
    app = create_app(settings)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{shown}:{port}/" + ("?key=" + api_key if api_key else "")
    typer.echo(f"LLMOS Studio on {url}  (runs: {app.state.settings.runs_dir})")
    if host not in ("127.0.0.1", "localhost", "::1") and api_key is None:
        typer.echo(f"warning: --host {host} without --api-key lets anyone on the network start jobs", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def register(app: typer.Typer) -> None:
    app.command("studio")(studio_command)
