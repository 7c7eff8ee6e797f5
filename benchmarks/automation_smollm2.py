"""Small automation tasks on SmolLM2-135M-Instruct, base and tuned for tools: constrained decoding,
the server's tool calls (openai client), the agent loop, and whether chat is kept.

Items (benchmarks/data/automation_items.jsonl, our own): `extraction` (a message and the fields to
pull out of it), `tool_choice` (a request and 3-4 tools, the tool and arguments expected),
`no_tool` (a request no listed tool is for), `arithmetic` (a word problem for `calculate`). Plus
tools the training never saw: the catalogue's held-out families (`llmos.data.tool_catalogue`,
`held_out: true`), drawn as `ToolData.test_items` with the recipe's seed (calls, requests whose
tool is not listed, and answers after a call and its result). The existing items' tools have
counterparts in the training catalogue (get_weather, send_email, ...): those rows measure requests
training never saw; the "unseen tools" rows measure tools it never saw.

Rows, greedy throughout:
- in process, base model (as before): `constrained` (extraction under its JSON schema; tool and
  arithmetic items under tool_choice "required", the server's grammar) and `free` (the same
  prompts, no constraint; a `<tool_call>` block or JSON object is read out of the text);
- through `llmos serve`'s app with the official openai client, for the base model and the tuned one
  (`from_pretrained("smollm2", adapter=DIR)`, the shipped src/llmos/adapters/smollm2-tools by
  default): tool_choice "auto" (decision: the right tool, or text when none fits; exact arguments
  of the calls that should happen) and "required" (tool and arguments), and answers from a tool's
  result (the answer states the result's facts);
- agent: `Agent(RemoteGenerator(server))` with `calculate` on the arithmetic items and
  "What is 17 * 23?": it must call the tool, read the result and answer (right: the answer holds
  the number);
- chat kept: perplexity of the assistant turns of 20 general exchanges (benchmarks/sft.py's
  CHAT_SAMPLE, never trained on), and the greedy replies to the first-hour factual questions
  (benchmarks/chat_defaults.py's FACTUAL) against the base model's.
Exact arguments: the same keys; numbers equal; strings equal with case, spaces and end punctuation
set aside (an item may list several acceptable strings; an arithmetic expression counts when it
evaluates to the expected value).

Measured: the table in the README's "Teaching a model its tools" (and the docs' automation guide). Run:

    .venv/bin/python benchmarks/automation_smollm2.py
    .venv/bin/python benchmarks/automation_smollm2.py --limit 2 --unseen 2 --verbose      # smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data" / "automation_items.jsonl"
ADAPTER = ROOT / "src" / "llmos" / "adapters" / "smollm2-tools"
RECIPE = ROOT / "recipes" / "teach-tools-smollm2.yaml"
KINDS = ("extraction", "tool_choice", "no_tool", "arithmetic")
FIELD_HELP = {"name": "the person's full name", "city": "the city", "date": "the date as written in the message",
              "product": "the product, as written", "quantity": "the number of items or people, an integer"}


def get_weather(city: str) -> str:
    """The current weather in a city.

    Args:
        city: the city name, e.g. Paris
    """
    return f"light rain, 12 C in {city}"


def send_email(to: str, subject: str) -> str:
    """Send an email.

    Args:
        to: the recipient's email address
        subject: the subject line
    """
    return "sent"


def convert_currency(amount: float, source: str, target: str) -> str:
    """Convert an amount of money from one currency to another.

    Args:
        amount: the amount to convert
        source: the currency code to convert from, e.g. EUR
        target: the currency code to convert to, e.g. USD
    """
    return "0"


def search_web(query: str) -> str:
    """Search the web and return the top results.

    Args:
        query: what to search for
    """
    return ""


def set_reminder(text: str, when: str) -> str:
    """Set a reminder.

    Args:
        text: what to be reminded of
        when: the date and time of the reminder
    """
    return "set"


def functions_by_name() -> dict:
    from llmos.apps.builtin_tools import calculate, current_time
    from llmos.apps.tool_schema import function_schema

    return {fn.__name__: function_schema(fn)["function"] for fn in (
        get_weather, send_email, calculate, current_time, convert_currency, search_web, set_reminder)}


def item_functions(item: dict) -> list[dict]:
    functions = functions_by_name()
    return [functions[name] for name in (item.get("tools") or ["calculate"])]


def same_expected(expected, got) -> bool:
    """An argument as the item expects it: one of several strings, an expression's value, or equal."""
    from llmos.apps.builtin_tools import calculate
    from llmos.apps.tool_eval import same_value

    if isinstance(expected, list):
        return any(same_value(option, got) for option in expected)
    if isinstance(expected, dict) and "value" in expected:
        try:
            return math.isclose(float(calculate(str(got))), expected["value"], rel_tol=1e-6)
        except Exception:  # not arithmetic: wrong, not a crash
            return False
    return same_value(expected, got)


