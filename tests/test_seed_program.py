"""The seed program, unchanged but for its import line, runs on an LLMOS checkpoint and prints text."""

import subprocess
import sys
import textwrap

import torch

from llmos.config import ModelConfig
from llmos.generation_config import GenerationConfig
from llmos.model import CausalLM
from llmos.tokenizer import train_tokenizer

CORPUS = [
    "A robot who dreams of becoming a writer sits by the window every night.",
    "The short story begins when the robot finds an old typewriter in the attic.",
    "Writers write; robots compute. This robot wanted to do both, and it did.",
] * 20

SEED_PROGRAM = textwrap.dedent(
    """
    import sys
    path = sys.argv[1]
    from llmos import AutoTokenizer, AutoModelForCausalLM
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    input_ids = tokenizer.encode("Write a short story about a robot who dreams of becoming a writer.", return_tensors="pt")
    output_ids = model.generate(input_ids, max_length=500, do_sample=True, top_k=50, top_p=0.95, num_return_sequences=1)
    print(tokenizer.decode(output_ids[0], skip_special_tokens=True))
    """
)


def test_seed_program_runs_on_an_llmos_checkpoint_and_prints_text(tmp_path):
    tokenizer = train_tokenizer(CORPUS, kind="bpe", vocab_size=300)
    config = ModelConfig.from_preset("micro", vocab_size=len(tokenizer), max_seq_len=512,
                                     eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    CausalLM(config).save_pretrained(tmp_path / "ckpt", tokenizer=tokenizer)
    # The checkpoint ships its decoding defaults, as real ones do: a random model samples EOS as its
    # first token about once in a few hundred runs, and the unseeded program would then print no text.
    GenerationConfig(min_new_tokens=16).save_pretrained(tmp_path / "ckpt")
    script = tmp_path / "seed.py"
    script.write_text(SEED_PROGRAM)
    result = subprocess.run([sys.executable, str(script), str(tmp_path / "ckpt")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Write a short story about a robot who dreams of becoming a writer.")
    assert len(result.stdout.strip()) > len("Write a short story about a robot who dreams of becoming a writer.")
