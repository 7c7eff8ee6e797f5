"""Layer 6 (data): conversations that teach tool use, and the held-out items that test it.

`ToolData` turns `ToolFamily`s (tool_catalogue) into chat records in OpenAI's
message shape (`{"messages", "tools"}`; the fine-tuning reader renders them
with `llmos.generation.tool_calls.template_messages`, the server's and the
agent's own rendering, so a model trains on exactly what it is later shown).
A conversation lists one to `max_tools` tools (the ones it needs and
distractors, in any order, some under other names) and holds one or more
exchanges: a request that needs a listed tool (a `<tool_call>`, then often the
result and an answer written from it), a request for a tool that is not
listed (the answer says it cannot), or a general request no tool is for
(answered with the base model's own reply, passed in as `chat_answers`, so its
chat is not changed). Some conversations list no tools at all: those are
marked `distill`, learnt as the base model's distribution over the reply.

The split is made once from the seed: a share of each tool's request phrasings
and of the general requests is held out, and families marked `held_out` are
never trained on. `test_items` draws only from what training never saw: new
phrasings of the trained tools, and whole new tools; each item is the decision
to take (which tool with which arguments, or none) or, after a call and its
result, the facts an answer must state.
"""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llmos.data.jsonl import DataError
from llmos.data.tool_catalogue import Pools, Request, ToolFamily, fill

CANNOT = ("Sorry, I can't {cannot}: none of my tools does that.",
          "I can't {cannot} with the tools I have.",
          "None of the tools I have can {cannot}, so I can't help with that.")


@dataclass(frozen=True)
class ToolDataSpec:
    """How much of what: the seed, the number of training conversations and their make-up."""

    seed: int = 0
    conversations: int = 800
    max_tools: int = 4  # tools listed in one conversation
    max_exchanges: int = 2  # requests in one conversation
    held_out_phrasings: float = 0.25  # of each tool's request templates (tools with 3 or more)
    held_out_chat: float = 0.25  # of the general requests
    calls: float = 0.6  # share of exchanges that need a listed tool; the rest are split below
    cannot: float = 0.5  # of the others: a request for a tool not listed (else a general request)
    results: float = 0.75  # share of the last calls followed by the result and an answer
    plain_chat: float = 0.15  # conversations with no tools, learnt as the base model's distribution
    renames: float = 0.5  # a tool listed under another of its names
    contrast: float = 0.0  # share of refusals whose request is also called, with its tool listed (a twin)
    related_beside_calls: float = 0.0  # share of calls listed beside a tool related to theirs
    served: float = 0.0  # share of refusals with a `search` also trained as a call of the general tool they relate to


def _rng(seed: int, *names: str) -> random.Random:
    """A generator for one part of the data, so adding a tool does not shift another's draws."""
    return random.Random(zlib.crc32("/".join((str(seed), *names)).encode()))


def _weighted_sample(families: list[ToolFamily], count: int, rng: random.Random) -> list[ToolFamily]:
    """`count` different families, each drawn with odds in proportion to its weight (without
    weights, `rng.sample`'s draws, as before weights existed)."""
    if all(f.weight == 1 for f in families):
        return rng.sample(families, count)
    left, picked = list(families), []
    for _ in range(count):
        picked.append(left.pop(rng.choices(range(len(left)), weights=[f.weight for f in left])[0]))
    return picked


def _held(count: int, share: float, rng: random.Random) -> set[int]:
    if count < 3 or share <= 0:
        return set()
    return set(rng.sample(range(count), max(1, round(count * share))))


