"""TrainConfig <-> YAML recipes, CLI overrides, and the errors a bad recipe gets."""

from __future__ import annotations

import pytest

from llmos.training.recipe import RecipeError, TrainConfig


def test_recipe_round_trips_through_yaml(tmp_path):
    config = TrainConfig(max_steps=17, lr=2e-3, model_overrides={"d_model": 32}, compile=True)
    config.save_yaml(tmp_path / "r.yaml")
    assert TrainConfig.from_yaml(tmp_path / "r.yaml") == config


def test_recipe_with_unknown_keys_lists_the_valid_ones(tmp_path):
    (tmp_path / "r.yaml").write_text("max_steps: 3\nlearning_rate: 0.1\n")
    with pytest.raises(RecipeError) as info:
        TrainConfig.from_yaml(tmp_path / "r.yaml")
    message = str(info.value)
    assert "learning_rate" in message and "'lr'" in message and "'max_steps'" in message


def test_cli_overrides_replace_only_given_fields(tmp_path):
    (tmp_path / "r.yaml").write_text("max_steps: 50\nlr: 0.01\n")
    config = TrainConfig.from_yaml(tmp_path / "r.yaml").with_overrides(
        {"max_steps": 100, "lr": None, "model_overrides": '{"n_layers": 3}'}
    )
    assert config.max_steps == 100 and config.lr == 0.01
    assert config.model_overrides == {"n_layers": 3}


@pytest.mark.parametrize("field,value", [("objective", "gan"), ("dtype", "fp8"), ("batch_size", 0),
                                         ("min_lr", 1.0)])
def test_invalid_values_are_rejected_with_the_field_named(field, value):
    with pytest.raises(RecipeError, match=field):
        TrainConfig.from_dict({field: value})


def test_shipped_recipes_load():
    from pathlib import Path

    recipes = sorted((Path(__file__).parents[2] / "recipes").glob("*.yaml"))
    assert recipes, "recipes/*.yaml should ship with the repository"
    from llmos.apps.teach_tools_recipe import TeachToolsConfig
    from llmos.training.finetune_recipe import FinetuneConfig

    for path in recipes:
        kind = FinetuneConfig if path.name.startswith("finetune") else TeachToolsConfig \
            if path.name.startswith("teach-tools") else TrainConfig
        kind.from_yaml(path)
