"""`--model llmos` in EleutherAI's lm-evaluation-harness scores like its `hf` backend on the same weights.

A tiny random Llama-shaped model with a BOS-adding byte-level BPE tokenizer is
saved as an LLMOS checkpoint and exported to Hugging Face format; three local
tasks (multiple choice by loglikelihood, generate_until, rolling loglikelihood)
read JSONL files written here, so everything runs offline.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

lm_eval = pytest.importorskip("lm_eval")
pytest.importorskip("transformers")

from lm_eval.api.instance import Instance  # noqa: E402
from lm_eval.models.huggingface import HFLM  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402
from tokenizers import Tokenizer as BackendTokenizer  # noqa: E402
from tokenizers import decoders, models, pre_tokenizers, processors, trainers  # noqa: E402

from llmos.adapters import add_lora  # noqa: E402
from llmos.checkpoint import export_hf  # noqa: E402
from llmos.checkpoint.peft_format import resolve_targets, save_adapter  # noqa: E402
from llmos.config import ModelConfig  # noqa: E402
from llmos.errors import LLMOSError  # noqa: E402
from llmos.evaluation.lm_eval_harness import LLMOSLM  # noqa: E402
from llmos.model import CausalLM  # noqa: E402
from llmos.tokenizer import Tokenizer  # noqa: E402
from llmos.tokenizer.files import TokenizerSettings  # noqa: E402

pytestmark = pytest.mark.parity
TOL = 1e-4
CORPUS = [
    "The capital of France is Paris.",
    "Two plus two is four.",
    "The cat sat on the mat.",
    "Question: what color is the sky? Answer: blue.",
    "A dog runs in the park.\n",
] * 4
MC_DOCS = [
    {"question": "The capital of France is", "choices": ["Paris", "Rome", "a cat"], "answer": 0},
    {"question": "Two plus two is", "choices": ["four", "five", "the park"], "answer": 0},
    {"question": "The cat sat on the", "choices": ["mat", "sky", "dog"], "answer": 0},
    {
        "question": "What color is the sky?",
        "choices": ["blue", "red", "green", "four"],
        "answer": 0,
    },
    {"question": "A dog runs in the", "choices": ["park", "mat"], "answer": 1},
    {"question": "Question: what is two plus two?", "choices": ["four", "France"], "answer": 0},
]
GEN_PROMPTS = [
    "The capital of France is",
    "Two plus",
    "Question: what color is the sky? Answer:",
    "A dog",
    "The cat sat",
    "Paris is",
]
ROLLING_TEXTS = [
    "The cat sat on the mat. A dog runs in the park.",
    "Two plus two is four.",
    " ".join(CORPUS[:5]) + " The bird sang a song in the morning, then flew over the river.",
]
PERIODIC_TEXT = "Question: what color is the sky? Answer: blue. " * 6  # windows that repeat whole
GEN_KWARGS = {"until": ["\n", "."], "max_gen_toks": 6, "do_sample": False}


def _tokenizer() -> Tokenizer:
    """Byte-level BPE whose tokenizer.json prepends <s> (as Llama 3's does); </s> ends text."""
    backend = BackendTokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        min_frequency=1,
        special_tokens=["<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(CORPUS, trainer=trainer)
    backend.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single="<s> $A",
                pair="<s> $A <s> $B",
                special_tokens=[("<s>", backend.token_to_id("<s>"))],
            ),
        ]
    )
    return Tokenizer(
        backend, TokenizerSettings(special_tokens={"bos_token": "<s>", "eos_token": "</s>"})
    )