class ToolData:
    """The training records and test items of one set of tools (see the module docstring)."""

    def __init__(self, families: list[ToolFamily], pools: Pools, chat: list[str], spec: ToolDataSpec,
                 calculate: Callable[[str], Any] | None = None) -> None:
        if not any(not f.held_out for f in families):
            raise DataError("no tools to train on: every tool is held out")
        names = [f.name for f in families]
        if len(set(names)) != len(names):
            raise DataError(f"tool names must be unique; got {names}")
        self.families, self.pools, self.spec, self.calculate = families, pools, spec, calculate
        self.trained = [f for f in families if not f.held_out]
        self.new = [f for f in families if f.held_out]
        self.train_requests: dict[str, list[Request]] = {}
        self.test_requests: dict[str, list[Request]] = {}
        for family in families:
            held = set(range(len(family.requests))) if family.held_out else \
                _held(len(family.requests), spec.held_out_phrasings, _rng(spec.seed, "phrasings", family.name))
            self.train_requests[family.name] = [r for i, r in enumerate(family.requests) if i not in held]
            self.test_requests[family.name] = [r for i, r in enumerate(family.requests) if i in held]
        held_chat = _held(len(chat), spec.held_out_chat, _rng(spec.seed, "chat"))
        self.train_chat = [q for i, q in enumerate(chat) if i not in held_chat]
        self.test_chat = [q for i, q in enumerate(chat) if i in held_chat]

    # ---- pieces --------------------------------------------------------------------------------

    def _listing(self, rng: random.Random, needed: list[ToolFamily], pool: list[ToolFamily],
                 avoid: set[str], renames: bool) -> tuple[list[dict[str, Any]], dict[str, tuple[str, dict]]]:
        """(function dicts to list, family -> (listed name, parameter renames)): `needed` and
        distractors from `pool` (never a family in `avoid`), shuffled."""
        others = [f for f in pool if f not in needed and f.name not in avoid]
        count = rng.randint(max(1, len(needed)), max(self.spec.max_tools, len(needed)))
        listed = needed + rng.sample(others, min(len(others), count - len(needed)))
        rng.shuffle(listed)
        functions, names = [], {}
        for family in listed:
            name, renamed = family.name, {}
            if renames and not family.fixed_name and rng.random() < self.spec.renames:
                name = rng.choice((family.name, *family.aliases))
                renamed = {p.name: rng.choice(p.aliases) for p in family.params if p.aliases and rng.random() < 0.3}
            names[family.name] = (name, renamed)
            functions.append(family.function(name, renamed))
        return functions, names

    def _call(self, family: ToolFamily, request: Request | tuple, rng: random.Random, listed: tuple[str, dict]
              ) -> tuple[str, dict[str, Any], dict[str, Any], dict[str, str]]:
        """(request text, the call in OpenAI's shape, its arguments as listed, the answer's slots);
        `request` is a phrasing to draw, or what `family.draw` already drew."""
        text, arguments, slots = request if isinstance(request, tuple) else family.draw(request, self.pools, rng)
        name, renamed = listed
        passed = {renamed.get(k, k): v for k, v in arguments.items()}
        call = {"id": f"call_{rng.randrange(16 ** 8):08x}", "type": "function",
                "function": {"name": name, "arguments": json.dumps(passed)}}
        return text, call, arguments, slots

    def _result(self, family: ToolFamily, arguments: dict[str, Any], slots: dict[str, str],
                rng: random.Random) -> tuple[str, dict[str, str]]:
        return family.outcome(arguments, slots, self.pools, rng, self.calculate)

    def _answered(self, family: ToolFamily, call: dict[str, Any], arguments: dict[str, Any], slots: dict[str, str],
                  rng: random.Random) -> list[dict[str, Any]]:
        """The call's result and an answer written from it."""
        result, slots = self._result(family, arguments, slots, rng)
        return [{"role": "tool", "tool_call_id": call["id"], "content": result},
                {"role": "assistant", "content": fill(rng.choice(family.answers), slots)}]

    @staticmethod
    def _cannot(family: ToolFamily, rng: random.Random) -> str:
        return rng.choice(CANNOT).format(cannot=family.cannot or "do that")

    def _unrelated(self, family: ToolFamily) -> set[str]:
        """Names never listed beside a request for `family` that no listed tool may serve."""
        return {family.name, *family.related, *(f.name for f in self.families if family.name in f.related)}

    # ---- training ------------------------------------------------------------------------------

    def training_records(self, chat_answers: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """`spec.conversations` records {"messages", "tools"}; general requests appear only where
        `chat_answers` has their answer (the base model's own). A conversation with no tools is
        marked "distill": the adapter learns the base model's distribution over its reply, so the
        chat it was not taught stays the base model's."""
        chat_answers = chat_answers or {}
        questions = [q for q in self.train_chat if chat_answers.get(q)]
        rng = _rng(self.spec.seed, "training")
        records = []
        while len(records) < self.spec.conversations:
            if questions and rng.random() < self.spec.plain_chat:
                question = rng.choice(questions)
                records.append({"messages": [{"role": "user", "content": question},
                                             {"role": "assistant", "content": chat_answers[question]}],
                                "distill": True})
                continue
            records += self._conversation(rng, questions, chat_answers)
        return records[:self.spec.conversations]

    def _conversation(self, rng: random.Random, questions: list[str], chat_answers: dict[str, str]
                      ) -> list[dict[str, Any]]:
        """One conversation, then the twins of its refusals (`spec.contrast`): each the refused
        request alone, its tool added to the same listing, and called. A request's tool is then
        learnt from the listing rather than remembered as one to refuse. Likewise (`spec.served`)
        a refused request that a general tool serves (news -> search_web), that tool added and
        called with the request's search."""
        kinds = []
        for _ in range(rng.randint(1, self.spec.max_exchanges)):
            if rng.random() < self.spec.calls:
                kinds.append("call")
            else:
                kinds.append("cannot" if not questions or rng.random() < self.spec.cannot else "chat")
        pool = [f for f in self.trained if not f.general] if "chat" in kinds else self.trained
        callers = _weighted_sample(pool, min(kinds.count("call"), len(pool)), rng)
        kinds = [k for k in kinds if k != "call"] + ["call"] * len(callers)
        rng.shuffle(kinds)
        related = set().union(*(self._unrelated(f) for f in callers)) - {f.name for f in callers}
        wanted = [f for f in self.trained if not (self._unrelated(f) & ({c.name for c in callers} | related))]
        refused = rng.sample(wanted, min(kinds.count("cannot"), len(wanted)))
        near = [f for f in self.trained if f.name in related and not ("chat" in kinds and f.general)]
        near = [rng.choice(near)] if near and self.spec.related_beside_calls and \
            rng.random() < self.spec.related_beside_calls else []  # (no draw at 0: the data as before)
        avoid = related - {f.name for f in near}  # a related tool is listed only as the one near the call
        avoid |= set().union(*(self._unrelated(f) for f in refused)) if refused else set()
        if "chat" in kinds:
            avoid |= {f.name for f in self.families if f.general}
        functions, names = self._listing(rng, [*callers, *near], self.trained, avoid, renames=True)
        messages: list[dict[str, Any]] = []
        twins: list[dict[str, Any]] = []
        callers, refused = list(callers), list(refused)
        for i, kind in enumerate(kinds):
            if kind == "call":
                family = callers.pop()
                text, call, arguments, slots = self._call(family, rng.choice(self.train_requests[family.name]),
                                                          rng, names[family.name])
                messages += [{"role": "user", "content": text},
                             {"role": "assistant", "content": "", "tool_calls": [call]}]
                last = i == len(kinds) - 1
                if not last or rng.random() < self.spec.results:
                    messages += self._answered(family, call, arguments, slots, rng)
            elif kind == "cannot" and refused:
                family = refused.pop()
                drawn = family.draw(rng.choice(self.train_requests[family.name]), self.pools, rng)
                messages += [{"role": "user", "content": drawn[0]},
                             {"role": "assistant", "content": self._cannot(family, rng)}]
                if self.spec.contrast and rng.random() < self.spec.contrast:
                    twins.append(self._twin(family, drawn, functions, rng))
                server = self._server(family) if self.spec.served else None
                if server is not None and rng.random() < self.spec.served:
                    twins.append(self._twin(server, self._searched(family, server, drawn), functions, rng))
            elif kind == "chat":
                question = rng.choice(questions)
                messages += [{"role": "user", "content": question},
                             {"role": "assistant", "content": chat_answers[question]}]
        if not messages:  # every exchange was dropped (no tool left to refuse): one call instead
            return self._conversation(rng, [], {})
        return [{"messages": messages, "tools": functions}, *twins]

    def _twin(self, tool: ToolFamily, drawn: tuple, functions: list[dict[str, Any]], rng: random.Random
              ) -> dict[str, Any]:
        """The request `drawn` (text, arguments, slots) alone, with `tool` added to `functions` and
        called with those arguments: a refused request's twin (`contrast`), or its search by the
        general tool that serves it (`served`)."""
        name = tool.name if tool.fixed_name or rng.random() >= self.spec.renames else \
            rng.choice((tool.name, *tool.aliases))
        listed = list(functions)
        listed.insert(rng.randint(0, len(listed)), tool.function(name))
        text, call, arguments, slots = self._call(tool, drawn, rng, (name, {}))
        messages = [{"role": "user", "content": text}, {"role": "assistant", "content": "", "tool_calls": [call]}]
        if rng.random() < self.spec.results:
            messages += self._answered(tool, call, arguments, slots, rng)
        return {"messages": messages, "tools": listed}

    def _server(self, family: ToolFamily) -> ToolFamily | None:
        """The trained general tool (search_web) that serves `family`'s requests through its `search`."""
        if not family.search:
            return None
        return next((f for f in self.trained if f.general and family.name in f.related and len(f.params) == 1), None)

    @staticmethod
    def _searched(family: ToolFamily, server: ToolFamily, drawn: tuple) -> tuple:
        """`family`'s request `drawn` as `server`'s call: the request's `search` as its one argument."""
        search = {server.params[0].name: fill(family.search, drawn[2])}
        return drawn[0], search, dict(search)

    # ---- testing -------------------------------------------------------------------------------

    def test_items(self, per_kind: int = 12, draw: str = "test") -> list[dict[str, Any]]:
        """Items for what training never saw, `per_kind` of each kind (call, none, answer) in each
        split ("new phrasings" of trained tools, "new tools"): {"split", "kind", "family", "tools",
        "messages", "expected" (the call {"name", "arguments"}, or None), "key" (answer facts)}.
        Another `draw` name draws other items from the same held-out phrasings and tools."""
        items = []
        for split, families in (("new phrasings", self.trained), ("new tools", self.new)):
            rng = _rng(self.spec.seed, draw, split)
            askable = [f for f in families if self.test_requests[f.name]]
            if not askable:
                continue
            everyone = self.trained + self.new
            for kind in ("call", "none", "answer"):
                for n in range(per_kind):
                    item = self._test_item(kind, split, askable, everyone, rng, n)
                    if item is not None:
                        items.append(item)
        return items

    def _test_item(self, kind: str, split: str, askable: list[ToolFamily], everyone: list[ToolFamily],
                   rng: random.Random, n: int) -> dict[str, Any] | None:
        if kind == "none" and n % 2 == 1 and self.test_chat:  # a general request, tools beside it
            general = {f.name for f in self.families if f.general}
            functions, _ = self._listing(rng, [], everyone, general, renames=False)
            return {"split": split, "kind": "none", "family": None, "tools": functions, "expected": None,
                    "messages": [{"role": "user", "content": rng.choice(self.test_chat)}], "key": []}
        candidates = [f for f in askable if kind != "answer" or f.key]
        if not candidates:
            return None
        family = candidates[n % len(candidates)]
        request = rng.choice(self.test_requests[family.name])
        if kind == "none":  # the tool it needs is not listed
            text = family.draw(request, self.pools, rng)[0]
            functions, _ = self._listing(rng, [], everyone, self._unrelated(family), renames=False)
            return {"split": split, "kind": "none", "family": family.name, "tools": functions, "expected": None,
                    "messages": [{"role": "user", "content": text}], "key": []}
        functions, names = self._listing(rng, [family], everyone, set(), renames=False)
        text, call, arguments, slots = self._call(family, request, rng, names[family.name])
        messages = [{"role": "user", "content": text}]
        expected = {"name": family.name, "arguments": arguments}
        if kind == "call":
            return {"split": split, "kind": "call", "family": family.name, "tools": functions,
                    "expected": expected, "messages": messages, "key": []}
        result, slots = self._result(family, arguments, slots, rng)
        messages += [{"role": "assistant", "content": "", "tool_calls": [call]},
                     {"role": "tool", "tool_call_id": call["id"], "content": result}]
        return {"split": split, "kind": "answer", "family": family.name, "tools": functions, "expected": expected,
                "messages": messages, "key": [slots[k] for k in family.key]}
