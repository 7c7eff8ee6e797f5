"""Fine-tuning: chat / completion / labelled data, the lora / freeze / full methods, PEFT-format
checkpoints, exact resume, merge, and one clear error for each kind of bad input."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from llmos.auto import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
from llmos.cli.main import app
from llmos.config import ModelConfig
from llmos.data.labelled import DataError
from llmos.data.sft import SFTBatches, read_examples
from llmos.model import CausalLM
from llmos.model.heads import IGNORE_INDEX
from llmos.training.finetune import finetune
from llmos.training.finetune_recipe import FinetuneConfig
from llmos.training.freeze import FreezeError

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
NO_SYSTEM = ("{% for m in messages %}{% if m['role'] != 'system' %}<|im_start|>{{ m['role'] }}\n"
             "{{ m['content'] }}<|im_end|>\n{% endif %}{% endfor %}"
             "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
WORDS = ["the cat sat on the mat", "a dog ran in the park", "the bird sang a song", "what is two plus two",
         "four", "say hello", "hello there", "good cat", "bad dog"]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A tiny Llama-shaped causal LM with a byte-level BPE tokenizer that has a chat template."""
    from llmos.tokenizer.training import train_tokenizer

    tokenizer = train_tokenizer(WORDS * 5, kind="bpe", vocab_size=300, min_frequency=1)
    tokenizer.chat_template = CHATML
    config = ModelConfig.from_preset("nano", vocab_size=len(tokenizer), d_model=32, n_layers=2, n_heads=4,
                                     n_kv_heads=2, d_ff=48, max_seq_len=128, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("base") / "tiny"
    CausalLM(config).save_pretrained(directory, tokenizer=tokenizer)
    return directory


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def chat_records(n=12):
    return [{"messages": [{"role": "system", "content": "be brief"},
                          {"role": "user", "content": "what is two plus two"},
                          {"role": "assistant", "content": "four"},
                          {"role": "user", "content": "say hello"},
                          {"role": "assistant", "content": "hello there" if i % 2 else "hello"}]}
            for i in range(n)]


def run_config(tmp_path, base, data, **over) -> FinetuneConfig:
    values = dict(base_model=str(base), data=str(data), out_dir=str(tmp_path / "run"), max_steps=6,
                  batch_size=4, context=64, eval_every=3, log_every=1, warmup_steps=1, lr=1e-2, progress=False,
                  lora_r=4, lora_dropout=0.0)
    return FinetuneConfig(**{**values, **over})


def test_chat_examples_take_the_loss_on_assistant_turns_only(base, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(base)
    data = write_jsonl(tmp_path / "chat.jsonl", chat_records(1))
    (example,) = read_examples(data, tokenizer, context=128)
    trained = [t for t in example.labels if t != IGNORE_INDEX]
    assert tokenizer.decode(trained) == "four<|im_end|>\nhello<|im_end|>\n"
    assert tokenizer.decode(example.ids) == tokenizer.apply_chat_template(chat_records(1)[0]["messages"],
                                                                          tokenize=False)


def test_prompt_completion_examples_learn_the_completion_and_eos(base, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(base)
    data = write_jsonl(tmp_path / "pc.jsonl", [{"prompt": "say hello", "completion": " hello there"}])
    (example,) = read_examples(data, tokenizer, context=128)
    trained = [t for t in example.labels if t != IGNORE_INDEX]
    assert tokenizer.decode(trained[:-1]) == " hello there" and trained[-1] == tokenizer.eos_token_id


@pytest.mark.parametrize("record, message", [
    ({"messages": [{"role": "narrator", "content": "x"}, {"role": "assistant", "content": "y"}]},
     r"bad\.jsonl:2: message 0 has role 'narrator'; expected one of \['system', 'user', 'assistant', 'tool'\]"),
    ({"messages": [{"role": "user", "content": "x"}]}, r"bad\.jsonl:2: the conversation has no assistant turn"),
    ({"prompt": "", "completion": "y"}, r"bad\.jsonl:2: 'prompt' must be a non-empty string"),
    ({**chat_records(1)[0], "distill": "yes"}, r"bad\.jsonl:2: 'distill' must be true or false, found 'yes'"),
])
def test_bad_records_are_named_by_file_and_line(base, tmp_path, record, message):
    tokenizer = AutoTokenizer.from_pretrained(base)
    first = chat_records(1)[0] if "messages" in record else {"prompt": "a", "completion": "b"}
    data = write_jsonl(tmp_path / "bad.jsonl", [first, record])
    with pytest.raises(DataError, match=message):
        read_examples(data, tokenizer, context=128)


def test_a_role_the_template_drops_is_refused(base, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(base)
    tokenizer.chat_template = NO_SYSTEM
    data = write_jsonl(tmp_path / "chat.jsonl", chat_records(1))
    with pytest.raises(DataError, match=r"chat\.jsonl:1: the model's chat template does not render role 'system'"):
        read_examples(data, tokenizer, context=128)


def test_packing_fills_every_row_to_the_context(base, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(base)
    examples = read_examples(write_jsonl(tmp_path / "c.jsonl", chat_records(8)), tokenizer, context=128)
    x, y = next(SFTBatches(examples, batch_size=2, context=16, pad_id=1, packing=True, seed=0))
    assert x.shape == y.shape == (2, 16)
    assert (x != 1).all()


def test_grouping_by_length_pads_less_and_still_serves_every_example_once_an_epoch():
    from llmos.data.sft import Example

    lengths = [5 + (7 * i) % 40 for i in range(50)]  # 50 examples of 5-44 tokens, batches of 4
    examples = [Example(list(range(n)), list(range(n))) for n in lengths]
    plain = SFTBatches(examples, batch_size=4, context=64, pad_id=0, seed=3)
    grouped = SFTBatches(examples, batch_size=4, context=64, pad_id=0, seed=3, group_by_length=True)
    assert sorted(len(e.ids) for e in grouped.epoch_rows()) == sorted(lengths)
    padded = [sum(next(batches)[0].numel() for _ in range(12)) for batches in (plain, grouped)]
    assert padded[1] < 0.8 * padded[0]


def test_distilled_rows_learn_the_base_models_distribution_not_their_tokens(base, tmp_path):
    from llmos.adapters import lora_layers, using_adapter
    from llmos.training.finetune import apply_method
    from llmos.training.objectives import DistilledCausalLMObjective

    tokenizer = AutoTokenizer.from_pretrained(base)
    records = [{**r, "distill": i % 2 == 0} for i, r in enumerate(chat_records(4))]
    examples = read_examples(write_jsonl(tmp_path / "c.jsonl", records), tokenizer, context=64)
    x, y, distill = SFTBatches(examples, batch_size=4, context=64, pad_id=0).collate(examples)
    assert distill.tolist() == [True, False, True, False]
    model = apply_method(AutoModelForCausalLM.from_pretrained(base), FinetuneConfig(method="lora", lora_r=4))
    objective = DistilledCausalLMObjective()
    assert objective.loss(model, (x[:1], y[:1], distill[:1])).item() == pytest.approx(0.0, abs=1e-6)  # B = 0
    torch.manual_seed(1)
    for _, layer in lora_layers(model):
        for part in layer.adapters["default"].B:
            torch.nn.init.normal_(part, std=0.5)
    trained = y != IGNORE_INDEX
    with torch.no_grad():
        tuned = model(x).logits.log_softmax(-1)
        with using_adapter(model, None):
            base_model = model(x).logits.log_softmax(-1)
    kl = (base_model.exp() * (base_model - tuned)).sum(-1)  # KL(base || tuned) at each position
    nll = -tuned.gather(-1, y.clamp(min=0)[..., None])[..., 0]
    per_token = torch.where(distill[:, None], kl, nll)[trained]
    loss = objective.loss(model, (x, y, distill))
    assert loss.item() == pytest.approx(per_token.mean().item(), rel=1e-4) and loss.item() > 0.01
    loss.backward()
    assert {n for n, p in model.named_parameters() if p.grad is not None} == \
           {n for n, p in model.named_parameters() if p.requires_grad}


def test_distill_records_need_an_adapter_and_no_packing(base, tmp_path):
    data = write_jsonl(tmp_path / "chat.jsonl", [{**r, "distill": True} for r in chat_records()])
    with pytest.raises(DataError, match="'distill' records: they learn the base model's distribution through an "
                                        "adapter, so they need method lora \\(got 'full'\\)"):
        finetune(run_config(tmp_path, base, data, method="full"), report=lambda *_: None)
    with pytest.raises(DataError, match="records with 'distill' cannot be packed"):
        finetune(run_config(tmp_path, base, data, method="lora", packing=True), report=lambda *_: None)
    result = finetune(run_config(tmp_path, base, data, method="lora", max_steps=3), report=lambda *_: None)
    assert result.losses[0][1] == pytest.approx(0.0, abs=1e-5)  # an untrained adapter is the base model

def test_dtype_auto_trains_in_bf16_only_where_the_machine_measured_it_faster(monkeypatch):
    from llmos.training import trainer

    cpu = torch.device("cpu")
    assert trainer.autocast_bf16("bfloat16", cpu) and not trainer.autocast_bf16("float32", cpu)
    for pays in (True, False):
        monkeypatch.setattr(trainer, "bf16_products", lambda pays=pays: {"bf16_pays": pays})
        assert trainer.autocast_bf16("auto", cpu) is pays


def test_lora_run_saves_a_peft_adapter_that_loads_by_its_own_path(base, tmp_path):
    data = write_jsonl(tmp_path / "chat.jsonl", chat_records())
    result = finetune(run_config(tmp_path, base, data, method="lora"), report=lambda *_: None)
    best = result.run_dir / "best"
    config = json.loads((best / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(base) and config["r"] == 4
    assert not (best / "model.safetensors").exists()
    first, last = result.losses[0][1], result.losses[-1][1]
    assert last < first
    tuned = AutoModelForCausalLM.from_pretrained(best)
    plain = AutoModelForCausalLM.from_pretrained(base)
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        assert (tuned(ids).logits - plain(ids).logits).abs().max() > 1e-4


@pytest.mark.parametrize("method", ["lora", "full"])
def test_an_interrupted_finetune_resumes_exactly(base, tmp_path, method):
    data = write_jsonl(tmp_path / "chat.jsonl", chat_records())
    straight = finetune(run_config(tmp_path / "a", base, data, method=method), report=lambda *_: None)
    finetune(run_config(tmp_path / "b", base, data, method=method, stop_at_step=3), report=lambda *_: None)
    resumed = finetune(run_config(tmp_path / "b", base, data, method=method, resume="auto"),
                       report=lambda *_: None)
    assert [round(v, 5) for _, v in resumed.losses] == [round(v, 5) for s, v in straight.losses if s > 3]


def test_freeze_trains_only_the_top_blocks(base, tmp_path):
    from safetensors.torch import load_file

    data = write_jsonl(tmp_path / "chat.jsonl", chat_records())
    result = finetune(run_config(tmp_path, base, data, method="freeze", freeze_layers=1), report=lambda *_: None)
    before, after = load_file(str(base / "model.safetensors")), load_file(str(result.run_dir / "last" /
                                                                            "model.safetensors"))
    assert torch.equal(before["transformer.embed.tokens.weight"], after["transformer.embed.tokens.weight"])
    assert torch.equal(before["transformer.blocks.0.attn.qkv.weight"], after["transformer.blocks.0.attn.qkv.weight"])
    assert not torch.equal(before["transformer.blocks.1.attn.qkv.weight"],
                           after["transformer.blocks.1.attn.qkv.weight"])


def test_a_depth_deeper_than_the_model_is_one_clear_error_before_it_loads(base, tmp_path, monkeypatch):
    import llmos.training.finetune as module

    def never(*_, **__):
        raise AssertionError("the model was loaded before its depth was checked")

    monkeypatch.setattr(module, "load_model", never)
    data = write_jsonl(tmp_path / "chat.jsonl", chat_records())
    for method, depth, message in (("freeze", {"freeze_layers": 5}, r"freeze_layers=5 does not fit a model of 2 "
                                                                     r"blocks; use 0\.\.2"),
                                   ("lora", {"train_top": 3}, r"train_top=3 does not fit a model of 2 blocks; "
                                                              r"use 1\.\.2")):
        with pytest.raises(FreezeError, match=message):
            finetune(run_config(tmp_path, base, data, method=method, **depth), report=lambda *_: None)


def labelled(tmp_path, n=40):
    rows = ["label\tsentence"] + [f"{'pos' if i % 2 else 'neg'}\t{'good cat' if i % 2 else 'bad dog'} {WORDS[i % 4]}"
                                  for i in range(n)]
    path = tmp_path / "train.tsv"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("method", ["lora", "full"])
def test_classification_finetune_learns_a_separable_task(base, tmp_path, method):
    data = labelled(tmp_path)
    result = finetune(run_config(tmp_path, base, data, method=method, max_steps=12, eval_every=12),
                      report=lambda *_: None)
    assert result.final_eval["val_accuracy"] == 1.0
    model = AutoModelForSequenceClassification.from_pretrained(result.run_dir / "best")
    tokenizer = AutoTokenizer.from_pretrained(result.run_dir / "best")
    assert model.config.label_names == ["neg", "pos"]
    with torch.no_grad():
        logits = model(torch.tensor([tokenizer.encode("good cat what is two plus two")])).logits
    assert model.config.label_name(int(logits.argmax())) == "pos"
    from llmos.evaluation.classification import classify

    top = classify(model, tokenizer, "good cat what is two plus two")
    ranked = classify(model, tokenizer, ["bad dog the cat sat on the mat"], top_k=None)[0]
    assert top["label"] == "pos" and top["score"] > 0.5
    assert [r["label"] for r in ranked] == ["neg", "pos"] and abs(sum(r["score"] for r in ranked) - 1) < 1e-5


def test_labels_outside_the_label_set_are_named(base, tmp_path):
    data = labelled(tmp_path)
    with pytest.raises(DataError, match=r"train\.tsv:2.*'neg'"):
        finetune(run_config(tmp_path, base, data, labels="positive,negative"), report=lambda *_: None)


def test_cli_finetune_then_merge_lora_gives_the_adapted_logits(base, tmp_path):
    data = write_jsonl(tmp_path / "chat.jsonl", chat_records())
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"base_model: {base}\ndata: {data}\nmethod: lora\nmax_steps: 3\nbatch_size: 4\n"
                      f"context: 64\nlr: 0.01\nout_dir: {tmp_path / 'run'}\nprogress: false\n")
    result = CliRunner().invoke(app, ["finetune", "--config", str(recipe), "--lora-r", "2"])
    assert result.exit_code == 0, result.output
    assert "lora: training" in result.output and "of" in result.output
    result = CliRunner().invoke(app, ["convert", str(tmp_path / "run" / "best"), str(tmp_path / "merged"),
                                      "--merge-lora", "--to", "llmos"])
    assert result.exit_code == 0, result.output
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    adapted = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "best")
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    with torch.no_grad():
        assert (adapted(ids).logits - merged(ids).logits).abs().max() < 1e-4


def test_cli_lora_targets_matching_nothing_is_one_line_and_exit_2(base, tmp_path):
    import subprocess
    import sys

    data = write_jsonl(tmp_path / "chat.jsonl", chat_records())
    proc = subprocess.run([sys.executable, "-m", "llmos.cli.main", "finetune", "--base-model", str(base),
                           "--data", str(data), "--lora-targets", "query_proj", "--out-dir", str(tmp_path / "r")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "query_proj" in lines[0] and "q_proj" in lines[0]


def test_lora_on_the_top_blocks_only_trains_adapters_there_alone(base, tmp_path):
    from safetensors.torch import load_file

    data = write_jsonl(tmp_path / "chat.jsonl", chat_records())
    result = finetune(run_config(tmp_path, base, data, method="lora", train_top=1), report=lambda *_: None)
    keys = load_file(result.run_dir / "last" / "adapter_model.safetensors")
    assert keys and all(".layers.1." in key for key in keys)  # the model has blocks 0 and 1
    assert result.losses[-1][1] < result.losses[0][1]
    tuned = AutoModelForCausalLM.from_pretrained(result.run_dir / "last")
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        assert (tuned(ids).logits - AutoModelForCausalLM.from_pretrained(base)(ids).logits).abs().max() > 1e-4
