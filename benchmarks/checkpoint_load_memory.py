"""Peak memory and time of loading a ~100M-parameter checkpoint: LLMOS's meta-device +
memory-mapped loader against the naive way (build an initialised model, read the whole
safetensors file, load_state_dict copying into it) and transformers' from_pretrained of
the same weights exported to HF format.

Each loader runs in its own fresh process; the figure is the process's peak RSS
(resource.getrusage ru_maxrss) minus its RSS after imports. Run:

    .venv/bin/python benchmarks/checkpoint_load_memory.py [--preset llama-100m]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LOADERS = ("llmos", "naive", "transformers")


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def child(loader: str, directory: str, hf_directory: str) -> None:
    import torch

    torch.set_num_threads(2)
    from safetensors.torch import load_file

    from llmos import AutoModelForCausalLM
    from llmos.checkpoint import read_config
    from llmos.model import CausalLM

    if loader == "transformers":
        import transformers  # noqa: F401  (import cost outside the measurement)
    base = _rss_mb()
    start = time.perf_counter()
    if loader == "llmos":
        model = AutoModelForCausalLM.from_pretrained(directory)
    elif loader == "naive":
        config, _, _ = read_config(directory)
        model = CausalLM(config)
        model.load_state_dict(load_file(str(Path(directory) / "model.safetensors")), strict=False)
        model.tie_weights()
    else:
        model = transformers.AutoModelForCausalLM.from_pretrained(hf_directory, dtype=torch.float32)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    weights = sum(p.numel() * p.element_size() for p in {id(p): p for p in model.parameters()}.values())
    print(json.dumps({"loader": loader, "peak_mb": peak - base, "seconds": seconds,
                      "weights_mb": weights / 2**20}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="llama-100m")
    parser.add_argument("--child", nargs=3)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    from llmos.checkpoint import export_hf
    from llmos.config import ModelConfig
    from llmos.model import CausalLM

    with tempfile.TemporaryDirectory() as tmp:
        model = CausalLM(ModelConfig.from_preset(args.preset))
        n_params = model.num_parameters()
        model.save_pretrained(Path(tmp) / "ckpt")
        export_hf(model, Path(tmp) / "hf")
        del model
        rows = []
        for loader in LOADERS:
            out = subprocess.run([sys.executable, __file__, "--child", loader, str(Path(tmp) / "ckpt"),
                                  str(Path(tmp) / "hf")], capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"preset {args.preset}: {n_params / 1e6:.1f}M parameters, "
          f"{rows[0]['weights_mb']:.0f} MB of fp32 weights")
    print("what ran in this run: every loader, each in a fresh subprocess, on the checkpoint written above")
    print(f"{'loader':<14}{'peak RSS over imports (MB)':>28}{'x weights':>11}{'seconds':>9}")
    for row in rows:
        print(f"{row['loader']:<14}{row['peak_mb']:>28.0f}{row['peak_mb'] / row['weights_mb']:>11.2f}"
              f"{row['seconds']:>9.2f}")
    ours = rows[0]
    for row in rows[1:]:
        print(f"peak memory ratio {row['loader']}/llmos: {row['peak_mb'] / ours['peak_mb']:.2f}x; "
              f"time ratio: {row['seconds'] / ours['seconds']:.2f}x")


if __name__ == "__main__":
    main()
