"""A phase's checkpoints carry its phase and config hash, and a fit backup its sha256 (issue 21, item 5): a
checkpoint of the other phase or of another config copied into a run, or a backup with a flipped bit, is
refused in one line and the phase falls back (an older checkpoint, or afresh) instead of resuming silently."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

from qatzoo.data.splits import Splits
from qatzoo.train.loop import Phase


class Logger:
    def __init__(self, die_at: int | None = None):
        self.epochs, self.die_at = [], die_at

    def log(self, phase, epoch, metrics):
        self.epochs.append(epoch)
        if epoch == self.die_at:
            raise KeyboardInterrupt(f"killed at epoch {epoch}")


def _data() -> Splits:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 4)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5, 0.0], np.float32))[:, None]
    return Splits("toy", "forecast", x[:64], y[:64], x[64:80], y[64:80], x[80:], y[80:], num_outputs=1)


def _model():
    from qatzoo.keras import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])


PHASE = Phase(name="float", epochs=3, lr=1e-2, batch_size=16, seed=0, verbose=0, config_hash="a" * 64)


def test_a_tape_checkpoint_of_the_other_phase_or_config_is_refused_and_the_phase_starts_afresh(tmp_path, capsys):
    from qatzoo.train.loop import run_phase

    data = _data()
    with pytest.raises(KeyboardInterrupt):
        run_phase(_model(), data, PHASE, tmp_path, Logger(die_at=2))  # float checkpoints at steps 4 and 8
    for other, why in (
        (dataclasses.replace(PHASE, name="qat"), "it was written by the 'float' phase"),
        (dataclasses.replace(PHASE, config_hash="b" * 64), "it was written by a run of another config (aaaaaaaaaaaa)"),
    ):
        work = tmp_path / other.tag.replace(":", "-")
        shutil.copytree(tmp_path / "float", work / other.name)  # copied in by mistake
        capsys.readouterr()
        result = run_phase(_model(), data, other, work, Logger())
        out = capsys.readouterr().out
        assert result["resumed_from_step"] == 0, out  # not a partial, silent restore
        assert f"refusing the checkpoint {work / other.name / 'ckpt-8'}: {why}" in out
        assert f"{other.name} phase: no readable checkpoint; starting this phase afresh" in out
    # Its own phase resumes from the same files.
    capsys.readouterr()
    assert run_phase(_model(), data, PHASE, tmp_path, Logger())["resumed_from_step"] == 8
    assert "refusing" not in capsys.readouterr().out


def test_a_fit_backup_with_a_flipped_bit_or_another_phases_seal_is_refused(tmp_path, capsys):
    from qatzoo.quant.schemes import engine_module
    from qatzoo.train.fit import SEAL, run_phase_fit

    data = _data()
    clean = _model()
    run_phase_fit(clean, data, PHASE, tmp_path / "clean", Logger())

    def killed(where):
        with pytest.raises(KeyboardInterrupt):
            run_phase_fit(_model(), data, PHASE, where, Logger(die_at=2))
        return engine_module().last_backup(where / "float-fit")

    backup = killed(tmp_path / "resumed")  # untouched: resumes at epoch 2
    assert (tmp_path / "resumed" / "float-fit" / SEAL).is_file()
    resumed = _model()
    assert run_phase_fit(resumed, data, PHASE, tmp_path / "resumed", Logger())["resumed_from_step"] == 4
    assert all(np.array_equal(a, b) for a, b in zip(clean.get_weights(), resumed.get_weights(), strict=True))

    backup = killed(tmp_path / "flipped")
    if backup.endswith(".h5"):  # Keras 3: one HDF5 file, no checksums of its own
        _flip_a_data_bit(backup)
        capsys.readouterr()
        afresh = _model()
        assert run_phase_fit(afresh, data, PHASE, tmp_path / "flipped", Logger())["resumed_from_step"] == 0
        assert "its sha256 differs from the one sealed when it was written" in capsys.readouterr().out
        assert all(np.array_equal(a, b) for a, b in zip(clean.get_weights(), afresh.get_weights(), strict=True))

    killed(tmp_path / "other")
    capsys.readouterr()
    other = dataclasses.replace(PHASE, config_hash="c" * 64)
    assert run_phase_fit(_model(), data, other, tmp_path / "other", Logger())["resumed_from_step"] == 0
    assert "it was written by a run of another config" in capsys.readouterr().out


def _flip_a_data_bit(path: str) -> None:
    """Flip one bit inside the first weight tensor's stored data (not HDF5's own structures, which it checks)."""
    import h5py

    offsets = []
    with h5py.File(path, "r") as weights:
        weights.visititems(
            lambda _, item: (
                offsets.append(item.id.get_offset())
                if isinstance(item, h5py.Dataset) and item.size > 4 and item.id.get_offset() is not None
                else None
            )
        )
    with open(path, "r+b") as f:
        f.seek(offsets[0] + 1)
        byte = f.read(1)
        f.seek(offsets[0] + 1)
        f.write(bytes([byte[0] ^ 0x01]))


def test_a_checkpoint_list_that_is_not_text_is_set_aside_and_the_checkpoints_on_disk_are_used(tmp_path, capsys):
    from qatzoo.train.loop import run_phase

    data = _data()
    with pytest.raises(KeyboardInterrupt):
        run_phase(_model(), data, PHASE, tmp_path, Logger(die_at=2))
    (tmp_path / "float" / "checkpoint").write_bytes(b"\x00\xff\xfe not text \x80")
    capsys.readouterr()
    assert run_phase(_model(), data, PHASE, tmp_path, Logger())["resumed_from_step"] == 8  # was a traceback
    out = capsys.readouterr().out
    assert "the checkpoint list" in out and "is unreadable" in out and "using the 2 checkpoint(s) on disk" in out
    assert (tmp_path / "float" / "checkpoint.unreadable").is_file()


def test_a_fit_backup_whose_metadata_changed_is_refused(tmp_path, capsys):
    from qatzoo.quant.schemes import engine_module
    from qatzoo.train.fit import run_phase_fit

    data = _data()
    with pytest.raises(KeyboardInterrupt):
        run_phase_fit(_model(), data, PHASE, tmp_path, Logger(die_at=2))
    files = [
        p for p in (tmp_path / "float-fit").iterdir() if p.is_file() and p.suffix == ".json" and p.name != "seal.json"
    ]
    if not files:
        pytest.skip(f"this engine's backup ({engine_module().__name__}) keeps no metadata file beside its weights")
    files[0].write_bytes(b"\xff not json")
    capsys.readouterr()
    assert run_phase_fit(_model(), data, PHASE, tmp_path, Logger())["resumed_from_step"] == 0
    assert "a file of it changed on disk" in capsys.readouterr().out