def expected_call(item: dict) -> dict | None:
    if item["kind"] == "arithmetic":
        return {"name": "calculate", "arguments": {"expression": {"value": item["answer"]}}}
    if item["kind"] == "tool_choice":
        return {"name": item["expected_tool"], "arguments": item.get("expected_arguments", {})}
    return None


def score_call(item: dict, name: str | None, arguments) -> tuple[bool, bool]:
    """(decision right, arguments exact) for one of our items."""
    expected = expected_call(item)
    if expected is None:
        return name is None, False
    right = name == expected["name"]
    exact = right and isinstance(arguments, dict) and set(arguments) == set(expected["arguments"]) and all(
        same_expected(value, arguments[key]) for key, value in expected["arguments"].items())
    return right, exact


# ---- in process (the base model's old rows) ----------------------------------------------------


def extraction_schema(fields: dict) -> dict:
    properties = {key: {"type": "integer"} if key == "quantity" else {"type": "string"} for key in fields}
    return {"type": "object", "properties": properties, "required": list(fields), "additionalProperties": False}


def norm(value) -> str:
    return " ".join(str(value).lower().split()).strip(" .,;:!?\"'")


def first_object(text: str):
    decoder = json.JSONDecoder()
    for start in (i for i, c in enumerate(text) if c == "{"):
        try:
            return decoder.raw_decode(text[start:])[0]
        except json.JSONDecodeError:
            continue
    return None


def run_local_item(item: dict, model, tokenizer, constrained: bool, max_new_tokens: int) -> dict:
    """One item in process: the prompt as the server renders it; constrained under the item's grammar."""
    from llmos.generation.tool_calls import read_reply, template_messages, tool_grammar

    if item["kind"] == "extraction":
        keys = "\n".join(f"- {key}: {FIELD_HELP[key]}" for key in item["fields"])
        system = (f"Extract these fields from the user's message:\n{keys}\nReply with JSON only: one object "
                  f"with exactly the keys {', '.join(item['fields'])}.")
        messages = [{"role": "system", "content": system}, {"role": "user", "content": item["text"]}]
        constraint = {"json_schema": extraction_schema(item["fields"])}
    else:
        functions = item_functions(item)
        messages, _ = template_messages([{"role": "user", "content": item.get("request") or item["question"]}],
                                        functions, False)
        constraint = {"grammar": tool_grammar(functions, False, False)}
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
    extra = {"tokenizer": tokenizer, **constraint} if constrained else {}
    start = time.perf_counter()
    out = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False, **extra)
    seconds = time.perf_counter() - start
    text = tokenizer.decode(out[0, ids.shape[1]:].tolist(), skip_special_tokens=True).strip()
    if item["kind"] == "extraction":
        reply = first_object(text)
        right = sum(isinstance(reply, dict) and norm(reply.get(k)) == norm(v) for k, v in item["fields"].items())
        score = right / len(item["fields"])
    else:
        start_at = text.find("<tool_call>")
        _, calls = read_reply(text[start_at:]) if start_at >= 0 else (text, [])
        try:
            name, arguments = (calls[0]["function"]["name"], json.loads(calls[0]["function"]["arguments"])) \
                if calls else (None, None)
        except json.JSONDecodeError:
            name, arguments = calls[0]["function"]["name"], None
        score = float(score_call(item, name, arguments)[1] if item["kind"] == "arithmetic"
                      else score_call(item, name, arguments)[0])
    return {"id": item["id"], "kind": item["kind"], "row": "constrained" if constrained else "free",
            "score": score, "seconds": seconds, "reply": text}


