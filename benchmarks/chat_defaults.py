"""Chat sampling defaults on SmolLM2-135M-Instruct: which temperature / top-k / top-p / min-p /
repetition penalty make the embedded model answer sanely when a request names none.

`llmos chat`, `llmos serve` (and its chat page) and the studio playground sample with
`llmos.generation_config.chat_sampling(model.generation_config)`: a model's own
generation_config.json (or GGUF `general.sampling.*`) values, else `CHAT_SAMPLING`. SmolLM2's GGUF
carries no sampling keys (nor does its generation_config.json on the Hub), so `CHAT_SAMPLING` is
what its users get; this script measured the candidates. Each prompt is put through the model's
chat template and sampled `--samples` times (in one batch, seeded per setting) for every setting:
- 8 factual questions with one right answer (a word an English reply must contain): % right, and
  that rate for "What is the capital of France?" alone (SmolLM2's first token there is "The" 0.15,
  "L" 0.14, "La" 0.11, and every first token but "The" goes on in garbled French);
- 8 open prompts (tips, a poem, a story, a greeting, ...): % in English, % not looping (fewer than
  30% repeated word 3-grams, and not compressible below a third), % ended by the model within 200
  tokens.

Measured (int4 as stored, one thread on a busy 2-core machine; --samples 6, so 48 factual and 48 open
replies per sampled setting, one each for a greedy one; "France": the capital question in English
with "Paris"):

    setting                    France factual right open English not looping  ended
    greedy                       100%           88%         100%         50%    38%
    greedy/rp1.1                 100%           88%         100%         88%    50%   <- CHAT_SAMPLING
    llmos-0.7/0.95 (old)          33%           71%         100%         88%    44%
    card 0.2/0.9                  67%           83%         100%         44%    23%
    0.3/k40/0.9/rp1.1             50%           73%         100%         96%    42%
    ollama 0.8/k40/0.9/rp1.1      50%           69%         100%        100%    40%

Every sampling setting answers the capital question in French (or without Paris) a third to two
thirds of the time (temperatures 0.2-0.8: the "L"/"La" branches keep that much of the mass); greedy
never does, and the repetition penalty 1.1 takes greedy's loops from 4 of 8 open prompts to 1
(1.05: 1; 1.15: 0, but replies run longer and one factual answer drifts; 1.2: 75% factual). `--lengths 1024` under the
chosen defaults: 14 of the 16 prompts end by themselves within 291 tokens, the robot story at 575,
and the sea poem loops to the limit; hence DEFAULT_REPLY_TOKENS = 512, the usual cap (the story is
cut, with finish_reason "length" / the chat's marker).

Run (about 20 minutes on 2 busy cores at the defaults; --samples 4 --settings NAME,... for less):

    .venv/bin/python benchmarks/chat_defaults.py
    .venv/bin/python benchmarks/chat_defaults.py --lengths 1024
"""

from __future__ import annotations

import argparse
import re
import time
import zlib

import torch

FACTUAL = (
    ("What is the capital of France?", "paris"),
    ("What is the capital of Japan?", "tokyo"),
    ("What is the largest planet in our solar system?", "jupiter"),
    ("Who wrote Romeo and Juliet?", "shakespeare"),
    ("How many legs does a spider have?", r"\b(8|eight)\b"),
    ("What is the chemical symbol for water?", "h2o|h₂o"),
    ("At what temperature in Celsius does water boil at sea level?", r"\b100\b"),
    ("What color is the sky on a clear day?", "blue"),
)
OPEN = (
    "Give me three tips for learning a new language.",
    "Write a short poem about the sea.",
    "Explain what a computer is to a child.",
    "Hello! How are you today?",
    "Write a short story about a robot who dreams of becoming a writer.",
    "What should I cook for dinner tonight?",
    "Describe your favourite season and why.",
    "How do I make a cup of tea?",
)
SETTINGS = {  # name -> generate() keywords
    "greedy": {"do_sample": False},
    "greedy/rp1.05": {"do_sample": False, "repetition_penalty": 1.05},
    "greedy/rp1.1": {"do_sample": False, "repetition_penalty": 1.1},
    "greedy/rp1.15": {"do_sample": False, "repetition_penalty": 1.15},
    "greedy/rp1.2": {"do_sample": False, "repetition_penalty": 1.2},
    "llmos-0.7/0.95 (old)": {"do_sample": True, "temperature": 0.7, "top_p": 0.95, "top_k": None},
    "ollama 0.8/k40/0.9/rp1.1": {"do_sample": True, "temperature": 0.8, "top_k": 40, "top_p": 0.9,
                                 "repetition_penalty": 1.1},
    "card 0.2/0.9": {"do_sample": True, "temperature": 0.2, "top_p": 0.9, "top_k": None},
    "0.2/k40/0.9": {"do_sample": True, "temperature": 0.2, "top_k": 40, "top_p": 0.9},
    "0.3/k40/0.9": {"do_sample": True, "temperature": 0.3, "top_k": 40, "top_p": 0.9},
    "0.3/k40/0.9/rp1.1": {"do_sample": True, "temperature": 0.3, "top_k": 40, "top_p": 0.9,
                          "repetition_penalty": 1.1},
    "0.7/minp0.1": {"do_sample": True, "temperature": 0.7, "min_p": 0.1, "top_k": None},
    "0.2/k40/0.9/rp1.1": {"do_sample": True, "temperature": 0.2, "top_k": 40, "top_p": 0.9,
                          "repetition_penalty": 1.1},
    "0.5/k40/0.9/rp1.1": {"do_sample": True, "temperature": 0.5, "top_k": 40, "top_p": 0.9,
                          "repetition_penalty": 1.1},
    "0.3/k40/0.9/rp1.05": {"do_sample": True, "temperature": 0.3, "top_k": 40, "top_p": 0.9,
                           "repetition_penalty": 1.05},
    "0.3/k40/0.9/rp1.15": {"do_sample": True, "temperature": 0.3, "top_k": 40, "top_p": 0.9,
                           "repetition_penalty": 1.15},
}
FRENCH = {"le", "la", "les", "de", "des", "est", "et", "un", "une", "du", "en", "pour", "que", "qui", "dans"}


