"""Layer 6 (evaluation): zero-shot classification with a causal LM, by scoring the label words.

The model is asked a question whose answer is one of the labels; each label's
score is the log-probability that the reply's next word is that label (lower
case or capitalised, summed), read from one forward pass per prompt, with no
decoding (`generation.scoring`, or a `Generator`'s `next_token_log_probs`, which
the sentiment pipeline uses so a served model scores through its engine). The
reply may be started for the model (`answer_start`, "The sentiment of this
text is"): a small model then spends its probability on the label words
instead of "The", "It", "Sure". The SST-2 benchmarks use it too.

A small model's scores carry a prior that has nothing to do with the text
(under the sentiment pipeline's prompt SmolLM2-135M answers "positive" for 96%
of SST-2's sentences, half of which are negative), so they are calibrated
(contextual calibration, Zhao et al. 2021): each text's label distribution is
divided by the mean distribution the model gives content-free inputs through
the same prompt, and renormalised. Content-free inputs are "N/A", "" and
"[MASK]" (Zhao et al.) and strings of random words of the tokenizer's
vocabulary (as Fei et al. 2023 draw random words of the task's corpus; a
pipeline has no corpus, its tokenizer has words): on SST-2's training rows the
first three alone over-corrected (the prior they give leans further than real
sentences do: 58% with the default prompt), the random words did not (79.5%;
both together 80.0%, the default; benchmarks/sentiment_prompts.py). The prior
is computed once per model, prompt and label set and cached.
"""

from __future__ import annotations

import random
import threading
import weakref
from typing import Any

import torch

from llmos.errors import LLMOSError
from llmos.generation.scoring import next_token_log_probs

ZHAO_CONTENT_FREE = ("N/A", "", "[MASK]")
RANDOM_TEXTS, RANDOM_TEXT_WORDS = 16, 15  # content-free strings of random words: how many, and their length


def answer_tokens(tokenizer: Any, labels: list[str], answer_start: str = "") -> tuple[list[int], list[list[int]]]:
    """(the reply's first tokens, for each label the ids of its word as written and capitalised).

    With an `answer_start` the label words follow it after a space, encoded together with it, so
    that a byte-level BPE scores " positive" (one token, space included) and a tokenizer that keeps
    spaces apart scores "positive" after a space token, which then belongs to the reply's start.
    Only each word's first token is scored, so two labels that begin with the same token cannot be
    told apart: that is an error naming them, never a silent tie."""
    lead = f"{answer_start} " if answer_start else ""
    forms = [[tokenizer.encode(lead + form, add_special_tokens=False) for form in dict.fromkeys((label, label.capitalize()))]
             for label in labels]
    every = [ids for label in forms for ids in label]
    # the reply's start: the tokens every form begins with, never more than `lead` encodes to alone
    # (so a word's own first token, even one all labels share, stays the label's), and never a
    # whole form
    limit = min(len(tokenizer.encode(lead, add_special_tokens=False)), *(len(ids) - 1 for ids in every))
    shared = next((n for n in range(limit) if len({ids[n] for ids in every}) > 1), limit)
    words = [sorted({ids[shared] for ids in label if len(ids) > shared}) for label in forms]
    for i, a in enumerate(labels):
        for j in range(i + 1, len(labels)):
            if set(words[i]) & set(words[j]) or not words[i] or not words[j]:
                raise LLMOSError(f"labels {a!r} and {labels[j]!r} begin with the same token for this tokenizer, so "
                                 "their first-token scores are the same; use label words that begin differently")
    return every[0][:shared], words


def label_word_ids(tokenizer: Any, labels: list[str]) -> list[list[int]]:
    """For each label, the first token of the word as written and capitalised (deduplicated), as the
    reply's first token (`answer_tokens` without an answer start)."""
    return answer_tokens(tokenizer, labels)[1]


def label_word_log_probs(model: Any, tokenizer: Any, prompts: list[list[int]], labels: list[str],
                         batch_size: int = 16, answer_start: str = "") -> torch.Tensor:
    """(len(prompts), len(labels)) log-probabilities that the reply's next word is each label (see
    `answer_tokens`), after `answer_start` when one is given: a model in this process. `prompts` are
    token ids, usually a chat template with add_generation_prompt=True."""
    start, words = answer_tokens(tokenizer, labels, answer_start)
    if not prompts:
        return torch.zeros(0, len(labels))
    found = next_token_log_probs(model, [p + start for p in prompts], [i for w in words for i in w], batch_size)
    return label_scores(found, words)