# ---- through the server -------------------------------------------------------------------------


class Served:
    """`llmos serve`'s app for `model` on a free loopback port, in a thread."""

    def __init__(self, model, tokenizer, tools_adapter=None) -> None:
        import socket
        import threading

        import uvicorn

        from llmos.serving.api import create_app

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(create_app(model, tokenizer, model_id="smollm2",
                                                               tools_adapter=tools_adapter),
                                                    host="127.0.0.1", port=port, log_level="warning",
                                                    log_config=None))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{port}/v1"

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def ask(client, messages: list[dict], functions: list[dict], tool_choice: str, max_tokens: int = 96) -> dict:
    """The server's reply message as a dict (content, tool_calls)."""
    reply = client.chat.completions.create(model="smollm2", messages=messages, temperature=0, max_tokens=max_tokens,
                                           tools=[{"type": "function", "function": f} for f in functions],
                                           tool_choice=tool_choice)
    message = reply.choices[0].message
    return {"content": message.content,
            "tool_calls": [c.model_dump() for c in message.tool_calls] if message.tool_calls else None}


def first_call(message: dict) -> tuple[str | None, dict | None]:
    calls = message.get("tool_calls") or []
    if not calls:
        return None, None
    try:
        return calls[0]["function"]["name"], json.loads(calls[0]["function"]["arguments"])
    except json.JSONDecodeError:
        return calls[0]["function"]["name"], None


def server_rows(url: str, items: list[dict], unseen: list[dict], verbose: bool) -> dict:
    """Per set ("items", "unseen tools"): auto decision / exact arguments, required tool / exact
    arguments, answers from results (unseen answer items)."""
    import openai

    from llmos.apps.tool_eval import score
    from llmos.generation.tool_calls import reply_text

    client = openai.OpenAI(base_url=url, api_key="none")
    rows: dict = {"items": {"auto": [], "auto_args": [], "required": [], "required_args": []},
                  "unseen tools": {"auto": [], "auto_args": [], "required": [], "required_args": [], "answer": []}}
    for item in (i for i in items if i["kind"] in ("tool_choice", "no_tool")):
        messages, functions = [{"role": "user", "content": item["request"]}], item_functions(item)
        for choice in ("auto", "required") if item["kind"] == "tool_choice" else ("auto",):
            message = ask(client, messages, functions, choice)
            right, exact = score_call(item, *first_call(message))
            rows["items"][choice].append(right)
            if item["kind"] == "tool_choice":
                rows["items"][f"{choice}_args"].append(exact)
            if verbose:
                print(f"  {item['id']:14} {choice:8} right={right!s:5} exact={exact!s:5} {reply_text(message)[:90]!r}")
    for item in unseen:
        for choice in ("auto", "required") if item["kind"] == "call" else ("auto",):
            message = ask(client, item["messages"], item["tools"], choice)
            result = score(item, reply_text(message))
            if item["kind"] == "answer":
                rows["unseen tools"]["answer"].append(result["answer"])
            else:
                rows["unseen tools"][choice].append(result["decision"])
                if item["kind"] == "call":
                    rows["unseen tools"][f"{choice}_args"].append(result["arguments"])
            if verbose:
                print(f"  {item['family'] or 'general':16} {item['kind']:6} {choice:8} {result['decision']!s:5} "
                      f"{result['arguments']!s:5} {result['answer']!s:5} {reply_text(message)[:80]!r}")
    return rows


