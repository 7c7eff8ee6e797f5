"""Layer 9: `llmos run`: a workflow file, or a task pipeline over a text or a file of inputs.

    llmos run WORKFLOW.yaml [--dry-run --output --model --limit --restart]
    llmos run TASK [MODEL] --input TEXT|FILE [--output FILE] [--batch-size N] [task options]
    llmos run --list                     # the tasks
    llmos run TASK --show-template       # a task's prompt templates, decoding defaults and options

A first argument ending in .yaml or .yml is a workflow (`llmos.apps.workflow`):
checked whole before anything loads, finished items skipped on a re-run, a
failing item stops the run with one line naming it; each finished item is
reported on stderr with the time left. A model's name (`llmos run smollm2`)
gets a pointer to `llmos chat`. Anything else is a task
(`llmos.apps.pipelines`, run by `llmos.cli.run_task`). The options of one kind
given to the other are an error, not ignored.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from llmos.cli.console import progress_report, warnings_as_lines
from llmos.cli.runtime_options import read_tools_adapter, tools_adapter_option
from llmos.errors import LLMOSError

WORKFLOW_SUFFIXES = (".yaml", ".yml")


def run_command(
    target: str = typer.Argument(None, help="A workflow file (.yaml or .yml), or a task (see --list)."),
    task_model: str = typer.Argument(None, metavar="[MODEL]", help="For a task: the model (a name, GGUF file or "
                                                                   "checkpoint directory; default smollm2)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Workflow: check it and print the plan; load and "
                                                          "write nothing."),
    output: Path = typer.Option(None, help="Write results here (.jsonl or .csv); a workflow's default is its "
                                           "own output."),
    model: str = typer.Option(None, help="Use this model instead of the workflow's (for a task: as MODEL)."),
    limit: int = typer.Option(None, help="Workflow: run only the first N items."),
    restart: bool = typer.Option(False, "--restart", help="Workflow: forget finished items and run everything "
                                                          "again."),
    input: str = typer.Option(None, "--input", "-i", help="Task: a text, or a file of inputs (.txt one per line, "
                                                          ".jsonl, .csv) that runs as a batch."),
    batch_size: int = typer.Option(None, help="Task: inputs per batch (default 8)."),
    list_tasks: bool = typer.Option(False, "--list", help="List the tasks and exit."),
    show_template: bool = typer.Option(False, "--show-template", help="Print the task's templates, decoding "
                                                                      "defaults and options, and exit."),
    src_lang: str = typer.Option(None, "--src-lang", "--source-language", help="translation: the source "
                                                                                "language (default en)."),
    tgt_lang: str = typer.Option(None, "--tgt-lang", "--target-language", help="translation: the target language."),
    max_words: int = typer.Option(None, help="summarization: at most this many words."),
    mode: str = typer.Option(None, help="writing: continue, rewrite, shorten or expand."),
    style: str = typer.Option(None, help="writing: a style or tone (formal, friendly, ...)."),
    schema: Path = typer.Option(None, help="extraction: a JSON schema file."),
    fields: str = typer.Option(None, help="extraction: field names, e.g. name,city,age:integer."),
    labels: str = typer.Option(None, help="sentiment-analysis (zero-shot): label words, e.g. "
                                          "negative,neutral,positive."),
    question: str = typer.Option(None, help="question-answering: the question (each input is a context)."),
    num_questions: int = typer.Option(None, help="quiz: how many questions."),
    system: str = typer.Option(None, help="Task: replace the system prompt template."),
    template: str = typer.Option(None, help="Task: replace the user prompt template (jinja2)."),
    max_new_tokens: int = typer.Option(None, help="Task: the length limit of each reply, in tokens."),
    tools_adapter: str = tools_adapter_option(),
) -> None:
    """Run a workflow file, or a task (chat, translation, summarization, extraction, ...) over a text or a file."""
    task_options = {"input": input, "batch_size": batch_size, "src_lang": src_lang, "tgt_lang": tgt_lang,
                    "max_words": max_words, "mode": mode, "style": style, "schema": schema, "fields": fields,
                    "labels": labels, "question": question, "num_questions": num_questions, "system": system,
                    "template": template, "max_new_tokens": max_new_tokens, "model": task_model,
                    "show_template": show_template or None}
    workflow_options = {"dry_run": dry_run or None, "limit": limit, "restart": restart or None}
    if list_tasks:
        from llmos.cli.run_task import list_tasks as show_list

        typer.echo(show_list())
        return
    if target is None:
        raise LLMOSError("give a workflow file (.yaml) or a task (llmos run --list shows them)")
    if _names_a_model(target):
        raise LLMOSError(f"{target!r} is a model; llmos run runs a workflow file or a task. To chat with it: "
                         f"llmos chat {target}; to run a task on it: llmos run TASK {target} --input TEXT "
                         "(llmos run --list shows the tasks)")
    if _names_a_file(target):
        from llmos.apps.pipelines import TASKS

        raise LLMOSError(f"{target!r} is not a workflow file; expected a .yaml or .yml file, or a task: "
                         f"{', '.join(TASKS)}")
    if target.lower().endswith(WORKFLOW_SUFFIXES):
        _refuse(task_options, "a task", "a workflow reads its inputs and options from its file")
        run_workflow_file(target, dry_run, output, model, limit, restart, read_tools_adapter(tools_adapter))
        return
    _refuse(workflow_options, "a workflow file", "a task runs over --input")
    if model is not None and task_model is not None and model != task_model:
        raise LLMOSError(f"two models given: {task_model!r} and --model {model!r}; give one")
    from llmos.cli.run_task import run_task

    run_task(target, output=output, **{**task_options, "model": task_model or model, "show_template": show_template})


def _names_a_model(target: str) -> bool:
    """A model's name or path (`llmos run smollm2`, as Ollama users type it), rather than a task or workflow."""
    from llmos.apps.pipelines import task_class
    from llmos.model_names import EMBEDDED, ModelNotFoundError, resolve_model

    if target.lower().endswith(WORKFLOW_SUFFIXES):
        return False
    try:
        task_class(target)
        return False
    except LLMOSError:
        pass
    if target in EMBEDDED:
        return True
    try:
        found = resolve_model(target)
    except ModelNotFoundError:
        return False
    if found.store is not None:  # an embedded model, the models folder, Ollama's or LM Studio's store
        return True
    if found.is_gguf:  # resolve_model takes any file for a GGUF one; the suffix says whether it is
        return found.path.suffix.lower() == ".gguf"
    return (found.path / "config.json").is_file()


