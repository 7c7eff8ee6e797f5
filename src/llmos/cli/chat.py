"""Layer 9: `llmos chat MODEL`: a terminal chat with streamed answers and a conversation history.

MODEL is a checkpoint directory, a GGUF file, a model name (`smollm2`) or a
store name (`ollama:llama3.2:1b`), loaded by `load_model`. Replies come from
the serving engine in-process (no HTTP), through its `Generator`
(`serving.generator.EngineGenerator`), as every other caller's do. Input ends with an empty line
when it spans several lines (start with \"\"\" to paste a block, end with \"\"\").
Commands: /reset, /system TEXT, /set NAME VALUE (temperature, top_k, top_p,
min_p, repetition_penalty, max_tokens; /set alone lists them), /history, /help,
/exit. Replies are sampled as `llmos serve` samples them: the model's own
generation_config values, else LLMOS's measured chat defaults
(`llmos.generation_config.chat_sampling`), up to DEFAULT_REPLY_TOKENS tokens; a
reply cut by that limit ends with a marker saying so. `--max-new-tokens` is
`--max-tokens` under the name `llmos generate` uses; `--chat-template FILE`
replaces the model's template.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from llmos.cli.runtime_options import (
    chat_template_option,
    read_chat_template,
    set_threads,
    threads_option,
)
from llmos.errors import LLMOSError
from llmos.generation_config import DEFAULT_REPLY_TOKENS, chat_sampling

HELP = ("commands: /reset (forget the conversation), /system TEXT (set the system prompt), "
        "/set NAME VALUE (temperature, top_k, top_p, min_p, repetition_penalty, max_tokens; /set alone lists "
        'them), /history, /exit. Multi-line: start with """ and end with """ on its own line.')
SETTINGS = {"temperature": float, "top_k": int, "top_p": float, "min_p": float, "repetition_penalty": float,
            "max_tokens": int}


class ChatSession:
    """History + settings + one `Generator`; `reply` streams the assistant's answer to `write`.
    `model_defaults` is the model's generation_config (None: LLMOS's chat defaults only)."""

    def __init__(self, generator: Any, system: str | None = None, model_defaults: Any = None) -> None:
        self.generator = generator
        self.system = system
        self.history: list[dict[str, str]] = []
        self.settings: dict[str, float | int] = {**chat_sampling(model_defaults), "max_tokens": DEFAULT_REPLY_TOKENS}

    def describe(self) -> str:
        return ", ".join(f"{name} {value}" for name, value in self.settings.items())

    def command(self, line: str) -> str | None:
        """Run a /command; return a message to show, or None to exit."""
        name, _, arg = line[1:].partition(" ")
        arg = arg.strip()
        if name in ("exit", "quit"):
            return None
        if name == "reset":
            self.history = []
            return "(conversation cleared)"
        if name == "system":
            self.system = arg or None
            return f"(system prompt {'set' if arg else 'cleared'})"
        if name == "history":
            return "\n".join(f"{m['role']}: {m['content']}" for m in self.messages()) or "(empty)"
        if name == "set":
            if not arg:
                return f"({self.describe()}; /set NAME VALUE changes one)"
            key, _, value = arg.partition(" ")
            if key not in SETTINGS:
                return f"unknown setting {key!r}; expected one of {sorted(SETTINGS)}"
            try:
                self.settings[key] = SETTINGS[key](value)
            except ValueError:
                return f"{key} needs a {SETTINGS[key].__name__}, got {value!r}"
            return f"({key} = {self.settings[key]})"
        if name == "help":
            return HELP
        return f"unknown command /{name}; {HELP}"

    def messages(self) -> list[dict[str, str]]:
        system = [{"role": "system", "content": self.system}] if self.system else []
        return system + self.history

    def reply(self, user_text: str, write) -> str:
        from llmos.generation.service import GenerationParams

        self.history.append({"role": "user", "content": user_text})
        prompt = self.generator.prompt_ids(self.messages())
        room = self.generator.max_len - len(prompt)
        if room <= 0:
            self.history.pop()
            raise LLMOSError(f"the conversation ({len(prompt)} tokens) no longer fits the context window "
                             f"of {self.generator.max_len} tokens; /reset to start over")
        limit = int(self.settings["max_tokens"])
        sampling = {name: value for name, value in self.settings.items() if name != "max_tokens"}
        params = GenerationParams(max_new_tokens=min(limit, room), **sampling)
        answer, reply = "", None
        try:
            for event in self.generator.stream([prompt], params):
                answer += event.text
                write(event.text)
                reply = event.completion or reply
        finally:
            self.history.append({"role": "assistant", "content": answer})
        if reply is not None and reply.cut:  # shown, not kept in the history the model reads
            tokens = len(reply.token_ids)
            write(f" [cut at {tokens} tokens: /set max_tokens N for longer replies]" if tokens < room else
                  f" [cut at {tokens} tokens: the context window is full; /reset to start over]")
        return answer


def read_message(prompt: str = "you> ") -> str | None:
    """One user message; a line of \"\"\" starts and ends a multi-line block. None at end of input."""
    try:
        line = input(prompt)
    except EOFError:
        return None
    if line.strip() != '"""':
        return line
    lines = []
    while True:
        try:
            line = input("... ")
        except EOFError:
            break
        if line.strip() == '"""':
            break
        lines.append(line)
    return "\n".join(lines)


def chat_command(
    checkpoint: str = typer.Argument(..., help="Checkpoint directory (model + tokenizer), GGUF file, model name "
                                          "(smollm2) or store name (ollama:NAME:TAG, lmstudio:PUBLISHER/REPO)."),
    system: str = typer.Option(None, help="System prompt."),
    temperature: float = typer.Option(None, help="Sampling temperature (0 = greedy); default: the model's "
                                      "generation_config, else LLMOS's chat default."),
    max_tokens: int = typer.Option(None, "--max-tokens", "--max-new-tokens", min=1,
                                   help=f"Longest answer in tokens (default {DEFAULT_REPLY_TOKENS})."),
    quantize: str = typer.Option("auto", help="auto (as stored), none (float), int8 or int4 weight-only linears."),
    threads: int = threads_option(),
    chat_template: Path = chat_template_option(),
) -> None:
    """Chat with a model in the terminal; answers stream as they are generated."""
    template = read_chat_template(chat_template)  # before anything loads: a typo costs no waiting

    from llmos.generation.loading import load_model
    from llmos.model_names import model_label
    from llmos.serving.generator import EngineGenerator
    from llmos.serving.text import ServedTokenizer

    set_threads(threads)
    loaded = load_model(checkpoint, quantize=quantize)
    generator = EngineGenerator.start(loaded.model, ServedTokenizer(loaded.tokenizer, template, loaded.stop_ids),
                                      max_batch=1, max_queue=1)
    session = ChatSession(generator, system, getattr(loaded.model, "generation_config", None))
    given = {"temperature": temperature, "max_tokens": max_tokens}
    session.settings.update({name: value for name, value in given.items() if value is not None})
    typer.echo(f"chatting with {model_label(checkpoint)} ({session.describe()}); /help for commands, /set to "
               "change a setting, /exit to leave", err=True)
    try:
        while True:
            text = read_message()
            if text is None:
                break
            if not text.strip():
                continue
            if text.startswith("/"):
                message = session.command(text.strip())
                if message is None:
                    break
                typer.echo(message)
                continue
            sys.stdout.write("assistant> ")
            session.reply(text, lambda delta: (sys.stdout.write(delta), sys.stdout.flush()))
            sys.stdout.write("\n")
    finally:
        generator.close()


def register(app: typer.Typer) -> None:
    app.command("chat")(chat_command)
