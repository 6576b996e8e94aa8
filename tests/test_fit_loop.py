"""The Model.fit loop (qatzoo/train/fit.py) trains like the tape loop, resumes at epoch boundaries
(QAT models included) and turns a NaN loss into one clear TrainingError."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

from qatzoo.quant.schemes import engine_module

MNIST_5K = {"train": "train", "val": "validation", "test": "test"}


class RecordingLogger:
    """The logger interface; remembers every row, and can die (like a killed run) at one epoch."""

    def __init__(self, die_at: int | None = None):
        self.rows, self.die_at = [], die_at

    def log(self, phase, epoch, metrics):
        self.rows.append((phase, epoch, dict(metrics)))
        if epoch == self.die_at:
            raise KeyboardInterrupt(f"killed after the h5 of epoch {epoch}, before its backup")


@pytest.fixture(scope="module")
def data(data_dir):
    from qatzoo.data.load import image_classification

    return image_classification(name="mnist_5k", builder="mnist5k", data_dir=data_dir, splits=MNIST_5K)


def _model(data, seed=0, qat=False):
    """A fresh mnist_cnn (QAT-wrapped if asked), seeded as the trainer does."""
    import tensorflow as tf

    from qatzoo.keras import keras
    from qatzoo.models.mnist_cnn import mnist_cnn

    tf.config.experimental.enable_op_determinism()
    engine_module().prepare_seeding()
    keras.utils.set_random_seed(seed)
    model = mnist_cnn(input_shape=data.input_shape, num_outputs=data.num_outputs)
    if qat:
        from qatzoo.quant.schemes import scheme

        keras.utils.set_random_seed(seed + 1)
        model = scheme("int8", qat=True, int8=True).quantize(model, data.representative(64, seed))
    return model


def _weights(stem: str) -> str:
    """The file name ``save_weights`` gives ``<stem>.h5`` on this process's engine (Keras 3: ``.weights.h5``)."""
    from pathlib import Path

    from qatzoo.quant.schemes import engine_module

    return engine_module().weights_file(Path(f"{stem}.h5")).name


def _phase(name="float", epochs=2, lr=1e-3, **kept):
    """A phase of mnist_5k batches; it keeps each epoch's weights (``<phase>-NNN.h5``) unless told otherwise."""
    from qatzoo.train.loop import Phase

    return Phase(name=name, epochs=epochs, lr=lr, batch_size=64, seed=0, verbose=0, **{"epoch_weights": True, **kept})


@pytest.mark.slow
def test_fit_trains_like_the_tape_loop(data, tmp_path):
    from qatzoo.train.fit import run_phase_fit
    from qatzoo.train.loop import run_phase

    phase = _phase(epochs=2)
    tape_log, fit_log = RecordingLogger(), RecordingLogger()
    tape = run_phase(_model(data), data, phase, tmp_path / "tape", tape_log)
    fit_model = _model(data)
    fit = run_phase_fit(fit_model, data, phase, tmp_path / "fit", fit_log)

    assert fit == tape == {"resumed_from_step": 0, "steps": 2 * 55}
    assert [(p, e, set(m)) for p, e, m in fit_log.rows] == [
        ("float", 1, {"loss", "val_accuracy"}),
        ("float", 2, {"loss", "val_accuracy"}),
    ]
    for (_, _, a), (_, _, b) in zip(tape_log.rows, fit_log.rows, strict=True):
        assert abs(a["val_accuracy"] - b["val_accuracy"]) <= 3.0  # percentage points
        assert b["loss"] == pytest.approx(a["loss"], rel=0.02)  # fit: batch-size-weighted epoch mean
    assert fit_log.rows[1][2]["loss"] < fit_log.rows[0][2]["loss"]
    assert fit_log.rows[-1][2]["val_accuracy"] > 80.0
    assert [p.name for p in sorted((tmp_path / "fit").iterdir())] == [
        _weights("float-001"),
        _weights("float-002"),
    ]  # backup gone

    # A finished phase is not trained again: its last weights are loaded.
    again_model, again_log = _model(data, seed=5), RecordingLogger()
    assert run_phase_fit(again_model, data, phase, tmp_path / "fit", again_log) == {
        "resumed_from_step": 110,
        "steps": 110,
    }
    assert not again_log.rows
    assert all(np.array_equal(a, b) for a, b in zip(fit_model.get_weights(), again_model.get_weights(), strict=True))


