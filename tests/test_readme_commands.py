"""Every ``python train.py`` line in README.md's code blocks, checked as written: the same check ``train.py``
runs before it imports TensorFlow (composition, the schema, group options, a sweep's every trial and its
extras), so a README command whose option was renamed or whose field was dropped fails here. Training itself
is the recipe tests' (tests/test_recipes.py and others train each recipe on a tiny budget); the ``--config-dir``
line is run with its files by tests/test_own_model.py."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from qatzoo.config import check_overrides
from qatzoo.errors import ConfigError
from qatzoo.extras import for_overrides
from qatzoo.sweep.check import check_sweep

REPO = Path(__file__).resolve().parents[1]


def _train_lines() -> list[str]:
    text = (REPO / "README.md").read_text()
    lines = []
    for body in re.findall(r"```\w*\n(.*?)```", text, re.S):
        for line in body.splitlines():
            found = re.search(r"(?:^|\s)python train\.py\b(.*)", line)
            if found and not line.lstrip().startswith("train.py "):  # the layout table's "train.py  the entry point"
                lines.append(found.group(1).split("  #")[0].split(" #")[0].strip())
    return lines


LINES = _train_lines()


def _check(args: list[str]) -> None:
    """What ``qatzoo.launch.cli`` checks before Hydra runs anything."""
    for_overrides(args)
    flags = [a for a in args if a.startswith("-")]
    rest = [a for a in args if not a.startswith("-")]
    if not flags:
        check_overrides(rest)
    else:
        assert set(flags) <= {"-m", "--multirun"}, args
        check_sweep(rest)


def test_the_readme_has_the_commands_this_file_checks():
    assert len(LINES) >= 15, LINES
    assert "recipe=attention_int8" in LINES and any(line.startswith("-m sweep=") for line in LINES)


@pytest.mark.parametrize("line", [line for line in LINES if "--help" not in line and "--config-dir" not in line])
def test_a_readme_train_command_is_a_valid_config(line):
    _check(shlex.split(line))


def test_the_check_refuses_what_a_stale_readme_line_would_hold():
    """The check can fail: the shapes a README line takes when the config moves on under it."""
    for stale in (
        "recipe=attention_int9",
        "recipe=mnist_cnn_int8 quant=w5a8",
        "recipe=mnist_cnn_int8 schedule.qat_epoch=1",
        "-m recipe=mnist_cnn_int8 schedule.qat_lrr=0.0001,0.0003",
        "-m sweep=cnn_qatt",
    ):
        with pytest.raises(ConfigError):
            _check(shlex.split(stale))


def test_train_help_runs_as_written(capsys):
    from qatzoo.launch import cli

    assert any("--help" in line for line in LINES)
    cli(["--help"])
    out = capsys.readouterr().out
    assert "schedule.qat_epochs" in out and "recipe" in out
