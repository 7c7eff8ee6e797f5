"""Task quality: LLMOS's task pipelines on SmolLM2-135M-Instruct against the same model through
transformers' pipelines, on the same prompts, in one process.

Data: benchmarks/data/tasks/*.jsonl (see its README) and, for sentiment, the last --sentiment-rows
rows of ../shared/data/sst2/train.tsv (the "last" validation split of benchmarks/sst2.py; the
sentiment row is skipped, saying so, when ../shared is absent). Scorers, the same for both sides:
- summarization: ROUGE-L F1 (rouge-score, stemmed) of `summary_text` against `reference`;
- translation: corpus chrF (sacrebleu) of `translation_text` against `reference` (en -> fr/es/de);
- extraction: field exact match (case, spaces and end punctuation ignored), per field;
- question-answering: exact match after SQuAD normalization (lowercase, no punctuation/articles);
- quiz: validity, the fraction of generated questions whose answer occurs in the text;
- sentiment: zero-shot accuracy against SST-2's labels.

Both sides run the model as stored, dequantized to fp32 (`quantize="none"`; transformers loads the
same GGUF file with `gguf_file=`), greedy, in batches of --batch-size. LLMOS: `llmos.pipeline(task,
model=..., tokenizer=...)` on the list of inputs (items grouped by their options: a target language,
a schema). transformers: for each item the LLMOS pipeline's own prompt (`Pipeline.messages` ->
the chat template -> token ids, decoded back to text and checked to re-encode to the same ids), and
the pipeline's own decoding settings (`pipe.defaults`, summarization's max_new_tokens), through
`transformers.pipeline("text-generation")` with `return_full_text=False`; its reply is parsed by the
LLMOS pipeline's own `parse`. Constrained tasks (extraction: the schema; question-answering: the
`Answer: <span>` regex; quiz: its schema) get the same grammar (`grammar_for` of the pipeline's
`constraint(item)`) as a logits processor made of llguidance's torch helpers
(constrained_overhead.LLGuidanceHF, one matcher per row). Sentiment has no decoding: transformers'
model scores the same label-word tokens after the same prompt and reply start (one forward pass per
batch, left padded), calibrated by the prior of the pipeline's own content-free prompts (computed once,
during the warm-up, on each side), as `llmos.evaluation.zero_shot` does. "same" is the fraction of items whose parsed result
is identical on both sides; seconds are the whole task's wall time on each side (after a warm-up of
two items on both), ratio = transformers seconds / LLMOS seconds (> 1: LLMOS faster).

Measured (2026-11-30, every item, 2 threads, quiet 2-core machine; every output the same on both
sides, no prompt re-encoded or rendered differently): summarization (40) ROUGE-L 26.1, 34.6 / 45.7 s
(1.32x); translation (42) chrF 16.9, 24.8 / 34.7 s (1.40x); extraction (40) field EM 71.4,
38.2 / 65.3 s (1.71x); QA (40) EM 42.5, 7.0 / 9.6 s (1.37x); quiz (40) valid 100, 85.2 / 136.5 s
(1.60x); SST-2 zero-shot (100 rows) accuracy 71.0, 6.4 / 15.1 s (2.35x) (LLMOS / transformers
seconds). Sentiment again with the calibrated pipeline (its prompt chosen on other training rows,
benchmarks/sentiment_prompts.py; 1 thread, busy 2-core machine, load average 4): accuracy 83.0 on
both sides, 11.8 / 23.1 s (1.96x), the old prompt right before it 71.0, 10.2 / 19.4 s (1.90x);
`--sentiment-rows 300`: 82.3 on both sides. Run:

    .venv/bin/python benchmarks/tasks.py                       # every task, every item
    .venv/bin/python benchmarks/tasks.py --limit 5 --tasks summarization,translation   # smoke
"""

from __future__ import annotations

import argparse
import json
import re
import string
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
DATA = HERE / "data" / "tasks"
SST2 = HERE.parents[1] / "shared" / "data" / "sst2" / "train.tsv"
TASKS = ("summarization", "translation", "extraction", "question-answering", "quiz", "sentiment")


