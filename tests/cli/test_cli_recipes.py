"""A recipe with a YAML syntax error is one line naming the file, the problem and its line, and exit 2,
for `llmos pretrain` and `llmos finetune` alike, and for `llmos run`'s workflow files (one helper), before
anything loads."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("verb", [["pretrain", "--config"], ["finetune", "--config"], ["run"]])
def test_a_recipe_with_a_yaml_syntax_error_is_one_line_and_exit_2(llmos_cli, tmp_path, verb):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("max_steps: 10\nmodel_overrides: {d_model: 64\nlr: 0.001\n")
    code, out, err = llmos_cli(*verb, recipe)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith(f"error: {recipe}: not valid YAML: ") and "line 3" in err and "Traceback" not in err


@pytest.mark.parametrize("verb", ["pretrain", "finetune"])
def test_a_recipe_that_is_not_text_is_one_line_and_exit_2(llmos_cli, tmp_path, verb):
    recipe = tmp_path / "weights.yaml"
    recipe.write_bytes(b"\x80\x81\xfe" * 10)
    code, _, err = llmos_cli(verb, "--config", recipe)
    assert code == 2 and err.count("\n") == 1 and "not UTF-8" in err