def agent_row(url: str, items: list[dict], verbose: bool) -> dict:
    """The Agent over the server with `calculate`: called it, answered right."""
    from llmos.apps.agent import Agent
    from llmos.apps.builtin_tools import calculate
    from llmos.serving.remote import RemoteGenerator

    questions = [(i["question"], i["answer"]) for i in items if i["kind"] == "arithmetic"] + [("What is 17 * 23?", 391)]
    called, right, steps = [], [], []
    for question, answer in questions:
        result = Agent(RemoteGenerator(url), None, [calculate], max_steps=4, max_new_tokens=96).run(question)
        used = any(s["action"].get("tool") == "calculate" for s in result.steps)
        numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", (result.answer or "").replace(",", ""))]
        ok = used and any(math.isclose(n, answer, rel_tol=1e-4) for n in numbers)
        called.append(used)
        right.append(ok)
        steps.append(len(result.steps))
        if verbose:
            print(f"  agent: {question[:50]!r} -> {[s['action'] for s in result.steps]} right={ok}")
    return {"called": called, "right": right, "steps": steps}


# ---- chat kept ----------------------------------------------------------------------------------


def chat_checks(model, tokenizer, tmp: Path, adapter: str | None) -> dict:
    """Perplexity with the adapter on (as if every request used it), and the replies a plain request
    gets (no tools: the server and the agent route it to the base model)."""
    from chat_defaults import FACTUAL
    from sft import assistant_perplexity, write_chat_sample

    from llmos.adapters import using_adapter

    with using_adapter(model, adapter):
        perplexity, tokens = assistant_perplexity(model, tokenizer, write_chat_sample(tmp / "chat_sample.jsonl"))
    def replies_to(questions: list[str]) -> list[str]:
        out = []
        for question in questions:
            ids = tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                                return_tensors="pt")
            reply = model.generate(ids, max_new_tokens=48, do_sample=False)
            out.append(tokenizer.decode(reply[0, ids.shape[1]:].tolist(), skip_special_tokens=True).strip())
        return out

    questions = [question for question, _ in FACTUAL]
    replies = replies_to(questions)  # a plain request: the base model
    with using_adapter(model, adapter):
        adapter_replies = replies_to(questions)  # had the adapter decoded it
    right = [bool(re.search(pattern, reply.lower())) for (_, pattern), reply in zip(FACTUAL, replies, strict=True)]
    return {"perplexity": perplexity, "tokens": tokens, "replies": replies, "right": right,
            "adapter_replies": adapter_replies}


def recipe_data():
    """The catalogue's `ToolData` as the recipe's seed splits it (its held-out phrasings and tools)."""
    import yaml

    from llmos.apps.builtin_tools import calculate
    from llmos.data.tool_catalogue import load_catalogue
    from llmos.data.tool_conversations import ToolData, ToolDataSpec

    recipe = yaml.safe_load(RECIPE.read_text()) if RECIPE.is_file() else {}
    catalogue = load_catalogue()
    return ToolData(catalogue.families, catalogue.pools, catalogue.chat, ToolDataSpec(seed=recipe.get("seed", 0)),
                    calculate)


def unseen_items(count: int) -> list[dict]:
    """The catalogue's held-out tools as test items, drawn with the recipe's seed."""
    return [i for i in recipe_data().test_items(count) if i["split"] == "new tools"]