def generator_label_log_probs(generator: Any, tokenizer: Any, prompts: list[list[int]], labels: list[str],
                              answer_start: str = "") -> torch.Tensor:
    """As `label_word_log_probs`, scored by a `Generator` (`next_token_log_probs`: a model in this
    process, or the server's engine)."""
    start, words = answer_tokens(tokenizer, labels, answer_start)
    if not prompts:
        return torch.zeros(0, len(labels))
    found = generator.next_token_log_probs([p + start for p in prompts], [i for w in words for i in w])
    return label_scores(torch.tensor(found), words)


def label_scores(log_probs: torch.Tensor, words: list[list[int]]) -> torch.Tensor:
    """(N, labels): each label's log-probability, its word forms' summed (`log_probs` (N, all forms), in
    the order of `answer_tokens`' words flattened)."""
    out, start = [], 0
    for forms in words:
        out.append(log_probs[:, start:start + len(forms)].logsumexp(-1))
        start += len(forms)
    return torch.stack(out, -1)


def random_word_texts(tokenizer: Any, n: int = RANDOM_TEXTS, words: int = RANDOM_TEXT_WORDS,
                      seed: int = 0) -> list[str]:
    """`n` strings of `words` random words, drawn (seeded) from the tokenizer's whole-word tokens
    (a leading-space marker, then three or more lower-case letters); none when it has no such tokens.
    Random words carry no sentiment on average, and look like text to the model, as "N/A" does not."""
    vocab = tokenizer.get_vocab()
    found = sorted({word for token, i in vocab.items() if token[:1] in ("Ġ", "▁")
                    for word in [tokenizer.decode([i]).strip()] if len(word) >= 3 and word.isalpha() and word.islower()})
    if not found:
        return []
    draw = random.Random(seed)
    return [" ".join(draw.choice(found) for _ in range(words)) for _ in range(n)]


_CONTENT_FREE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # tokenizer -> its content-free texts


def content_free_texts(tokenizer: Any) -> list[str]:
    """The inputs whose mean label distribution is the prior `calibrate` divides out: Zhao et al.'s
    "N/A", "" and "[MASK]", and strings of random words (`random_word_texts`); kept per tokenizer."""
    texts = _CONTENT_FREE.get(tokenizer)
    if texts is None:
        texts = _CONTENT_FREE[tokenizer] = [*ZHAO_CONTENT_FREE, *random_word_texts(tokenizer)]
    return texts


def calibrate(log_probs: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """(N, L) label log-probabilities divided by the prior (L,) (log of the mean label distribution
    of content-free inputs, `content_free_prior`), renormalised over the labels: log-probabilities."""
    return (log_probs.log_softmax(-1) - prior).log_softmax(-1)


_PRIORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {(prompts, reply start, words): prior}
_PRIORS_LOCK = threading.Lock()


def content_free_prior(generator: Any, tokenizer: Any, prompts: list[list[int]], labels: list[str],
                       answer_start: str = "", batch_size: int = 8) -> torch.Tensor:
    """(len(labels),) the log of the mean label distribution over `prompts` (content-free inputs
    through the task's prompt), scored by a `Generator`, `batch_size` prompts at a time (a server's
    engine queues each as a request), and computed once per model (the generator's, else the
    generator itself: a new pipeline on the same model reuses it): the same prompts, reply start and
    label tokens give the same tensor without a forward pass. The cache forgets a model when it is
    freed; a model whose weights are changed in place keeps its old prior."""
    start, words = answer_tokens(tokenizer, labels, answer_start)
    owner = getattr(generator, "model", None)
    owner = generator if owner is None else owner
    key = (tuple(map(tuple, prompts)), tuple(start), tuple(map(tuple, words)))
    with _PRIORS_LOCK:
        found = _PRIORS.get(owner, {}).get(key)
    if found is not None:
        return found
    prior = torch.cat([generator_label_log_probs(generator, tokenizer, prompts[i:i + batch_size], labels, answer_start)
                       for i in range(0, len(prompts), max(1, batch_size))])
    prior = prior.log_softmax(-1).exp().mean(0).log()
    with _PRIORS_LOCK:
        _PRIORS.setdefault(owner, {})[key] = prior
    return prior
