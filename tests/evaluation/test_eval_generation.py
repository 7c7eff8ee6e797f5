"""Generation evaluation: batched greedy answers equal `model.generate` one prompt at a time, chats
are rendered with the chat template, and the scores are those of the answers."""

from __future__ import annotations

import json

import pytest
import torch
from sacrebleu import corpus_chrf

from llmos.data.labelled import DataError
from llmos.evaluation.generation_tasks import evaluate_generation, read_generation_examples

TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
            "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def greedy(model, tokenizer, ids: list[int], n: int) -> str:
    out = model.generate(torch.tensor([ids]), max_new_tokens=n, do_sample=False)[0, len(ids):].tolist()
    eos = model.config.eos_token_id
    return tokenizer.decode(out[:out.index(eos)] if eos in out else out, skip_special_tokens=True)


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_batched_answers_equal_single_greedy_generations_and_are_scored(tmp_path, causal_checkpoint):
    _, model, tokenizer = causal_checkpoint
    prompts = ["the cat", "paris is nice and the dog ran", "on the mat", "the dog"]
    records = [{"prompt": prompts[0], "reference": "sat on the mat"},
               {"prompt": prompts[1], "references": ["far away", "home"]},
               {"prompt": prompts[2], "completion": "."},
               {"prompt": prompts[3], "reference": "ran"}]
    path = write_jsonl(tmp_path / "gen.jsonl", records)
    result = evaluate_generation(model, tokenizer, path, max_new_tokens=5, batch_size=3)
    expected = [greedy(model, tokenizer, tokenizer.encode(p), 5) for p in prompts]
    assert [p["prediction"] for p in result["predictions"]] == expected
    assert result["predictions"][1]["references"] == ["far away", "home"]
    refs = [["sat on the mat"], ["far away", "home"], ["."], ["ran"]]
    assert result["metrics"]["chrf"] == pytest.approx(
        corpus_chrf(expected, [[r[0] for r in refs], [None, "home", None, None]]).score)
    assert 0.0 <= result["metrics"]["rouge_l"] <= 1.0 and result["n_examples"] == 4


def test_a_perfect_answer_scores_exact_match_one(tmp_path, causal_checkpoint):
    _, model, tokenizer = causal_checkpoint
    answer = greedy(model, tokenizer, tokenizer.encode("the cat"), 4)
    path = write_jsonl(tmp_path / "gen.jsonl", [{"prompt": "the cat", "reference": f"  {answer.upper()} "}])
    metrics = evaluate_generation(model, tokenizer, path, max_new_tokens=4)["metrics"]
    assert answer.strip() and metrics["exact_match"] == 1.0
    assert metrics["chrf"] == pytest.approx(corpus_chrf([answer], [[f"  {answer.upper()} "]]).score)


def test_chat_records_use_the_chat_template_and_the_last_assistant_turn_as_reference(tmp_path, causal_checkpoint):
    _, model, tokenizer = causal_checkpoint
    tokenizer.chat_template = TEMPLATE
    try:
        chat = [{"role": "user", "content": "the cat"}, {"role": "assistant", "content": "sat"},
                {"role": "user", "content": "the dog"}, {"role": "assistant", "content": "ran"}]
        path = write_jsonl(tmp_path / "chat.jsonl", [{"messages": chat}])
        result = evaluate_generation(model, tokenizer, path, max_new_tokens=3)
        ids = tokenizer.apply_chat_template(chat[:3], add_generation_prompt=True)
        assert result["predictions"][0]["references"] == ["ran"]
        assert result["predictions"][0]["prediction"] == greedy(model, tokenizer, ids, 3)
    finally:
        tokenizer.chat_template = None


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"prompt": "a"}\n', "gen.jsonl:1: the record has no reference"),
        ('{"prompt": "a", "reference": "b"}\n{"prompt": "a", "references": []}\n', "gen.jsonl:2: 'references'"),
        ('{"messages": [{"role": "user", "content": "hi"}]}\n', "gen.jsonl:1: the chat has no assistant turn"),
        ('{"question": "a"}\n', "neither 'prompt' nor 'messages'"),
        ("\n{bad\n", "gen.jsonl:2: not valid JSON"),
        ("\n", "holds no examples"),
    ],
)
def test_bad_generation_files_name_the_line(tmp_path, content, expected):
    (tmp_path / "gen.jsonl").write_text(content)
    with pytest.raises(DataError, match=expected):
        read_generation_examples(tmp_path / "gen.jsonl")


def test_a_prompt_longer_than_the_context_names_its_line(tmp_path, causal_checkpoint):
    _, model, tokenizer = causal_checkpoint
    path = write_jsonl(tmp_path / "gen.jsonl", [{"prompt": "the cat", "reference": "x"},
                                                {"prompt": "the cat sat " * 40, "reference": "x"}])
    with pytest.raises(DataError, match=r"gen.jsonl:2: the prompt has \d+ tokens.*max_seq_len=64"):
        evaluate_generation(model, tokenizer, path)
