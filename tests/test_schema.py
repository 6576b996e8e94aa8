"""The config schema: every group option fits it, and what it refuses reads as one line naming the field."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf, open_dict

from qatzoo.config import CONF_DIR, ConfigError, group_options, validate

GROUPS = ("arch", "data", "quant", "schedule", "trainer", "logger")


def _task(group: str, option: str) -> str:
    return OmegaConf.load(CONF_DIR / group / f"{option}.yaml").task


def test_every_group_option_fits_the_schema(compose_cfg):
    """Found by discovery: a new option without a schema model (or with a field it lacks) fails here."""
    for group in GROUPS:
        for option in group_options(group):
            overrides = [f"{group}={option}"]
            if group in ("arch", "data"):  # pair it with an option of the other one for the same task
                other = "data" if group == "arch" else "arch"
                partner = next(o for o in group_options(other) if _task(other, o) == _task(group, option))
                overrides.append(f"{other}={partner}")
            validate(compose_cfg(*overrides))


def _refused(cfg, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        validate(cfg)
    assert str(error.value) == message
    assert "\n" not in str(error.value)


def test_fields_are_per_architecture(compose_cfg):
    cfg = compose_cfg("arch=ts_attention", "data=co2_weekly")
    with open_dict(cfg):
        cfg.arch.filters = 8
    _refused(
        cfg,
        "arch.filters: unknown field; arch fields are: attention, depth, dim, ffn_activation, mlp_dim, name, norm, num_heads, patch, skip, symmetric_kv, task",
    )


def test_an_architecture_keeps_its_task(compose_cfg):
    _refused(compose_cfg("arch.task=forecast"), "arch.task: expected one of classification, got 'forecast'")


def test_a_builder_no_model_knows_is_refused_with_the_known_ones(compose_cfg):
    cfg = compose_cfg("arch._target_=my.models.resnet")
    with pytest.raises(ConfigError, match=r"^arch._target_: expected one of qatzoo.models.mnist_cnn.mnist_cnn, "):
        validate(cfg)


def test_nested_fields_are_named_with_their_path(compose_cfg):
    _refused(
        compose_cfg("++data.splits.valid=validation"),
        ("data.splits.valid: unknown field; data.splits fields are: test, train, val"),
    )
    _refused(
        compose_cfg("quant.rules=[{match: Dense, weight_bits: 4, bits: 4}]"),
        "quant.rules[0].bits: unknown field; quant.rules[0] fields are: activation_bits, match, weight_bits",
    )


def test_a_missing_field_is_named(compose_cfg):
    cfg = compose_cfg()
    with open_dict(cfg):
        del cfg.trainer.keep_checkpoints
    _refused(cfg, "trainer.keep_checkpoints: missing; expected an integer >= 1")
    with open_dict(cfg):
        del cfg.arch
    _refused(cfg, "arch: missing config group; pick one with arch=OPTION")


def test_optional_loggers_have_their_own_fields(compose_cfg):
    _refused(compose_cfg("logger=wandb", "logger.init_timeout=0"), "logger.init_timeout: expected a number > 0, got 0")
    _refused(compose_cfg("logger=csv", "++logger.project=x"), "logger.project: unknown field; logger fields are: none")


def test_the_new_trainer_fields_take_their_values(compose_cfg):
    validate(compose_cfg("trainer.keep_checkpoints=5", "trainer.epoch_weights=true"))
    _refused(compose_cfg("trainer.keep_checkpoints=2.5"), "trainer.keep_checkpoints: expected an integer >= 1, got 2.5")
