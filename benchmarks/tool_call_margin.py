"""How sure a tools adapter is that a request needs a call: the probability that its reply starts
one (its first character is "<", the server grammar's rule under tool_choice "auto"), on the
automation benchmark's items (`automation_smollm2.py`: our 70 hand-written requests, and the
catalogue's held-out tools).

Greedy decoding calls when that probability wins; this prints how well it ranks the items that
need a call above those that do not (AUC), and how many call-or-not decisions each threshold gets
right, so a threshold (a calibration of the decision) can be judged before it is built. Run:

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

from automation_smollm2 import ADAPTER, DATA, item_functions, unseen_items  # noqa: E402

THRESHOLDS = (0.5, 0.4, 0.3, 0.25, 0.2, 0.15, 0.1)


def requests() -> list[tuple[str, bool, str, list[dict]]]:
    """(split, needs a call, request, listed functions) for each decision item."""
    rows = []
    for item in (json.loads(line) for line in DATA.read_text().splitlines()):
        if item["kind"] in ("tool_choice", "no_tool"):
            rows.append(("our items", item["kind"] == "tool_choice", item["request"], item_functions(item)))
    for item in unseen_items(12):
        if item["kind"] in ("call", "none"):
            rows.append(("unseen tools", item["kind"] == "call", item["messages"][0]["content"], item["tools"]))
    return rows


def auc(scores: list[tuple[bool, float]]) -> float:
    calls = [p for needs, p in scores if needs]
    others = [p for needs, p in scores if not needs]
    return sum((a > b) + 0.5 * (a == b) for a in calls for b in others) / (len(calls) * len(others))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adapter", type=Path, default=ADAPTER, help="the tools adapter (PEFT)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    from llmos.checkpoint.peft_format import is_adapter_dir

    if not is_adapter_dir(args.adapter):
        parser.error(f"--adapter {args.adapter} is not a LoRA adapter directory "
                     "(adapter_config.json and adapter_model.safetensors)")
    torch.set_num_threads(args.threads)

    from llmos import AutoModelForCausalLM, AutoTokenizer
    from llmos.generation.tool_calls import template_messages

    tokenizer = AutoTokenizer.from_pretrained("smollm2")
    model = AutoModelForCausalLM.from_pretrained("smollm2", adapter=str(args.adapter))
    starts = torch.tensor([i for i in tokenizer.get_vocab().values() if tokenizer.decode([i]).startswith("<")])
    scores: dict[str, list[tuple[bool, float]]] = {}
    with torch.no_grad():
        for split, needs, request, functions in requests():
            messages, _ = template_messages([{"role": "user", "content": request}], functions, False)
            ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
            p = model(ids).logits[0, -1].float().softmax(-1)[starts].sum()
            scores.setdefault(split, []).append((needs, float(p)))
    print(f"adapter {args.adapter}: P(the reply starts a call) at the first token; AUC, and the call-or-not "
          "decisions right when calling at P >= each threshold")
    print(f"{'':14}{'items':>6}{'AUC':>7}" + "".join(f"{'>= ' + str(t):>9}" for t in THRESHOLDS))
    for split, rows in scores.items():
        right = "".join(f"{sum((p >= t) == needs for needs, p in rows):>9}" for t in THRESHOLDS)
        print(f"{split:14}{len(rows):>6}{auc(rows):>7.3f}{right}")


if __name__ == "__main__":
    main()
