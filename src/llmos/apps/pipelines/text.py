"""Layer 8: the free-text tasks: `chat`, `text-generation` (continue a prompt) and `writing` (help with a text).

Greedy decoding by default: a 135M model sampled at temperature 1 wanders;
pass `do_sample=True, temperature=..., seed=...` for variety. Free generation
(chat, text-generation) adds a repetition penalty, as greedy decoding alone
loops; `writing` does not, because the penalty counts the prompt's tokens too,
and a rewrite must keep the text's names, times and numbers (with 1.1,
SmolLM2-135M rewrote "3pm on friday" as "10:59 PM on Friday"). The tasks that
copy from their input (translation, summarization, extraction, QA, quiz) have
no penalty for the same reason.
"""

from __future__ import annotations

from typing import Any

from llmos.apps.pipelines.base import Pipeline, PipelineError, Reply
from llmos.apps.workflow_templates import render


class TextGenerationPipeline(Pipeline):
    """`pipe("Once upon a time")` -> [{"generated_text": prompt + continuation}], as transformers'
    text-generation: the prompt is continued as it is, with no chat template (`return_full_text=False`
    gives the continuation alone). For an instruct model's answer, use the `chat` task."""

    task = "text-generation"
    summary = "continue a text as it is (no chat template)"
    output = '[{"generated_text": str}] (the prompt and its continuation)'
    defaults = {"max_new_tokens": 100, "do_sample": False, "repetition_penalty": 1.2}
    options = {"return_full_text": True}
    shape = "nested"

    def prompt(self, item: dict[str, Any], options: dict[str, Any]) -> list[int]:
        """The user template's text as token ids (no chat template), as the tokenizer encodes it."""
        if self.tokenizer is None:
            raise PipelineError("text-generation encodes its prompt itself: it needs the model's tokenizer",
                                param="tokenizer")
        return self.tokenizer.encode(self.render_user(item, options))

    def render_user(self, item: dict[str, Any], options: dict[str, Any]) -> str:
        return self.messages(item, options)[-1]["content"]

    def parse(self, reply: Reply, item: dict[str, Any], options: dict[str, Any]) -> dict[str, str]:
        prefix = self.render_user(item, options) if options["return_full_text"] else ""
        return {"generated_text": prefix + reply.text}


class ChatPipeline(Pipeline):
    """`pipe("Hi!")` or `pipe([{"role": "user", "content": "Hi!"}, ...])` -> [{"generated_text":
    the conversation with the assistant's reply appended}], as transformers' text-generation does for
    a chat. The model's own chat template renders it (SmolLM2's adds its default system turn when
    there is none); `system=` puts a system turn first."""

    task = "chat"
    summary = "reply to a message or a conversation, through the model's chat template"
    output = '[{"generated_text": [messages..., {"role": "assistant", "content": str}]}]'
    defaults = {"max_new_tokens": 256, "do_sample": False, "repetition_penalty": 1.1}
    shape = "nested"

    @classmethod
    def normalize(cls, value: Any, named: dict[str, Any] | None = None) -> dict[str, Any]:
        if isinstance(value, dict) and "messages" in value:
            value = value["messages"]
        if isinstance(value, list):
            if not value or not all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in value):
                raise PipelineError("chat: a conversation is a non-empty list of {'role': ..., 'content': ...} "
                                    "messages", param="input")
            return {"messages": value}
        return super().normalize(value, named)

    def is_single(self, inputs: Any) -> bool:
        """A list of messages is one conversation; a list of texts or conversations is a batch."""
        return not isinstance(inputs, list) or bool(inputs) and isinstance(inputs[0], dict) and "role" in inputs[0]

    def conversation(self, item: dict[str, Any], options: dict[str, Any]) -> list[dict[str, str]]:
        """The input's messages: a text is one user turn (the user template rendered over it)."""
        if "messages" in item:
            return item["messages"]
        return [{"role": "user", "content": render(self.template, self.variables(item, options))}]

    def messages(self, item: dict[str, Any], options: dict[str, Any]) -> list[dict[str, str]]:
        turns = self.conversation(item, options)
        if self.system and turns[0]["role"] != "system":
            turns = [{"role": "system", "content": render(self.system, self.variables(item, options))}, *turns]
        return turns

    def parse(self, reply: Reply, item: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        return {"generated_text": [*self.conversation(item, options),
                                   {"role": "assistant", "content": reply.text.strip()}]}

    def row(self, result: Any) -> dict[str, Any]:
        return {"reply": result[0]["generated_text"][-1]["content"]}


_STYLE = "{% if style %} in a {{ style }} style{% endif %}"
WRITING_MODES = {  # the instruction for each mode, a jinja2 template over the options
    "continue": f"Continue the following text{_STYLE}. Write only the next few sentences.",
    "rewrite": f"Rewrite the following text{_STYLE}. Keep its meaning. Reply with the new text only.",
    "shorten": f"Shorten the following text{_STYLE} to about half its length. Keep the key facts. "
               "Reply with the shorter text only.",
    "expand": f"Expand the following text{_STYLE} with more detail. Reply with the longer text only.",
}


class WritingPipeline(Pipeline):
    """`pipe(text, mode="rewrite", style="formal")` -> [{"generated_text": the new text}].

    mode: continue | rewrite | shorten | expand; style: a style or tone in a few words ("formal",
    "friendly", "persuasive", "for a child") or None. The instruction for each mode is
    WRITING_MODES[mode]; `template=` replaces the whole user turn."""

    task = "writing"
    summary = "continue, rewrite (in a style or tone), shorten or expand a text"
    output = '[{"generated_text": str}]'
    defaults = {"max_new_tokens": 200, "do_sample": False}
    options = {"mode": "rewrite", "style": None}
    shape = "nested"
    template = "{{ instruction }}\n\n{{ text }}"

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        if options["mode"] not in WRITING_MODES:
            raise PipelineError(f"writing: unknown mode {options['mode']!r}; valid: {', '.join(WRITING_MODES)}",
                                param="options.mode")
        return options

    def variables(self, item: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        return {**options, **item, "instruction": render(WRITING_MODES[options["mode"]], options)}

    def parse(self, reply: Reply, item: dict[str, Any], options: dict[str, Any]) -> dict[str, str]:
        return {"generated_text": reply.text.strip()}
