"""Files read back from a run directory are parsed with bounds: a config.yaml of nested YAML aliases (a few
hundred bytes that expand to 10^6 nodes), a too-deep or oversized one, and a Keras file whose config.json is a
zip bomb are refused in one line by every reader, before anything expands them (issue 21, item 1)."""

from __future__ import annotations

import time
import zipfile

import pytest

from qatzoo.artifacts import MAX_YAML_BYTES, parse_yaml, read_yaml

#: 10 ** 6 leaves in 342 bytes: each line holds ten aliases of the line before.
BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcde", "bcdef", strict=True)
)


def test_the_loader_reads_what_a_run_writes_and_refuses_aliases_depth_size_and_python_tags(tmp_path):
    from omegaconf import OmegaConf

    written = OmegaConf.to_yaml(
        OmegaConf.create({"lr": 1e-05, "wd": 0.0001, "when": "2024-01-01", "tags": ["a", "b"], "n": {"k": 3}})
    )
    assert parse_yaml(written) == OmegaConf.to_container(OmegaConf.create(written))  # read as OmegaConf reads it
    with pytest.raises(ValueError, match="a YAML alias"):
        parse_yaml(BOMB)
    with pytest.raises(ValueError, match="nested deeper than"):
        parse_yaml("a: " + "[" * 60 + "]" * 60)
    with pytest.raises(ValueError, match="not readable YAML"):
        parse_yaml("a: !!python/object/apply:os.system ['touch pwned']")
    big = tmp_path / "config.yaml"
    big.write_text("a: " + "x" * MAX_YAML_BYTES)
    with pytest.raises(ValueError, match="larger than"):
        read_yaml(big)
    for bad in ("a: [", "a: 1\na: 2", b"\xff\xfe"):
        with pytest.raises(ValueError) as error:
            parse_yaml(bad)
        assert "\n" not in str(error.value)


def _bomb_run(path):
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(BOMB)
    (path / "checkpoints").mkdir()  # an unfinished run: the resume scan reads its config
    return path


def test_a_sibling_runs_alias_bomb_is_skipped_at_once_by_the_resume_scan(tmp_path):
    from qatzoo.train.trainer import _saved_config_hash

    sibling = _bomb_run(tmp_path / "runs" / "old")
    start = time.perf_counter()
    saved, problem = _saved_config_hash(sibling)
    assert saved is None and "a YAML alias" in problem
    assert time.perf_counter() - start < 1.0  # OmegaConf.load took minutes on it


def test_every_reader_of_a_run_config_refuses_the_alias_bomb(tmp_path):
    from qatzoo import engine
    from qatzoo.errors import ConfigError
    from qatzoo.sweep.summary import collect
    from qatzoo.tools.sensitivity import _load_run
    from qatzoo.zoo.index import ZooError
    from qatzoo.zoo.publish import _config

    run = _bomb_run(tmp_path / "sweep" / "0")
    with pytest.raises(ZooError, match="config.yaml: a YAML alias"):
        _config(run)
    assert engine.of_run(run) == engine.DEFAULT  # unreadable: the command's own checks name it
    (trial,) = collect(tmp_path / "sweep")
    assert "a YAML alias" in trial["skipped"]
    _float_model(run / "model_float.keras")
    with pytest.raises(ConfigError, match="a YAML alias"):
        _load_run(run, None)


def _float_model(path):
    from qatzoo.keras import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.save(path)


def test_a_keras_file_whose_config_is_a_zip_bomb_is_refused_from_the_zip_directory(tmp_path):
    from qatzoo.errors import ConfigError
    from qatzoo.tools.sensitivity import MAX_MODEL_CONFIG_BYTES, load_float_model

    good = tmp_path / "good.keras"
    _float_model(good)
    assert load_float_model(good).count_params() == 10
    bomb = tmp_path / "bomb.keras"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as out:
        for item in src.infolist():
            if item.filename != "config.json":
                out.writestr(item, src.read(item))
        with out.open("config.json", "w") as member:  # 64 MiB of spaces: ~64 KiB on disk
            for _ in range(64):
                member.write(b" " * (1 << 20))
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(ConfigError, match=f"inflates to 67,108,864 bytes, more than {MAX_MODEL_CONFIG_BYTES:,}"):
        load_float_model(bomb)


def test_publish_reads_no_more_of_a_run_file_than_its_bound(tmp_path):
    from qatzoo.zoo.index import ZooError
    from qatzoo.zoo.publish import _config, read_regular

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("data: {}\n# " + "x" * MAX_YAML_BYTES)
    with pytest.raises(ZooError, match=f"config.yaml is larger than {MAX_YAML_BYTES:,} bytes"):
        _config(run)
    (run / "card.md").write_bytes(b"y" * 101)
    with pytest.raises(ZooError, match="larger than 100 bytes"):
        read_regular(run / "card.md", 100)
    assert read_regular(run / "card.md", 101) == b"y" * 101
