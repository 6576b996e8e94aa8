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
            if "data=arrays" in overrides or "data=series" in overrides:  # a user's own file: it must exist
                overrides += [f"data.path={__file__}", *(["data.column=x"] if "data=series" in overrides else [])]
            if "data=tfds" in overrides:  # a dataset the user names
                overrides.append("data.builder=mnist5k")
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


def test_an_architecture_and_its_data_share_a_task(compose_cfg):
    _refused(
        compose_cfg("arch.task=forecast"),
        "arch=mnist_cnn is a forecast model but data=mnist_5k is a classification dataset; pick a forecast dataset",
    )


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("my.models.resnet", "arch._target_: cannot import my.models: no module named 'my'"),
        (
            "qatzoo.models.mnist_cnn.resnet",
            "arch._target_: module qatzoo.models.mnist_cnn defines no function 'resnet'",
        ),
        ("resnet", "arch._target_: expected an importable package.module.function, got 'resnet'"),
    ],
)
def test_a_factory_that_cannot_be_found_is_one_line(compose_cfg, target, message):
    _refused(compose_cfg(f"arch._target_={target}"), message)


def test_a_users_factory_is_checked_against_its_signature_without_importing_it(compose_cfg, tmp_path, monkeypatch):
    """A factory in the user's own module: its keyword arguments are the arch fields, read from the source
    (the module would fail if it were imported)."""
    import sys

    (tmp_path / "user_models.py").write_text(
        "raise RuntimeError('imported')\n"
        "def tiny(*, input_shape, num_outputs, width: int, depth: int = 2, act: Literal['relu', 'tanh'] = 'relu'):\n"
        "    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    base = ("arch._target_=user_models.tiny", "~arch.filters", "~arch.dense_units", "~arch.dropout")
    assert validate(compose_cfg(*base, "++arch.width=8")).arch.arguments == {"width": 8}
    assert "user_models" not in sys.modules
    _refused(
        compose_cfg(*base),
        "arch.width: missing; user_models.tiny takes it without a default (an integer)",
    )
    _refused(
        compose_cfg(*base, "++arch.width=8", "++arch.widht=8"),
        "arch.widht: unknown field; did you mean arch.width?; arch fields are: act, depth, name, task, width",
    )
    _refused(
        compose_cfg(*base, "++arch.width=8", "++arch.act=gelu"), "arch.act: expected one of relu, tanh, got 'gelu'"
    )


def test_nested_fields_are_named_with_their_path(compose_cfg):
    _refused(
        compose_cfg("++data.splits.valid=validation"),
        ("data.splits.valid: unknown field; did you mean data.splits.val?; data.splits fields are: test, train, val"),
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


def test_an_unknown_field_suggests_the_group_that_has_it_or_a_close_spelling(compose_cfg):
    from qatzoo.config import check_overrides

    for given, hint in (
        ("seed=1", "seed: unknown field; did you mean trainer.seed?;"),
        ("lr=0.01", "lr: unknown field; did you mean schedule.lr?;"),
        ("trainer.sed=3", "trainer.sed: unknown field; did you mean trainer.seed?;"),
        ("arch.filtres=8", "arch.filtres: unknown field; did you mean arch.filters?;"),
    ):
        with pytest.raises(ConfigError) as error:
            check_overrides([given])
        assert str(error.value).startswith(hint), str(error.value)
    with pytest.raises(ConfigError, match=r"^foo: unknown field; top-level fields are: "):
        check_overrides(["foo=1"])