@pytest.fixture(scope="module")
def dirs(tmp_path_factory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("lm_eval_harness")
    tokenizer = _tokenizer()
    config = ModelConfig.from_preset(
        "nano",
        vocab_size=len(tokenizer),
        d_model=32,
        n_layers=2,
        n_heads=4,
        n_kv_heads=2,
        d_ff=64,
        max_seq_len=48,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    model = CausalLM(config).eval()
    # peaked distributions: no near-ties for greedy decoding to break differently
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3) if p.dim() > 1 else p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(root / "ours", tokenizer=tokenizer)
    export_hf(root / "ours", root / "hf")
    return SimpleNamespace(
        root=root, ours=root / "ours", hf=root / "hf", model=model, tokenizer=tokenizer
    )


@pytest.fixture(scope="module")
def hf_lm(dirs) -> HFLM:
    return HFLM(pretrained=str(dirs.hf), device="cpu", dtype="float32", batch_size=3)


@pytest.fixture(scope="module")
def llmos_lm(dirs) -> LLMOSLM:
    return LLMOSLM(pretrained=str(dirs.ours), device="cpu", batch_size=3)


def _generate_until(lm, prompts, gen_kwargs=GEN_KWARGS) -> list[str]:
    return lm.generate_until(
        [Instance("generate_until", {}, (p, dict(gen_kwargs)), i) for i, p in enumerate(prompts)],
        disable_tqdm=True,
    )


@pytest.fixture(scope="module")
def tasks(dirs, hf_lm) -> Path:
    """Three task YAMLs over local JSONL files; half the generation targets are the hf backend's own
    greedy answers, so exact_match is 0.5 for it and any other value means a different generation."""
    data, include = dirs.root / "data", dirs.root / "tasks"
    data.mkdir()
    include.mkdir()
    answers = _generate_until(hf_lm, GEN_PROMPTS)
    gen_docs = [
        {"prompt": p, "target": a if i % 2 == 0 else a + "#"}
        for i, (p, a) in enumerate(zip(GEN_PROMPTS, answers, strict=True))
    ]
    files = {"mc": MC_DOCS, "gen": gen_docs, "rolling": [{"text": t} for t in ROLLING_TEXTS]}
    for name, docs in files.items():
        (data / f"{name}.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    cache = str(dirs.root / "datasets_cache")
    common = {"dataset_path": "json", "test_split": "test"}
    configs = {
        "llmos_tiny_mc": {
            "output_type": "multiple_choice",
            "doc_to_text": "{{question}}",
            "doc_to_choice": "{{choices}}",
            "doc_to_target": "{{answer}}",
            "metric_list": [{"metric": "acc"}, {"metric": "acc_norm"}],
        },
        "llmos_tiny_gen": {
            "output_type": "generate_until",
            "doc_to_text": "{{prompt}}",
            "doc_to_target": "{{target}}",
            "generation_kwargs": GEN_KWARGS,
            "metric_list": [{"metric": "exact_match"}],
        },
        "llmos_tiny_rolling": {
            "output_type": "loglikelihood_rolling",
            "doc_to_text": "",
            "doc_to_target": "{{text}}",
            "metric_list": [{"metric": "word_perplexity"}, {"metric": "bits_per_byte"}],
        },
    }
    for (task, body), name in zip(configs.items(), files, strict=True):
        spec = {
            "task": task,
            **common,
            **body,
            "dataset_kwargs": {
                "data_files": {"test": str(data / f"{name}.jsonl")},
                "cache_dir": cache,
            },
        }
        (include / f"{task}.yaml").write_text(json.dumps(spec, indent=1))  # JSON is YAML
    return include


@pytest.fixture(autouse=True)
def _offline(monkeypatch, dirs):
    for name in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(dirs.root / "datasets_cache"))


TASKS = ["llmos_tiny_mc", "llmos_tiny_gen", "llmos_tiny_rolling"]


def _evaluate(model, tasks_dir, **kw):
    return lm_eval.simple_evaluate(
        model=model,
        tasks=TASKS,
        task_manager=TaskManager(include_path=str(tasks_dir), include_defaults=False),
        bootstrap_iters=0,
        log_samples=True,
        **kw,
    )


@pytest.fixture(scope="module")
def llmos_results(dirs, tasks):
    return _evaluate(
        "llmos", tasks, model_args={"pretrained": str(dirs.ours), "batch_size": 2}, device="cpu"
    )


def test_model_llmos_scores_equal_the_hf_backend_on_local_tasks(llmos_results, hf_lm, tasks):
    hf = _evaluate(hf_lm, tasks)
    ours = llmos_results
    for metric in ("acc,none", "acc_norm,none"):
        assert ours["results"]["llmos_tiny_mc"][metric] == hf["results"]["llmos_tiny_mc"][metric]
    assert hf["results"]["llmos_tiny_gen"]["exact_match,none"] == 0.5
    assert ours["results"]["llmos_tiny_gen"]["exact_match,none"] == 0.5
    for metric in ("word_perplexity,none", "bits_per_byte,none"):
        assert ours["results"]["llmos_tiny_rolling"][metric] == pytest.approx(
            hf["results"]["llmos_tiny_rolling"][metric], rel=TOL
        )
    for task in TASKS:  # request by request: same scores and the same generated text
        for a, b in zip(ours["samples"][task], hf["samples"][task], strict=True):
            assert a["arguments"] == b["arguments"]
            if task == "llmos_tiny_gen":
                assert a["resps"] == b["resps"]
            else:  # [[log p, is greedy]] per choice, or [[log p]] per text
                assert _flat(a["resps"]) == pytest.approx(_flat(b["resps"]), abs=TOL)
    assert "llmos" in ours["config"]["model"]


def _flat(nested) -> list[float]:
    if isinstance(nested, (list, tuple)):
        return [x for item in nested for x in _flat(item)]
    return [float(nested)]


def _loglikelihood(lm, pairs):
    return lm.loglikelihood(
        [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)], disable_tqdm=True
    )


