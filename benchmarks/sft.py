"""Instruction tuning: teach SmolLM2-135M-Instruct, with LoRA, a task it cannot do zero-shot.

The task (benchmarks/make_meeting_data.py): turn a sentence about a meeting into
`{"date":"MM-DD","time":"HH:MM","people":[...]}` with fixed conventions (24-hour
time, people sorted, compact JSON). The script

1. writes the training and held-out sets (the test set has sentences never seen
   in training, half of them in phrasings never seen in training);
2. scores the base model zero-shot on the test set: greedy answers through
   `llmos.evaluation.generation_tasks`, exact match (the stripped answer equal to
   the reference JSON), valid JSON, and per-field accuracy of the parsed answer;
3. fine-tunes with `llmos.training.finetune` (LoRA on every linear layer) for
   `--minutes`, loads base + adapter from the run directory and scores it again;
4. checks that general chat survived: perplexity of the assistant turns of a
   small general chat sample (written below, nothing to do with meetings) under
   the base and the tuned model; our goal: tuned within 10% of base.

Both models run in float32 (the embedded GGUF's weights dequantized, as
fine-tuning trains them), in the same run.

    .venv/bin/python benchmarks/sft.py [--minutes 8] [--train 400] [--test 50] [--out runs/bench_sft] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_meeting_data import make_meeting_data  # noqa: E402

from llmos import AutoModelForCausalLM, AutoTokenizer  # noqa: E402
from llmos.data.sft import IGNORE_INDEX, read_examples  # noqa: E402
from llmos.evaluation.generation_tasks import evaluate_generation  # noqa: E402
from llmos.training.finetune import finetune  # noqa: E402
from llmos.training.finetune_recipe import FinetuneConfig  # noqa: E402

BASE = "smollm2"
FIELDS = ("date", "time", "people")

# General chat for the perplexity check: questions and answers in a plain assistant voice.
CHAT_SAMPLE = [
    ("What is the capital of Australia?",
     "The capital of Australia is Canberra. Many people guess Sydney, which is the largest city, but Canberra "
     "was chosen as a compromise between Sydney and Melbourne."),
    ("How long should I boil an egg for a soft yolk?",
     "For a soft, runny yolk, boil a large egg for about six minutes, then put it in cold water for a minute "
     "so it stops cooking."),
    ("Why is the sky blue?",
     "Sunlight is made of many colors. Air molecules scatter short blue wavelengths much more than long red "
     "ones, so blue light reaches your eyes from every direction of the sky."),
    ("Can you suggest a simple dinner with rice and vegetables?",
     "Try a vegetable fried rice. Cook the rice a day ahead if you can, then stir-fry onion, carrots, peas and "
     "peppers, add the rice, a splash of soy sauce and a beaten egg, and mix until hot."),
    ("What is photosynthesis?",
     "Photosynthesis is the process plants use to turn light, water and carbon dioxide into sugar and oxygen. "
     "It happens mostly in the leaves, inside small structures called chloroplasts."),
    ("How many continents are there?",
     "There are usually said to be seven continents: Africa, Antarctica, Asia, Australia, Europe, North "
     "America and South America."),
    ("Give me a tip for sleeping better.",
     "Keep a regular schedule: go to bed and wake up at the same time every day, even on weekends. A dark, "
     "cool and quiet bedroom also helps."),
    ("What does a thermometer measure?",
     "A thermometer measures temperature, how hot or cold something is, usually in degrees Celsius or "
     "Fahrenheit."),
    ("Which is the longest river in the world?",
     "The Nile and the Amazon are the two longest rivers. The Nile is usually listed as the longest, at about "
     "6,650 kilometers, although some measurements give the Amazon a slightly greater length."),
    ("How do I make a cup of green tea?",
     "Heat water until it is hot but not boiling, around 80 degrees Celsius. Pour it over the tea leaves or a "
     "tea bag and let it steep for two to three minutes, then remove the tea."),
    ("What is the difference between weather and climate?",
     "Weather is what the atmosphere is doing on a given day, such as rain or sunshine. Climate is the average "
     "pattern of weather in a place over many years."),
    ("Why do we have seasons?",
     "Earth's axis is tilted. As Earth orbits the Sun, each half of the planet leans toward the Sun for part "
     "of the year, which brings longer days and more direct sunlight, so it is summer there."),
    ("What is a good way to start learning a new language?",
     "Start with the most common words and phrases, practice a little every day, and listen to native "
     "speakers as much as you can. Speaking early, even with mistakes, helps you improve faster."),
    ("How many legs does a spider have?",
     "A spider has eight legs. That is one of the ways to tell spiders apart from insects, which have six."),
    ("What is the tallest mountain on Earth?",
     "Mount Everest, in the Himalayas on the border of Nepal and China, is the tallest mountain above sea "
     "level, at about 8,849 meters."),
    ("Can you explain what a budget is?",
     "A budget is a plan for your money. You list what you expect to earn and what you expect to spend, so "
     "you can make sure your spending does not exceed your income and you can save for the future."),
    ("How do bees make honey?",
     "Bees collect nectar from flowers and carry it back to the hive. There they pass it between workers and "
     "fan it with their wings until most of the water evaporates, and the thick result is honey."),
    ("What should I pack for a day hike?",
     "Bring water, snacks, a map or phone with the route, sunscreen, a hat and a light jacket. Good shoes and "
     "a small first aid kit are also a smart idea."),
    ("Who wrote Romeo and Juliet?",
     "Romeo and Juliet was written by William Shakespeare, probably in the mid 1590s. It is one of his most "
     "famous tragedies."),
    ("What is the boiling point of water?",
     "At sea level, water boils at 100 degrees Celsius, which is 212 degrees Fahrenheit. At higher altitudes "
     "the air pressure is lower, so water boils at a lower temperature."),
]


def write_chat_sample(path: Path) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for question, answer in CHAT_SAMPLE:
            messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
            f.write(json.dumps({"messages": messages}) + "\n")
    return path


@torch.inference_mode()
def assistant_perplexity(model, tokenizer, path: Path) -> tuple[float, int]:
    """exp(mean NLL) over the assistant tokens of a chat JSONL file, and how many tokens that is."""
    total, count = 0.0, 0
    for example in read_examples(path, tokenizer, model.config.max_seq_len - 1, "chat"):
        x = torch.tensor([example.ids[:-1]], device=model.device)
        y = torch.tensor(example.labels[1:], device=model.device)
        logits = model(x).logits[0].float()
        total += F.cross_entropy(logits, y, ignore_index=IGNORE_INDEX, reduction="sum").item()
        count += int((y != IGNORE_INDEX).sum())
    return math.exp(total / count), count


def parse(text: str) -> dict | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def score(result: dict, test_records: list[dict]) -> dict:
    """Strict exact match, valid JSON and per-field accuracy of `evaluate_generation`'s predictions,
    overall and split by whether the phrasing was seen in training."""
    rows = []
    for prediction, record in zip(result["predictions"], test_records, strict=True):
        answer, reference = prediction["prediction"].strip(), prediction["references"][0]
        parsed, wanted = parse(answer), json.loads(reference)
        row = {"exact": answer == reference, "valid_json": parsed is not None, "held_out": record["held_out"]}
        for field in FIELDS:
            row[field] = parsed is not None and parsed.get(field) == wanted[field]
        rows.append(row)

    def rate(key: str, subset: list[dict]) -> float:
        return sum(r[key] for r in subset) / len(subset) if subset else float("nan")

    seen = [r for r in rows if not r["held_out"]]
    unseen = [r for r in rows if r["held_out"]]
    out = {key: rate(key, rows) for key in ("exact", "valid_json", *FIELDS)}
    out["exact_seen_phrasing"], out["exact_new_phrasing"] = rate("exact", seen), rate("exact", unseen)
    out["library_exact_match"] = result["metrics"]["exact_match"]  # case- and whitespace-insensitive
    out["chrf"] = result["metrics"]["chrf"]
    return out


def evaluate(model, tokenizer, test_path: Path, test_records: list[dict], max_new_tokens: int, label: str) -> dict:
    start = time.perf_counter()
    result = evaluate_generation(model, tokenizer, test_path, max_new_tokens=max_new_tokens)
    scores = score(result, test_records)
    scores["seconds"] = time.perf_counter() - start
    scores["samples"] = [p["prediction"] for p in result["predictions"][:3]]
    print(f"[{label}] exact {scores['exact']:.1%}  valid JSON {scores['valid_json']:.1%}  "
          f"({scores['seconds']:.0f} s)", flush=True)
    for prediction, record in zip(scores["samples"], test_records, strict=False):
        print(f"    {record['messages'][0]['content'][-70:]!r}\n      -> {prediction[:110]!r}")
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=8.0, help="training wall time")
    parser.add_argument("--train", type=int, default=400, help="training examples")
    parser.add_argument("--test", type=int, default=50, help="held-out examples")
    parser.add_argument("--out", default="runs/bench_sft", help="data, adapter and results go here")
    parser.add_argument("--json", default="", help="write the results here (default: OUT/results.json)")
    parser.add_argument("--seed", type=int, default=0, help="data seed")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-steps", type=int, default=100_000,
                        help="the cosine schedule's length; the run stops at --minutes first unless this is small")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    started = time.perf_counter()

    train_path, test_path = make_meeting_data(out / "data", args.train, args.test, args.seed)
    chat_path = write_chat_sample(out / "data" / "chat_sample.jsonl")
    test_records = [json.loads(line) for line in test_path.read_text(encoding="utf-8").splitlines()]
    tokenizer = AutoTokenizer.from_pretrained(BASE)
    lengths = [len(e.ids) for e in read_examples(train_path, tokenizer, 10_000, "chat")]
    context = -(-max(lengths) // 8) * 8  # every training example whole, rounded up to a multiple of 8
    longest_answer = max(len(tokenizer.encode(r["messages"][-1]["content"], add_special_tokens=False))
                         for r in test_records)
    max_new_tokens = max(args.max_new_tokens, longest_answer + 2)
    print(f"data: {args.train} train / {args.test} test examples in {out / 'data'}; tokens per training example "
          f"mean {sum(lengths) / len(lengths):.1f}, max {max(lengths)} -> context {context}; longest test answer "
          f"{longest_answer} tokens; torch threads {torch.get_num_threads()}", flush=True)

    base = AutoModelForCausalLM.from_pretrained(BASE, quantize="none")
    before = evaluate(base, tokenizer, test_path, test_records, max_new_tokens, "base, zero-shot")
    ppl_base, chat_tokens = assistant_perplexity(base, tokenizer, chat_path)
    print(f"[base] chat perplexity {ppl_base:.3f} over {chat_tokens} assistant tokens", flush=True)
    del base

    run_dir = out / "lora"
    config = FinetuneConfig(
        base_model=BASE, data=str(train_path), task="chat", method="lora", lora_r=args.lora_r,
        lora_alpha=2.0 * args.lora_r, lora_targets="all-linear", max_minutes=args.minutes,
        max_steps=args.max_steps, batch_size=args.batch_size, context=context, lr=args.lr, min_lr=args.lr / 10,
        warmup_steps=10, eval_every=0, val_fraction=0.0, log_every=10, progress=False, out_dir=str(run_dir),
    )
    train_start = time.perf_counter()
    result = finetune(config, report=print)
    train_seconds = time.perf_counter() - train_start
    losses = result.losses
    print(f"[train] {result.steps} steps in {result.seconds:.0f} s; loss {losses[0][1]:.3f} (step {losses[0][0]}) "
          f"-> {losses[-1][1]:.3f} (step {losses[-1][0]})" if losses else f"[train] {result.steps} steps", flush=True)

    tuned = AutoModelForCausalLM.from_pretrained(run_dir / "last", quantize="none")
    after = evaluate(tuned, tokenizer, test_path, test_records, max_new_tokens, "base + LoRA")
    ppl_tuned, _ = assistant_perplexity(tuned, tokenizer, chat_path)
    ratio = ppl_tuned / ppl_base

    results = {
        "base_model": BASE, "train_examples": args.train, "test_examples": args.test, "context": context,
        "mean_tokens_per_example": sum(lengths) / len(lengths), "config": config.to_dict(),
        "before": before, "after": after,
        "chat_ppl_base": ppl_base, "chat_ppl_tuned": ppl_tuned, "chat_ppl_ratio": ratio,
        "chat_tokens": chat_tokens, "chat_within_10pct": ratio <= 1.10,
        "steps": result.steps, "examples_seen": result.steps * args.batch_size,
        "epochs": result.steps * args.batch_size / args.train,
        "tokens_per_second": result.tokens_per_second,  # the trainer's: padded rows, last logged window
        "example_tokens_per_second": result.steps * args.batch_size * sum(lengths) / len(lengths) / result.seconds
        if result.seconds else 0.0,  # unpadded, over the whole run including the final save
        "train_seconds": train_seconds,
        "losses": result.losses, "wall_seconds": time.perf_counter() - started,
    }
    print()
    print(f"{'SmolLM2-135M-Instruct + LoRA r=' + str(args.lora_r):40} {'before':>10} {'after':>10}")
    for key, name in (("exact", "exact match"), ("exact_seen_phrasing", "  seen phrasings"),
                      ("exact_new_phrasing", "  new phrasings"), ("valid_json", "valid JSON"),
                      ("date", "date correct"), ("time", "time correct"), ("people", "people correct"),
                      ("library_exact_match", "exact match (normalized)"), ("seconds", "eval seconds")):
        fmt = "{:>10.0f}" if key == "seconds" else "{:>10.1%}"
        print(f"{name:40} {fmt.format(before[key])} {fmt.format(after[key])}")
    verdict = "ok, within 10%" if ratio <= 1.10 else "FAIL, more than 10% above base"
    print(f"{'chat perplexity (base / tuned / ratio)':40} {ppl_base:>10.3f} {ppl_tuned:>10.3f}   x{ratio:.3f} "
          f"({verdict})")
    print(f"{'training':40} {result.steps} steps, {result.steps * args.batch_size} examples "
          f"({results['epochs']:.2f} epochs), {train_seconds:.0f} s")
    print(f"{'  tokens/s':40} {result.tokens_per_second:,.0f} (padded rows, last logged window), "
          f"{results['example_tokens_per_second']:,.0f} (example tokens, whole run)")
    print(f"{'wall time':40} {results['wall_seconds']:.0f} s")
    results_path = Path(args.json) if args.json else out / "results.json"
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"results: {results_path}")


if __name__ == "__main__":
    main()