def rate(values: list) -> str:
    return f"{sum(values) / len(values):.0%}" if values else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--adapter", type=Path, default=ADAPTER, help="the tuned model's LoRA adapter (PEFT)")
    parser.add_argument("--limit", type=int, default=None, help="first N items of each kind")
    parser.add_argument("--unseen", type=int, default=12, help="unseen-tool items per kind (call, none, answer)")
    parser.add_argument("--max-new-tokens", type=int, default=192)
    parser.add_argument("--quantize", default="auto", help="as from_pretrained: auto (the GGUF's int4), int8, none")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rows", default="local,server,agent,chat", help="comma-separated: which rows to run")
    parser.add_argument("--verbose", action="store_true", help="print each reply")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import tempfile

    from llmos.generation.loading import load_model

    rows = set(args.rows.split(","))
    items = [json.loads(line) for line in args.data.read_text(encoding="utf-8").splitlines() if line.strip()]
    if args.limit is not None:
        items = [it for kind in KINDS for it in [i for i in items if i["kind"] == kind][: args.limit]]
    unseen = unseen_items(args.unseen) if args.unseen else []
    loaded = {"base": load_model("smollm2", quantize=args.quantize, tools_adapter=False),
              "tuned": load_model("smollm2", quantize=args.quantize, tools_adapter=args.adapter)}
    tokenizer = loaded["base"].tokenizer
    models = {label: found.model for label, found in loaded.items()}
    counts = ", ".join(f"{sum(i['kind'] == k for i in items)} {k}" for k in KINDS)
    print(f"SmolLM2-135M-Instruct (quantize={args.quantize}), tuned: + {args.adapter}; torch {torch.__version__}, "
          f"{args.threads} threads; {len(items)} items ({counts}), {len(unseen)} unseen-tool items; greedy", flush=True)
    started = time.perf_counter()
    if "local" in rows:
        local = [run_local_item(item, models["base"], tokenizer, constrained, args.max_new_tokens)
                 for item in items if item["kind"] != "no_tool" for constrained in (True, False)]
        kinds = [k for k in KINDS if k != "no_tool" and any(i["kind"] == k for i in items)]
        print(f"\nbase model in process ({'  '.join(kinds)}: fields right / tool right / expression right)")
        for row in ("constrained", "free"):
            cells = "  ".join(rate([r["score"] for r in local if r["row"] == row and r["kind"] == k]) for k in kinds)
            seconds = [r["seconds"] for r in local if r["row"] == row]
            print(f"  {row:12} {cells}   {sum(seconds) / len(seconds):.2f} s/item")
    results: dict = {}
    for label, model in models.items():
        adapter = loaded[label].tools_adapter
        served = Served(model, tokenizer, adapter) if rows & {"server", "agent"} else None
        try:
            results[label] = {
                "server": server_rows(served.url, items, unseen, args.verbose) if "server" in rows else None,
                "agent": agent_row(served.url, items, args.verbose) if "agent" in rows else None}
        finally:
            if served is not None:
                served.close()
        if "chat" in rows:
            with tempfile.TemporaryDirectory() as tmp:
                results[label]["chat"] = chat_checks(model, tokenizer, Path(tmp), adapter)
        print(f"({label} done at {(time.perf_counter() - started) / 60:.1f} min)", flush=True)
    if "server" in rows:
        print("\nthrough the server (openai client)        base    tuned")
        for group, cells in (("items", ("auto", "auto_args", "required", "required_args")),
                             ("unseen tools", ("auto", "auto_args", "required", "required_args", "answer"))):
            names = {"auto": "decision, tool_choice auto", "auto_args": "exact arguments, auto",
                     "required": "right tool, tool_choice required", "required_args": "exact arguments, required",
                     "answer": "answer from the result, auto"}
            for cell in cells:
                values = [results[m]["server"][group][cell] for m in models]
                print(f"  {group + ': ' + names[cell]:44}{rate(values[0]):>5}{rate(values[1]):>9}"
                      f"   ({len(values[0])})")
    if "agent" in rows:
        print("\nagent over the server, calculate (called it / right answer)")
        for m in models:
            agent = results[m]["agent"]
            print(f"  {m:6} {rate(agent['called'])} / {rate(agent['right'])} of {len(agent['right'])}, "
                  f"{sum(agent['steps']) / len(agent['steps']):.1f} steps each")
    if "chat" in rows:
        base, tuned = results["base"]["chat"], results["tuned"]["chat"]
        same = sum(a == b for a, b in zip(base["replies"], tuned["replies"], strict=True))
        print(f"\nchat kept: perplexity on {base['tokens']} assistant tokens of 20 general exchanges "
              f"{base['perplexity']:.3f} -> {tuned['perplexity']:.3f} (x{tuned['perplexity'] / base['perplexity']:.3f}); "
              f"first-hour factual replies identical {same}/{len(base['replies'])} (plain requests: the base model), "
              f"right {sum(base['right'])} -> {sum(tuned['right'])}; had the adapter decoded them: identical "
              f"{sum(a == b for a, b in zip(base['replies'], tuned['adapter_replies'], strict=True))}/"
              f"{len(base['replies'])}")
        for a, b in zip(base["replies"], tuned["replies"], strict=True):
            if a != b:
                print(f"  base {a[:70]!r}\n  tuned {b[:70]!r}")
    print(f"\n{(time.perf_counter() - started) / 60:.1f} minutes in all")


if __name__ == "__main__":
    main()