def test_loglikelihoods_match_the_hf_backend_request_by_request(llmos_lm, hf_lm):
    pairs = [
        ("The capital of France is", " Paris"),
        ("Two plus two is ", "four."),  # trailing space moves
        ("", "The cat sat on the mat."),  # empty context: BOS stands in
        ("<s>The cat", " sat"),  # context already starting with BOS: no second one
        ("Question: what color is the sky? Answer:", " blue"),
        ("The cat sat on the", " mat"),
        ("The cat sat on the", " m"),
        ("word " * 30, "the end of a text longer than max_length"),
    ]
    ours, theirs = _loglikelihood(llmos_lm, pairs), _loglikelihood(hf_lm, pairs)
    for (a, greedy_a), (b, greedy_b) in zip(ours, theirs, strict=True):
        assert a == pytest.approx(b, abs=TOL) and greedy_a == greedy_b
    rolling = [Instance("loglikelihood_rolling", {}, (t,), i) for i, t in enumerate(ROLLING_TEXTS)]
    assert llmos_lm.loglikelihood_rolling(rolling, disable_tqdm=True) == pytest.approx(
        hf_lm.loglikelihood_rolling(rolling, disable_tqdm=True), abs=TOL
    )


def test_generate_until_matches_the_hf_backend_with_left_padded_batches(llmos_lm, hf_lm):
    prompts = [
        "The",
        "Question: what color is the sky? Answer:",
        "Two plus two",
        "A dog runs in the park",
    ]
    for gen_kwargs in (
        {"until": ["."], "max_gen_toks": 10},
        {"until": "\n\n", "max_gen_toks": 4, "temperature": 0},
    ):
        ours, theirs = (
            _generate_until(llmos_lm, prompts, gen_kwargs),
            _generate_until(hf_lm, prompts, gen_kwargs),
        )
        assert ours == theirs
        assert any(ours)


