"""`llmos generate DIR --prompt ...` streams text; bad flags are one line on stderr and exit 2."""

import subprocess
import sys

import pytest
import torch

from llmos.config import ModelConfig
from llmos.generation import GenerationConfig
from llmos.model import CausalLM
from llmos.tokenizer import train_tokenizer


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    pytest.importorskip("llmos.auto")
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
