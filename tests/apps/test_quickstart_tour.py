"""`llmos quickstart` (the model tour): the robot-writer program, then one example of each task
pipeline, then the next commands; on a tiny model here (the real run is `make quickstart`)."""

from __future__ import annotations

import pytest

from llmos.apps.pipelines import TASKS
from llmos.cli.quickstart import TASK_EXAMPLES

pytest.importorskip("llguidance")


def quick_to_close_strings(model, tokenizer):
    """The tiny model with tokens holding a quote favoured, so its JSON strings end soon."""
    import copy

    import torch

    from llmos.model import CausalLM

    config = copy.deepcopy(model.config)
    config.lm_head_bias = True
    favoured = CausalLM(config).eval()
    favoured.load_state_dict(model.state_dict(), strict=False)
    with torch.no_grad():
        favoured.lm_head.bias.zero_()
        for token_id in range(len(tokenizer)):
            if '"' in tokenizer.decode([token_id]):
                favoured.lm_head.bias[token_id] = 2.0
    return favoured


def test_the_tour_runs_the_story_every_task_and_prints_the_next_commands(tiny_chat_model, tmp_path, llmos_cli):
    model, tokenizer = tiny_chat_model
    quick_to_close_strings(model, tokenizer).save_pretrained(tmp_path / "tiny", tokenizer=tokenizer)
    shown = {task for task, _, _ in TASK_EXAMPLES} | {"text-generation"}  # the robot writer is text-generation
    assert shown == set(TASKS)
    code, out, err = llmos_cli("quickstart", "--model", tmp_path / "tiny", "--story-tokens", "5",
                                 "--max-new-tokens", "64")
    assert code == 0, err
    assert "Write a short story about a robot who dreams of becoming a writer." in out
    for task, _, _ in TASK_EXAMPLES:
        assert f"{task}(" in out, task
    assert "llmos quickstart --train" in out and "llmos serve smollm2" in out
