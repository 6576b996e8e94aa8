"""``qatzoo sensitivity`` on a run dir whose files are damaged or hostile: one line, exit 2, nothing run or written.

A run directory is data: its model_float.keras is loaded with Keras's safe mode and may only name Keras's own
objects or the project's layers; its config.yaml may only name the project's own data and quant builders.
No training here: the run dir is a composed config.yaml next to a small real model.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from omegaconf import OmegaConf


@pytest.fixture(scope="module")
def good_model(tmp_path_factory) -> Path:
    """A real .keras file with the project's custom layers (the small transformer, tiny)."""
    from qatzoo.models.small_transformer import small_transformer

    path = tmp_path_factory.mktemp("model") / "model_float.keras"
    small_transformer(input_shape=(28, 28, 1), num_outputs=10, dim=8, depth=1, num_heads=2, mlp_dim=8).save(path)
    return path


@pytest.fixture
def run_dir(compose_cfg, tmp_path) -> Path:
    """A run dir as the trainer leaves it, minus the training: the resolved config.yaml."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(OmegaConf.to_yaml(compose_cfg("recipe=transformer_int8"), resolve=True))
    return run


def _sensitivity_fails(run: Path, capsys, expected: str) -> str:
    """Run the command; assert exit 2, one 'error: ' line containing ``expected``, and no output files."""
    from qatzoo.cli import main

    assert main(["sensitivity", str(run)]) == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], captured.err
    assert "Traceback" not in captured.out + captured.err
    assert not list(run.glob("sensitivity.*"))
    return lines[0]


def test_the_real_model_loads_with_the_projects_layers(good_model):
    """The guard lets a genuine model of the project through (custom layers included)."""
    from qatzoo.tools.sensitivity import load_float_model

    model = load_float_model(good_model)
    assert {"Attention", "LayerNorm", "PositionEmbedding"} <= {type(layer).__name__ for layer in model.layers}


CORRUPT = {
    "empty": lambda good: b"",
    "truncated": lambda good: good[: len(good) // 2],
    "random-bytes": lambda good: bytes(range(256)) * 64,
    "weights-cut-short": None,  # a valid zip whose weights file is truncated
}


@pytest.mark.parametrize("damage", list(CORRUPT))
def test_corrupt_model_file_is_one_line_naming_the_file(run_dir, good_model, capsys, damage):
    target = run_dir / "model_float.keras"
    if damage == "weights-cut-short":
        with zipfile.ZipFile(good_model) as source, zipfile.ZipFile(target, "w") as out:
            for name in source.namelist():
                data = source.read(name)
                out.writestr(name, data[: len(data) // 3] if name.endswith(".h5") else data)
    else:
        target.write_bytes(CORRUPT[damage](good_model.read_bytes()))
    _sensitivity_fails(run_dir, capsys, f"{target}: ")


def _rewrite_config(source: Path, target: Path, change) -> None:
    """Copy a .keras file with its config.json changed by ``change(config)``."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as out:
        for name in src.namelist():
            data = src.read(name)
            if name == "config.json":
                config = json.loads(data)
                change(config)
                data = json.dumps(config).encode()
            out.writestr(name, data)


def test_model_naming_a_foreign_module_is_refused_before_it_is_imported(run_dir, good_model, capsys, monkeypatch):
    """Keras would import any module a .keras file names; the file is refused and the module never runs."""
    import sys

    marker = run_dir / "imported"
    plugin = run_dir.parent / "plugin"
    plugin.mkdir()
    (plugin / "qatzoo_test_planted.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass Planted:\n    pass\n")
    monkeypatch.syspath_prepend(str(plugin))

    def plant(config):  # the model itself: Keras imports the module it names (verified with tf_keras 2.21)
        config.update(module="qatzoo_test_planted", class_name="Planted", registered_name=None)

    _rewrite_config(good_model, run_dir / "model_float.keras", plant)
    line = _sensitivity_fails(run_dir, capsys, "names qatzoo_test_planted.Planted")
    assert "model_float.keras" in line
    assert not marker.exists() and "qatzoo_test_planted" not in sys.modules


def test_lambda_layer_is_refused_by_safe_mode(run_dir, capsys):
    """A Lambda layer carries Python bytecode; safe mode refuses it (one line, not a traceback)."""
    from qatzoo.keras import keras

    inputs = keras.Input((28, 28, 1))
    outputs = keras.layers.Dense(10)(keras.layers.Lambda(lambda x: keras.layers.Flatten()(x) * 2)(inputs))
    keras.Model(inputs, outputs).save(run_dir / "model_float.keras")
    _sensitivity_fails(run_dir, capsys, "model_float.keras: cannot load the float model (ValueError: Requested the")


def test_config_naming_a_foreign_data_builder_is_refused(run_dir, good_model, capsys):
    """config.yaml is data too: its data._target_ must be one of the project's own builders."""
    (run_dir / "model_float.keras").write_bytes(good_model.read_bytes())
    cfg = OmegaConf.load(run_dir / "config.yaml")
    cfg.data._target_ = "os.system"
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    _sensitivity_fails(run_dir, capsys, "data._target_ 'os.system' is not one of the project's builders")

    cfg.data._target_ = "qatzoo.data.load.image_classification"
    cfg.data.splits = {"_target_": "os.system", "_args_": ["true"]}
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    _sensitivity_fails(run_dir, capsys, "data.splits._target_ is not allowed")


def test_unparsable_config_yaml_is_one_line(run_dir, good_model, capsys):
    (run_dir / "model_float.keras").write_bytes(good_model.read_bytes())
    (run_dir / "config.yaml").write_text("data: [unclosed\n")
    _sensitivity_fails(run_dir, capsys, "config.yaml: not a run's config")
