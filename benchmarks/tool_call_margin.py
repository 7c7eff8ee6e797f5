"""How sure a tools adapter is that a request needs a call, at the reply's first token, and whether a
bias on that decision would help: on the automation benchmark's items (`automation_smollm2.py`: our
70 hand-written requests, and the catalogue's held-out tools) and on a second draw of the recipe's own
held-out requests (new phrasings of trained tools, and the held-out tools), which is what
`teach-tools` could choose a bias on without seeing the benchmark.

Under tool_choice "auto" the server's grammar lets the first token start a call (its text begins
"<") or a text reply (anything else), and greedy decoding takes the larger logit. Per item this reads
the margin: the best call-start logit minus the best text logit, both under that grammar's mask.
Greedy calls when the margin is above 0; a bias b added to the call-start tokens of the first step
would call when it is above -b. It prints how well the margin ranks the items that need a call above
those that do not (AUC), and the call-or-not decisions right at each bias. Run:

    .venv/bin/python benchmarks/tool_call_margin.py                       # the shipped adapter
    .venv/bin/python benchmarks/tool_call_margin.py --adapter runs/teach-tools-smollm2/last
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from automation_smollm2 import ADAPTER, DATA, item_functions, recipe_data  # noqa: E402

BIASES = (-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0)
OWN = "recipe's own"  # the split a bias could be chosen on


def requests(own_per_kind: int) -> list[tuple[str, bool, list[dict], list[dict]]]:
    """(split, needs a call, messages, listed functions) for each call-or-not item."""
    rows = []
    for item in (json.loads(line) for line in DATA.read_text().splitlines()):
        if item["kind"] in ("tool_choice", "no_tool"):
            rows.append(("our items", item["kind"] == "tool_choice", [{"role": "user", "content": item["request"]}],
                         item_functions(item)))
    data = recipe_data()
    for split, items in (("unseen tools", [i for i in data.test_items(12) if i["split"] == "new tools"]),
                         (OWN, data.test_items(own_per_kind, draw="calibration"))):
        rows += [(split, item["kind"] == "call", item["messages"], item["tools"])
                 for item in items if item["kind"] in ("call", "none")]
    return rows


def auc(scores: list[tuple[bool, float]]) -> float:
    calls = [m for needs, m in scores if needs]
    others = [m for needs, m in scores if not needs]
    return sum((a > b) + 0.5 * (a == b) for a in calls for b in others) / (len(calls) * len(others))


def right(rows: list[tuple[bool, float]], bias: float) -> int:
    return sum((margin + bias > 0) == needs for needs, margin in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adapter", type=Path, default=ADAPTER, help="the tools adapter (PEFT)")
    parser.add_argument("--own", type=int, default=48, help="the recipe's own held-out items per kind and split")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    from llmos.checkpoint.peft_format import is_adapter_dir

    if not is_adapter_dir(args.adapter):
        parser.error(f"--adapter {args.adapter} is not a LoRA adapter directory "
                     "(adapter_config.json and adapter_model.safetensors)")
    if args.own < 1:
        parser.error(f"--own {args.own}: give at least 1 item per kind and split")
    torch.set_num_threads(args.threads)

    from llmos import AutoModelForCausalLM, AutoTokenizer
    from llmos.generation.constrained import GrammarProcessor
    from llmos.generation.tool_calls import template_messages, tool_grammar

    tokenizer = AutoTokenizer.from_pretrained("smollm2")
    model = AutoModelForCausalLM.from_pretrained("smollm2", adapter=str(args.adapter))
    vocab = model.config.vocab_size
    starts = torch.zeros(vocab, dtype=torch.bool)
    starts[[i for i in range(len(tokenizer)) if tokenizer.decode([i]).startswith("<")]] = True
    margins: dict[str, list[tuple[bool, float]]] = {}
    with torch.no_grad():
        for split, needs, messages, functions in requests(args.own):
            rendered, _ = template_messages(messages, functions, False)
            ids = tokenizer.apply_chat_template(rendered, add_generation_prompt=True, return_tensors="pt")
            grammar = GrammarProcessor(tool_grammar(functions, True, False), tokenizer, 1, ids.shape[1], vocab,
                                       [tokenizer.eos_token_id])
            logits = grammar(ids, model(ids).logits[:, -1].float())[0]
            allowed = logits > float("-inf")
            margin = logits[allowed & starts].max() - logits[allowed & ~starts].max()
            margins.setdefault(split, []).append((needs, float(margin)))
    print(f"adapter {args.adapter}: the first token's call margin (best call-start logit - best text logit, "
          "under the auto grammar); AUC, and the call-or-not decisions right with a bias b on the call starts "
          "(b = 0: greedy as served)")
    print(f"{'':15}{'items':>6}{'AUC':>7}" + "".join(f"{f'b={b:+g}':>8}" for b in BIASES))
    for split, rows in margins.items():
        print(f"{split:15}{len(rows):>6}{auc(rows):>7.3f}" + "".join(f"{right(rows, b):>8}" for b in BIASES))
    chosen = max(BIASES, key=lambda b: (right(margins[OWN], b), -abs(b)))
    print(f"the bias the recipe's own held-out items choose: {chosen:+g}; at it, our items "
          f"{right(margins['our items'], chosen)} of {len(margins['our items'])} right "
          f"(greedy {right(margins['our items'], 0.0)})")


if __name__ == "__main__":
    main()