# ---- scorers (both sides) -------------------------------------------------------------------------

def squad_normalize(text: str) -> str:
    text = "".join(c for c in str(text).lower() if c not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def field_normalize(value: Any) -> str:
    return " ".join(str(value).lower().split()).strip(".,;:!? ")


def rouge_l(outputs: list[Any], items: list[dict]) -> float:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    texts = [o["summary_text"] if isinstance(o, dict) else "" for o in outputs]
    scores = [scorer.score(i["reference"], t)["rougeL"].fmeasure for t, i in zip(texts, items, strict=True)]
    return 100 * sum(scores) / len(items)


def chrf(outputs: list[Any], items: list[dict]) -> float:
    import sacrebleu

    texts = [o["translation_text"] if isinstance(o, dict) else "" for o in outputs]
    return sacrebleu.corpus_chrf(texts, [[i["reference"] for i in items]]).score


def field_match(outputs: list[Any], items: list[dict]) -> float:
    right = total = 0
    for out, item in zip(outputs, items, strict=True):
        for name, value in item["fields"].items():
            total += 1
            right += isinstance(out, dict) and name in out and field_normalize(out[name]) == field_normalize(value)
    return 100 * right / total


def qa_exact(outputs: list[Any], items: list[dict]) -> float:
    return 100 * sum(isinstance(o, dict) and squad_normalize(o.get("answer", "")) == squad_normalize(i["answer"])
                     for o, i in zip(outputs, items, strict=True)) / len(items)


def quiz_valid(outputs: list[Any], items: list[dict]) -> float:
    valid = total = 0
    for out, item in zip(outputs, items, strict=True):
        questions = out if isinstance(out, list) else []
        total += max(len(questions), 3)  # an unparsable quiz counts as 3 invalid questions
        valid += sum(isinstance(q, dict) and str(q.get("answer", "")).strip() != ""
                     and str(q["answer"]).lower() in item["text"].lower() for q in questions)
    return 100 * valid / total


def accuracy(outputs: list[Any], items: list[dict]) -> float:
    return 100 * sum(o == i["label"] for o, i in zip(outputs, items, strict=True)) / len(items)


# ---- data -----------------------------------------------------------------------------------------

def read_jsonl(name: str, limit: int | None) -> list[dict]:
    rows = [json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows[:limit] if limit else rows


def sst2_rows(path: Path, rows: int) -> list[dict] | None:
    """The last `rows` labelled rows of SST-2's training file, or None when it is absent."""
    if not path.is_file():
        return None
    data = []
    for line in path.read_text(encoding="utf-8").splitlines():
        label, _, text = line.partition("\t")
        if label in ("0", "1") and text.strip():
            data.append({"text": text.strip(), "label": "positive" if label == "1" else "negative"})
    return data[-rows:]


# ---- the task table: items -> (pipeline call options, the pipeline's input), scorer -------------

def task_items(task: str, limit: int | None, args) -> list[tuple[dict, Any]] | None:
    """[(options for the pipeline call, the input), ...] in data order."""
    if task == "summarization":
        return [({"max_words": args.max_words}, {"text": i["text"]}) for i in read_jsonl("summarization.jsonl", limit)]
    if task == "translation":
        return [({"src_lang": i["source_lang"], "tgt_lang": i["target_lang"]}, {"text": i["text"]})
                for i in read_jsonl("translation.jsonl", limit)]
    if task == "extraction":
        return [({"schema": i["schema"]}, {"text": i["text"]}) for i in read_jsonl("extraction.jsonl", limit)]
    if task == "question-answering":
        return [({}, {"question": i["question"], "context": i["context"]})
                for i in read_jsonl("question_answering.jsonl", limit)]
    if task == "quiz":
        return [({"num_questions": args.num_questions}, {"text": i["text"]}) for i in read_jsonl("quiz.jsonl", limit)]
    rows = sst2_rows(args.sst2, limit or args.sentiment_rows)
    return None if rows is None else [({}, {"text": r["text"]}) for r in rows]


def references(task: str, limit: int | None, args) -> list[dict]:
    files = {"summarization": "summarization.jsonl", "translation": "translation.jsonl",
             "extraction": "extraction.jsonl", "question-answering": "question_answering.jsonl", "quiz": "quiz.jsonl"}
    if task == "sentiment":
        return sst2_rows(args.sst2, limit or args.sentiment_rows) or []
    return read_jsonl(files[task], limit)


SCORERS: dict[str, tuple[str, Callable[[list[Any], list[dict]], float]]] = {
    "summarization": ("ROUGE-L", rouge_l), "translation": ("chrF", chrf), "extraction": ("field EM", field_match),
    "question-answering": ("EM", qa_exact), "quiz": ("valid", quiz_valid), "sentiment": ("accuracy", accuracy)}


def groups(entries: list[tuple[dict, Any]]) -> list[tuple[dict, list[int]]]:
    """Items sharing their options, in first-seen order: [(options, [item index, ...]), ...]."""
    found: dict[str, tuple[dict, list[int]]] = {}
    for index, (options, _) in enumerate(entries):
        found.setdefault(json.dumps(options, sort_keys=True), (options, []))[1].append(index)
    return list(found.values())


# ---- the two sides --------------------------------------------------------------------------------

class RowGrammars:
    """constrained_overhead.LLGuidanceHF with one grammar per row (QA's spans and quiz's schema differ
    per text)."""

    def __new__(cls, ll_tokenizer, grammars: list[str], vocab: int):
        import llguidance
        from constrained_overhead import LLGuidanceHF

        processor = LLGuidanceHF(ll_tokenizer, grammars[0], len(grammars), vocab)
        processor.matchers = [llguidance.LLMatcher(ll_tokenizer, g, log_level=0) for g in grammars]
        return processor


class Sides:
    def __init__(self, threads: int, batch_size: int) -> None:
        import transformers
        from llguidance.hf import from_tokenizer

        from llmos import AutoModelForCausalLM, AutoTokenizer
        from llmos.model_names import resolve_model

        transformers.logging.set_verbosity_error()
        torch.set_num_threads(threads)
        path = resolve_model("smollm2").path
        self.batch_size = batch_size
        self.tok = AutoTokenizer.from_pretrained(path)
        self.ours = AutoModelForCausalLM.from_pretrained(path, quantize="none")
        self.hf = transformers.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name,
                                                                    dtype=torch.float32).eval()
        self.hf_tok = transformers.AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        self.hf_tok.padding_side = "left"
        self.pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else (self.tok.eos_token_id or 0)
        self.generator = transformers.pipeline("text-generation", model=self.hf, tokenizer=self.hf_tok)
        self.vocab = self.ours.config.vocab_size
        self.ll = from_tokenizer(self.hf_tok, n_vocab=self.vocab, eos_token=self.tok.eos_token_id)
        self.prompt_mismatch = {}  # task -> items whose decoded prompt re-encodes differently in transformers
        self.template_differs = {}  # task -> items transformers' own chat template renders differently
        self.priors = {}  # sentiment's calibration on transformers' side: (prompts, label tokens) -> prior

    def pipe(self, task: str, entries: list[tuple[dict, Any]]):
        """The task's pipeline, built with the first item's options (translation and extraction need
        theirs at construction); each call passes its group's own."""
        from llmos.apps.pipelines import pipeline

        return pipeline("sentiment-analysis" if task == "sentiment" else task, model=self.ours, tokenizer=self.tok,
                        batch_size=self.batch_size, **entries[0][0])

    # LLMOS: the pipeline on each group's list of inputs
    def llmos(self, task: str, entries: list[tuple[dict, Any]]) -> list[Any]:
        pipe, results = self.pipe(task, entries), [None] * len(entries)
        for options, indices in groups(entries):
            out = pipe([entries[i][1] for i in indices], **options)
            for i, result in zip(indices, out, strict=True):
                if task == "sentiment":
                    result = (result[0] if isinstance(result, list) else result)["label"]
                results[i] = result
        return results

    # transformers: the same prompts, settings and grammar through its text-generation pipeline
    def prompt(self, task: str, pipe, item: dict, options: dict) -> tuple[list[int], str]:
        messages = pipe.messages(item, options)
        ids = self.tok.apply_chat_template(messages, add_generation_prompt=True)
        text = self.tok.decode(ids, skip_special_tokens=False)
        if self.hf_tok(text, add_special_tokens=False).input_ids != ids:
            self.prompt_mismatch[task] = self.prompt_mismatch.get(task, 0) + 1
        try:
            theirs = self.hf_tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        except Exception:  # no chat template in the GGUF's transformers tokenizer
            theirs = None
        if theirs != text:
            self.template_differs[task] = self.template_differs.get(task, 0) + 1
        return ids, text

    def transformers(self, task: str, entries: list[tuple[dict, Any]]) -> list[Any]:
        import transformers

        from llmos.apps.pipelines.base import PipelineError, Reply
        from llmos.generation.constrained import grammar_for

        pipe, results = self.pipe(task, entries), [None] * len(entries)
        for call_options, indices in groups(entries):
            options = pipe.check_options({**pipe.options, **call_options})
            generation = dict(pipe.defaults)
            if task == "summarization":
                generation = {"max_new_tokens": 2 * options["max_words"] + 16, **generation}
            for start in range(0, len(indices), self.batch_size):
                batch = indices[start:start + self.batch_size]
                items = [pipe.normalize(entries[i][1]) for i in batch]
                prompts = [self.prompt(task, pipe, item, options) for item in items]
                if task == "sentiment":
                    labels = self.score_labels(pipe, [ids for ids, _ in prompts], options)
                    for i, label in zip(batch, labels, strict=True):
                        results[i] = label
                    continue
                kwargs = {k: v for k, v in generation.items() if k != "stop_strings"}
                if "stop_strings" in generation:
                    kwargs["stop_sequence"] = generation["stop_strings"]
                constraints = [pipe.constraint(item, options) for item in items]
                if any(c is not None for c in constraints):
                    grammars = [grammar_for(**c) for c in constraints]
                    kwargs["logits_processor"] = transformers.LogitsProcessorList(
                        [RowGrammars(self.ll, grammars, self.vocab)])
                out = self.generator([text for _, text in prompts], batch_size=len(items), return_full_text=False,
                                     add_special_tokens=False, pad_token_id=self.pad, **kwargs)
                for i, item, o in zip(batch, items, out, strict=True):
                    reply = Reply(o[0]["generated_text"], 0.0, False, generation.get("max_new_tokens"))
                    try:
                        result = pipe.parse(reply, item, options)
                    except PipelineError:  # a JSON reply cut at max_new_tokens: scored as wrong
                        result = None
                    results[i] = result
        return results

    @torch.inference_mode()
    def score_labels(self, pipe, prompts: list[list[int]], options: dict) -> list[str]:
        """The pipeline's labels from transformers' model: the same prompts, reply start and label tokens,
        and the same calibration (the prior of the pipeline's content-free prompts, computed once)."""
        from llmos.apps.pipelines.sentiment import ZERO_SHOT_LABELS
        from llmos.evaluation.zero_shot import answer_tokens, calibrate

        labels = options["labels"] or ZERO_SHOT_LABELS
        start, words = answer_tokens(self.tok, labels, options["answer_start"])
        scores = self.label_log_probs([p + start for p in prompts], words)
        if options["calibrate"]:
            neutral = [p + start for p in pipe.content_free_prompts(options)]
            key = (tuple(map(tuple, neutral)), tuple(map(tuple, words)))
            if key not in self.priors:
                self.priors[key] = self.label_log_probs(neutral, words).log_softmax(-1).exp().mean(0).log()
            scores = calibrate(scores, self.priors[key])
        return [labels[j] for j in scores.argmax(-1).tolist()]

    def label_log_probs(self, prompts: list[list[int]], words: list[list[int]]) -> torch.Tensor:
        """(len(prompts), len(words)) log-probabilities of each label's tokens next, one left-padded batch."""
        width = max(map(len, prompts))
        ids = torch.tensor([[self.pad] * (width - len(p)) + p for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        logprobs = self.hf(input_ids=ids, attention_mask=mask).logits[:, -1].float().log_softmax(-1)
        return torch.stack([logprobs[:, w].logsumexp(-1) for w in words], -1)


def comparable(task: str, result: Any) -> Any:
    if task == "question-answering" and isinstance(result, dict):
        return {k: result[k] for k in ("answer", "start", "end")}
    return result


def run_task(sides: Sides, task: str, args) -> dict[str, Any] | None:
    entries = task_items(task, args.limit, args)
    if entries is None:
        print(f"sentiment: skipped: {args.sst2} is absent (the shared data folder ../shared is not here; "
              "see ../shared/data/README)", flush=True)
        return None
    refs = references(task, args.limit, args)
    with torch.inference_mode():
        # warm-up, not timed: two items on each side (llguidance's masking kernel is torch.compiled with
        # dynamic shapes, which still specialises batch 1: warming up on one row made the first batch of
        # several recompile inside the timed transformers run)
        sides.llmos(task, entries[:2])
        sides.transformers(task, entries[:2])
        start = time.perf_counter()
        ours = sides.llmos(task, entries)
        ours_s = time.perf_counter() - start
        start = time.perf_counter()
        theirs = sides.transformers(task, entries)
        theirs_s = time.perf_counter() - start
    metric, score = SCORERS[task]
    same = sum(comparable(task, a) == comparable(task, b) for a, b in zip(ours, theirs, strict=True)) / len(entries)
    if args.verbose:
        for a, b in zip(ours, theirs, strict=True):
            if comparable(task, a) != comparable(task, b):
                print(f"  {task} differs:\n    LLMOS        {a!r}\n    transformers {b!r}")
    return {"task": task, "items": len(entries), "metric": metric, "llmos": score(ours, refs),
            "transformers": score(theirs, refs), "same": same, "llmos_s": ours_s, "transformers_s": theirs_s,
            "prompt_mismatch": sides.prompt_mismatch.get(task, 0), "template_differs": sides.template_differs.get(task, 0)}


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (f"{'task':19} {'items':>5} {'metric':>9} {'LLMOS':>7} {'transf.':>7} {'same':>5} "
              f"{'LLMOS s':>8} {'transf. s':>9} {'ratio':>6}")
    print("\nwhat ran in this run: both columns (LLMOS and transformers' pipelines), in this process, same items")
    print("\n" + header + "\n" + "-" * len(header))
    for r in rows:
        print(f"{r['task']:19} {r['items']:>5} {r['metric']:>9} {r['llmos']:>7.1f} {r['transformers']:>7.1f} "
              f"{r['same']:>5.0%} {r['llmos_s']:>8.1f} {r['transformers_s']:>9.1f} "
              f"{r['transformers_s'] / r['llmos_s']:>5.2f}x")
    for r in rows:
        if r["prompt_mismatch"] or r["template_differs"]:
            print(f"note: {r['task']}: {r['prompt_mismatch']} prompts re-encode differently in transformers' "
                  f"tokenizer; {r['template_differs']} render differently under its own chat template")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated, of {', '.join(TASKS)}")
    parser.add_argument("--limit", type=int, default=None, help="the first N items of each task")
    parser.add_argument("--sentiment-rows", type=int, default=100, help="the last N rows of SST-2 (without --limit)")
    parser.add_argument("--sst2", type=Path, default=SST2)
    parser.add_argument("--max-words", type=int, default=25, help="summarization's max_words")
    parser.add_argument("--num-questions", type=int, default=3, help="quiz's num_questions")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write the rows here too")
    parser.add_argument("--verbose", action="store_true", help="print every item whose results differ")
    args = parser.parse_args()
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise SystemExit(f"unknown task {unknown[0]!r}; valid: {', '.join(TASKS)}")
    if "sentiment" in tasks and not args.sst2.is_file():
        print(f"note: {args.sst2} is absent (no ../shared data folder here): the sentiment row is skipped")
    start = time.perf_counter()
    sides = Sides(args.threads, args.batch_size)
    print(f"loaded both models in {time.perf_counter() - start:.1f} s", flush=True)
    rows = []
    for task in tasks:
        row = run_task(sides, task, args)
        if row is not None:
            rows.append(row)
            print(f"{task}: {json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()})}",
                  flush=True)
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