@pytest.mark.slow
def test_fit_resumes_a_killed_qat_phase_at_the_epoch_boundary(data, tmp_path):
    from qatzoo.train.fit import run_phase_fit

    phase = _phase(name="qat", epochs=3, lr=1e-4)
    clean = _model(data, qat=True)
    run_phase_fit(clean, data, phase, tmp_path / "clean", RecordingLogger())

    with pytest.raises(KeyboardInterrupt):
        run_phase_fit(_model(data, qat=True), data, phase, tmp_path / "killed", RecordingLogger(die_at=2))
    assert engine_module().last_backup(tmp_path / "killed" / "qat-fit")  # epoch 1 backed up

    resumed, log = _model(data, qat=True), RecordingLogger()
    result = run_phase_fit(resumed, data, phase, tmp_path / "killed", log)
    assert result == {"resumed_from_step": 55, "steps": 165}
    assert [e for _, e, _ in log.rows] == [2, 3]
    # Weights, quantizer ranges, Adam state, step count and dropout generators all came back.
    assert all(np.array_equal(a, b) for a, b in zip(clean.get_weights(), resumed.get_weights(), strict=True))
    assert not (tmp_path / "killed" / "qat-fit").exists()


@pytest.mark.slow
def test_a_non_finite_loss_raises_the_tape_loops_one_line_training_error(data, tmp_path):
    from qatzoo.train.fit import run_phase_fit
    from qatzoo.train.loop import TrainingError, run_phase

    phase = _phase(epochs=1, lr=1e8)  # Adam moves every weight by ~lr: the loss blows up within steps
    errors, logs = [], []
    for name, run in (("tape", run_phase), ("fit", run_phase_fit)):
        log = RecordingLogger()
        with pytest.raises(TrainingError) as error:
            run(_model(data), data, phase, tmp_path / name, log)
        errors.append(str(error.value))
        logs.append(log.rows)
    assert re.fullmatch(
        r"float phase: the loss became (nan|inf) at step \d+; no checkpoint was saved yet; lower schedule\.lr",
        errors[1],
    ), errors[1]
    assert errors[1] == errors[0] and logs == [[], []]


@pytest.mark.slow
def test_only_the_newest_checkpoints_and_the_weights_asked_for_stay_on_disk(data, tmp_path):
    import tensorflow as tf

    from qatzoo.train.fit import run_phase_fit
    from qatzoo.train.loop import run_phase

    phase = _phase(epochs=2, checkpoint_every_steps=20, keep_checkpoints=1, epoch_weights=False)
    run_phase(_model(data), data, phase, tmp_path / "tape", RecordingLogger())
    assert [p.name for p in (tmp_path / "tape").iterdir()] == ["float"]  # no <phase>-NNN.h5
    state = tf.train.get_checkpoint_state(str(tmp_path / "tape" / "float"))
    assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == ["ckpt-110"]
    assert sorted(p.name for p in (tmp_path / "tape" / "float").iterdir()) == [
        "checkpoint",
        "ckpt-110.data-00000-of-00001",
        "ckpt-110.index",
    ]

    # The fit loop keeps its last epoch's weights whatever epoch_weights says: they mark the phase as done.
    run_phase_fit(_model(data), data, phase, tmp_path / "fit", RecordingLogger())
    assert [p.name for p in (tmp_path / "fit").iterdir()] == [_weights("float-002")]