def test_requests_sharing_one_forward_pass_score_as_they_would_alone(dirs, llmos_lm):
    """Windows of a periodic text have equal tokens, so lm-eval's logits cache serves a short window
    from a longer one's forward pass; its log-probs must come from the trailing positions. (lm-eval
    0.4.13's hf backend gathers the leading ones here, so this case is not compared with it.)"""
    alone = LLMOSLM(pretrained=str(dirs.ours), device="cpu", batch_size=1, logits_cache=False)
    request = [Instance("loglikelihood_rolling", {}, (PERIODIC_TEXT,), 0)]
    assert llmos_lm.loglikelihood_rolling(request, disable_tqdm=True) == pytest.approx(
        alone.loglikelihood_rolling(request, disable_tqdm=True), abs=TOL
    )


def test_a_model_object_and_its_tokenizer_work_through_the_python_api(dirs, llmos_lm):
    lm = LLMOSLM(pretrained=dirs.model, tokenizer=dirs.tokenizer, device="cpu")
    pairs = [("The capital of France is", " Paris"), ("", "Two plus two")]
    assert [s for s, _ in _loglikelihood(lm, pairs)] == pytest.approx(
        [s for s, _ in _loglikelihood(llmos_lm, pairs)], abs=TOL
    )


def test_bad_model_args_are_refused_with_the_valid_ones_named(dirs):
    with pytest.raises(LLMOSError, match="unknown model_args.*bogus.*valid: pretrained"):
        LLMOSLM(pretrained=str(dirs.ours), bogus=1)
    with pytest.raises(LLMOSError, match="needs pretrained="):
        LLMOSLM()
    with pytest.raises(LLMOSError, match="batch_size"):
        LLMOSLM(pretrained=str(dirs.ours), batch_size=0)


def test_adapter_scores_like_the_hf_backend_with_peft(dirs, hf_lm):
    """adapter=DIR (or pretrained=DIR of the adapter itself) vs the hf backend's peft=DIR."""
    pytest.importorskip("peft")
    model = copy.deepcopy(dirs.model)
    add_lora(model, resolve_targets(model, ["q_proj", "v_proj", "down_proj"])[0], r=4, alpha=8)
    with torch.no_grad():  # a nonzero update, as training would leave
        for name, p in model.named_parameters():
            if ".adapters." in name:
                p.normal_(0, 0.3)
    adapter = save_adapter(model, dirs.root / "adapter", base_model=str(dirs.hf))
    pairs = [("The capital of France is", " Paris"), ("", "Two plus two is four.")]
    with_peft = HFLM(pretrained=str(dirs.hf), peft=str(adapter), device="cpu", dtype="float32")
    expected = [s for s, _ in _loglikelihood(with_peft, pairs)]
    assert expected != pytest.approx([s for s, _ in _loglikelihood(hf_lm, pairs)], abs=0.1)
    for lm in (
        LLMOSLM(pretrained=str(dirs.ours), adapter=str(adapter), device="cpu"),
        LLMOSLM(pretrained=str(adapter), device="cpu"),
    ):
        assert [s for s, _ in _loglikelihood(lm, pairs)] == pytest.approx(expected, abs=TOL)


@pytest.mark.slow  # lm-eval's CLI indexes its ~15,000 built-in tasks first (~8 s)
def test_launcher_runs_lm_evals_own_cli_with_model_llmos(dirs, tasks, llmos_results, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "llmos.evaluation.lm_eval_harness",
        "--model",
        "llmos",
        "--model_args",
        f"pretrained={dirs.ours}",
        "--batch_size",
        "2",
        "--device",
        "cpu",
        "--tasks",
        "llmos_tiny_mc",
        "--include_path",
        str(tasks),
        "--output_path",
        str(out),
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "llmos_tiny_mc" in done.stdout and "acc_norm" in done.stdout
    (written,) = out.rglob("results_*.json")
    results = json.loads(written.read_text())["results"]["llmos_tiny_mc"]
    assert results["acc,none"] == llmos_results["results"]["llmos_tiny_mc"]["acc,none"]
    assert results["acc_norm,none"] == llmos_results["results"]["llmos_tiny_mc"]["acc_norm,none"]