def english(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    words = re.findall(r"[a-zà-ÿ']+", text.lower())
    if not letters or not words:
        return False
    ascii_share = sum(c.isascii() for c in letters) / len(letters)
    french_share = sum(w in FRENCH for w in words) / len(words)
    return ascii_share >= 0.97 and french_share < 0.08


def degenerate(text: str) -> bool:
    """A loop: 30% or more of the word 3-grams repeat, or the text compresses below a third of its
    size ("1.1.1.1.1..." has no spaces to count words by)."""
    words = text.lower().split()
    grams = [tuple(words[i:i + 3]) for i in range(len(words) - 2)]
    repeated = bool(grams) and 1 - len(set(grams)) / len(grams) >= 0.3
    data = text.encode()
    return repeated or (len(data) >= 120 and len(zlib.compress(data, 9)) < len(data) / 3)


def sample(model, tokenizer, prompt: str, keywords: dict, samples: int, max_new_tokens: int) -> list[tuple[str, bool]]:
    """(reply, ended by the model) for `samples` draws."""
    ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                        return_tensors="pt")
    rows = samples if keywords.get("do_sample") else 1
    out = model.generate(ids, max_new_tokens=max_new_tokens, num_return_sequences=rows, **keywords)
    eos = set(model.generation_config.eos_token_ids)
    replies = []
    for row in out[:, ids.shape[1]:]:
        tokens = row.tolist()
        ended = any(t in eos for t in tokens)
        replies.append((tokenizer.decode(row, skip_special_tokens=True).strip(), ended))
    return replies * (samples // rows)


def reply_lengths(model, tokenizer, limit: int) -> None:
    """How long replies run under `chat_generate_keywords` (what `llmos chat` and `llmos serve` use):
    the evidence for DEFAULT_REPLY_TOKENS."""
    from llmos.generation_config import chat_generate_keywords

    keywords = chat_generate_keywords(model.generation_config)
    for prompt in OPEN + tuple(question for question, _ in FACTUAL):
        ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                            return_tensors="pt")
        out = model.generate(ids, max_new_tokens=limit, **keywords)
        tokens = out.shape[1] - ids.shape[1]
        ended = int(out[0, -1]) in model.generation_config.eos_token_ids
        print(f"{tokens:5d} tokens {'ended' if ended else 'cut  '}  {prompt}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated names of SETTINGS")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", action="store_true", help="print the first reply of each prompt")
    parser.add_argument("--lengths", type=int, metavar="LIMIT",
                        help="instead: each open prompt's reply length under the chat defaults, up to LIMIT tokens")
    args = parser.parse_args()
    from llmos import AutoModelForCausalLM, AutoTokenizer

    tokenizer, model = AutoTokenizer.from_pretrained("smollm2"), AutoModelForCausalLM.from_pretrained("smollm2")
    if args.lengths:
        reply_lengths(model, tokenizer, args.lengths)
        return
    print(f"{'setting':26} {'France':>6} {'factual right':>13} {'open English':>12} {'not looping':>11} {'ended':>6} "
          f"{'s':>5}")
    for name in args.settings.split(","):
        keywords, started = SETTINGS[name], time.perf_counter()
        torch.manual_seed(args.seed)
        right = total = 0
        for question, answer in FACTUAL:
            for reply, _ in sample(model, tokenizer, question, keywords, args.samples, 48):
                right += bool(re.search(answer, reply.lower())) and english(reply)
                total += 1
            if question == FACTUAL[0][0]:
                france = 100 * right / total
            if args.show:
                print(f"  {question} -> {reply[:100]!r}")
        fluent = sane = ended = count = 0
        for prompt in OPEN:
            for reply, done in sample(model, tokenizer, prompt, keywords, args.samples, 200):
                fluent += english(reply)
                sane += not degenerate(reply)
                ended += done
                count += 1
            if args.show:
                print(f"  {prompt} -> {reply[:160]!r}")
        print(f"{name:26} {france:5.0f}% {100 * right / total:12.0f}% {100 * fluent / count:11.0f}% {100 * sane / count:10.0f}% "
              f"{100 * ended / count:5.0f}% {time.perf_counter() - started:5.0f}", flush=True)


if __name__ == "__main__":
    main()
