"""Layer 9: `llmos serve MODEL`: an OpenAI-compatible HTTP server and web chat page for a model.

MODEL is a checkpoint directory, a GGUF file, a model name (`smollm2`) or a
store name (`ollama:llama3.2:1b`, `lmstudio:PUBLISHER/REPO`: the file in
Ollama's or LM Studio's folder, read in place), loaded by `load_model`; the
model id clients send is its short name (`smollm2`, `llama3.2:1b`, the file's
stem, the directory's name) unless --model-name says otherwise. Binds 127.0.0.1 unless
--host says otherwise; --api-key makes every /v1 route require
`Authorization: Bearer KEY`. Web pages of other sites cannot drive it: a
foreign Host header (DNS rebinding) and a POST from another origin are refused
unless --allowed-hosts / --allowed-origins name them (serving/origin_guard.py).
vLLM's and llama-server's names for the same flags work too (--max-num-seqs
and --parallel for --max-batch, --served-model-name and --alias for
--model-name); numbers out of range (a port above 65535, --max-batch 0) are
refused before the model loads. A chat request without max_tokens gets at most
--max-tokens-default tokens (finish_reason "length" says when it was cut);
sampling fields a request leaves out come from the model's generation_config,
else LLMOS's chat defaults. Both are printed at start.
"""

from __future__ import annotations

from pathlib import Path

import typer

from llmos.cli.runtime_options import (
    chat_template_option,
    read_chat_template,
    read_tools_adapter,
    set_threads,
    threads_option,
    tools_adapter_option,
)
from llmos.errors import LLMOSError
from llmos.generation_config import DEFAULT_REPLY_TOKENS


def serve_command(
    checkpoint: str = typer.Argument(..., help="Checkpoint directory (model + tokenizer), GGUF file, model name "
                                          "(smollm2) or store name (ollama:NAME:TAG, lmstudio:PUBLISHER/REPO)."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind; 0.0.0.0 exposes the server to the network."),
    port: int = typer.Option(8000, min=1, max=65535, help="TCP port."),
    api_key: str = typer.Option(None, envvar="LLMOS_API_KEY", help="Require this bearer token on /v1 routes."),
    max_batch: int = typer.Option(16, "--max-batch", "--max-num-seqs", "--parallel", min=1,
                                  help="Requests decoded together in one forward pass."),
    max_queue: int = typer.Option(64, min=1, help="Requests allowed to wait for a slot; more get HTTP 429."),
    model_name: str = typer.Option(None, "--model-name", "--served-model-name", "--alias",
                                   help="Model id clients send (default: the model's name, file stem or "
                                        "directory name)."),
    max_body_kb: int = typer.Option(1024, min=1, help="Largest request body accepted, in KiB (413 above)."),
    quantize: str = typer.Option("auto", help="auto (as stored), none (float), int8 or int4 weight-only linears."),
    max_model_len: int = typer.Option(None, help="Tokens per request (prompt + completion); default: the "
                                                 "model's context."),
    max_tokens_default: int = typer.Option(DEFAULT_REPLY_TOKENS, min=1, help="Longest chat reply, in tokens, when "
                                           "a request gives no max_tokens (finish_reason 'length' when cut)."),
    kv_cache_mb: int = typer.Option(2048, "--kv-cache-mb", min=1,
                                    help="Memory for keys and values of all requests, in MiB: taken in blocks "
                                         "as requests grow (never less than one full-context request needs); "
                                         "prompt prefixes stay cached in what is free."),
    shutdown_grace: float = typer.Option(10.0, min=0.0, help="On SIGTERM or Ctrl-C: seconds running requests "
                                                             "may take to finish before they are cancelled."),
    allowed_hosts: list[str] = typer.Option(
        None, help="Host names the server also answers to (repeat or comma-separate; * = any). Bound to "
                   "127.0.0.1, other Host headers are refused (DNS rebinding); bound elsewhere, any Host is "
                   "accepted unless this is given."),
    allowed_origins: list[str] = typer.Option(
        None, help="Web origins (scheme://host:port; * = any) whose pages may call the API from a browser "
                   "(CORS). Without it only the server's own chat page can POST."),
    threads: int = threads_option(),
    chat_template: Path = chat_template_option(),
    tools_adapter: str = tools_adapter_option(),
) -> None:
    """Serve a model over an OpenAI-compatible API, with a chat page at /."""
    template = read_chat_template(chat_template)  # before anything loads: a typo costs no waiting
    tools = read_tools_adapter(tools_adapter)

    import uvicorn

    from llmos.apps.task_routes import add_task_routes
    from llmos.generation.loading import load_model
    from llmos.model_names import model_label
    from llmos.serving.api import create_app
    from llmos.serving.origin_guard import OriginGuard
    from llmos.serving.text import ServedTokenizer

    guard = OriginGuard(host, allowed_hosts=tuple(_listed(allowed_hosts)),  # checked before the model loads
                        allowed_origins=tuple(_listed(allowed_origins)))
    set_threads(threads)
    loaded = load_model(checkpoint, quantize=quantize, tools_adapter=tools)
    model, tokenizer = loaded.model, ServedTokenizer(loaded.tokenizer, template, loaded.stop_ids)
    context = model.config.max_seq_len
    if max_model_len is not None and not 2 <= max_model_len <= context:
        raise LLMOSError(f"--max-model-len must be between 2 and the model's context ({context}), "
                         f"got {max_model_len}")
    model_id = model_name or model_label(checkpoint)
    app = create_app(model, tokenizer, model_id=model_id, api_key=api_key, max_batch=max_batch,
                     max_queue=max_queue, max_body_bytes=max_body_kb * 1024, max_len=max_model_len, host=host,
                     allowed_hosts=guard.allowed_hosts, allowed_origins=guard.allowed_origins,
                     kv_budget_bytes=kv_cache_mb << 20, max_tokens_default=max_tokens_default,
                     tools_adapter=loaded.tools_adapter)
    add_task_routes(app)  # POST /v1/tasks/{task}: the task pipelines on this model, for the page's task picker
    typer.echo(f"serving {model_id!r} on http://{host}:{port}  (chat page at /, API at /v1, its docs at /docs)", err=True)
    engine = app.state.llmos.engine
    typer.echo(f"KV cache: up to {engine.kv_budget_bytes / 2**20:.0f} MiB ({engine.blocks.num_blocks * engine.pool.block_size}"
               f" tokens), taken as requests need it (--kv-cache-mb); up to {max_batch} requests at once "
               f"(--max-batch), {engine.max_len} tokens each (--max-model-len)", err=True)
    sampling = ", ".join(f"{name} {value}" for name, value in app.state.llmos.sampling.items())
    if loaded.tools_adapter is not None:
        typer.echo(f"requests with tools decode through the tool-use adapter {loaded.report.adapters['tools']} "
                   "(--tools-adapter off: the model alone)", err=True)
    typer.echo(f"replies without max_tokens stop at {max_tokens_default} tokens (--max-tokens-default); "
               f"unset sampling fields: {sampling}", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=shutdown_grace)


def _listed(values: list[str] | None) -> list[str]:
    """Repeated and comma-separated option values, as one list."""
    return [item.strip() for value in values or [] for item in value.split(",") if item.strip()]


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