def _names_a_file(target: str) -> bool:
    """A path that is not a workflow file (`tasks.txt`), rather than a task name."""
    from llmos.apps.pipelines import task_class

    if target.lower().endswith(WORKFLOW_SUFFIXES) or "/" not in target and not Path(target).suffix:
        return False
    try:
        task_class(target)
        return False
    except LLMOSError:
        return True


def _refuse(given: dict[str, object], kind: str, why: str) -> None:
    names = [name for name, value in given.items() if value is not None]
    if names:
        flag = "MODEL" if names[0] == "model" and kind == "a task" else "--" + names[0].replace("_", "-")
        raise LLMOSError(f"{flag} is for {kind}; {why}")


def run_workflow_file(workflow: str, dry_run: bool, output: Path | None, model: str | None, limit: int | None,
                      restart: bool, tools_adapter: bool | Path = True) -> None:
    from llmos.apps.workflow import describe, load_workflow, run_workflow

    spec = load_workflow(workflow, model=model, output=output)
    if dry_run:
        typer.echo("\n".join(describe(spec, limit, restart)))
        return
    loaded = {}
    if spec.needs_model():
        from llmos.generation.loading import load_model

        typer.echo(f"loading {spec.model}", err=True)
        found = load_model(spec.model, tools_adapter=tools_adapter)
        loaded = {"model": found.model, "tokenizer": found.tokenizer,  # run on an engine of their own
                  "tools_adapter": found.tools_adapter}
    started = time.perf_counter()
    with warnings_as_lines(), progress_report(Path(workflow).stem) as progress:
        summary = run_workflow(spec, limit=limit, restart=restart, progress=progress, **loaded)
    typer.echo(f"ran {summary.ran} item(s), skipped {summary.skipped} done before, in "
               f"{time.perf_counter() - started:.1f} s; {summary.rows} row(s) in {summary.output}")


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)
