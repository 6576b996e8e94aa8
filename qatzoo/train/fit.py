"""A second training loop: Keras ``Model.fit`` with callbacks, resumable at epoch granularity.

Same loss (``loop.loss_for``), optimizer (Adam, cosine decay over all steps of the phase),
batch size, epochs and data order as the GradientTape loop in ``loop.py``: epoch ``e`` visits the
training set in the order ``numpy.random.default_rng([seed, e]).permutation(n)`` (a
``keras.utils.Sequence`` built on ``loop.batch_indices``, fed with ``shuffle=False``). Per epoch it
logs ``{"loss", "val_accuracy" | "val_mae"}`` (in the reported unit), prints its line when ``loop.prints_epoch`` says so and, with
``phase.epoch_weights``, keeps the weights as ``<phase>-NNN.h5``, like the tape loop; a non-finite loss
raises ``loop.TrainingError``.

Resume is at epoch granularity only: ``keras.callbacks.BackupAndRestore`` backs up the model and
optimizer state (weights, quantizer ranges, Adam slots and step count) to ``<ckpt_dir>/<phase>-fit``
at the end of every epoch, and a killed run restarts at the beginning of the first unfinished epoch;
the steps already done in that epoch are trained again (the tape loop resumes mid-epoch, at its last
step checkpoint; ``phase.checkpoint_every_steps`` and ``phase.keep_checkpoints`` are not used here).
(tf_keras writes a TensorFlow checkpoint under ``chief/``, Keras 3 ``latest.weights.h5``.)
Keras keeps one backup: when it cannot be read (a cut or emptied file), the phase starts afresh, saying so.
BackupAndRestore leaves out the dropout generators (tf_keras' tf.random.Generator, Keras 3's SeedGenerator
state), so their state is kept beside it (``<phase>-fit/rng``,
one per finished epoch) and the resumed run ends with the same weights as an uninterrupted one. Keras
deletes the backup once ``fit`` returns; the last epoch's ``<phase>-NNN.h5``, written with or without
``epoch_weights``, then marks the phase as done, and calling this again loads those weights and returns
without training (as the tape loop does from its checkpoint).

The logged ``loss`` is Keras' epoch mean, weighted by batch size; the tape loop logs the plain mean
of its batch losses. They differ only through the smaller last batch (about 0.3% on mnist_5k).
"""

from __future__ import annotations

import qatzoo.tf_quiet  # noqa: F401  (first: TensorFlow's start-up lines held back)

# isort: split

import math
import shutil
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from qatzoo.artifacts import parse_json, read_bounded
from qatzoo.checkpoints import tag_mismatch
from qatzoo.data.splits import Splits
from qatzoo.files import sha256_file, write_json
from qatzoo.keras import keras
from qatzoo.quant.schemes import engine_module
from qatzoo.train import distribute
from qatzoo.train.loop import (
    Phase,
    TrainingError,
    _save_weights,
    batch_indices,
    epoch_line,
    loss_for,
    outputs_probabilities,
    prints_epoch,
)

__all__ = ["run_phase_fit"]


class EpochBatches(keras.utils.Sequence):
    """The training batches of one epoch in the tape loop's order; ``epoch`` is set before each epoch."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int):
        super().__init__()
        self.x, self.y, self.batch_size, self.seed = x, y, batch_size, seed
        self.steps = math.ceil(len(x) / batch_size)
        self.epoch = 0

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, k: int):
        idx = batch_indices(len(self.x), self.batch_size, self.seed, self.epoch * self.steps + k)
        return self.x[idx], self.y[idx]


class PhaseCallback(keras.callbacks.Callback):
    """Sets the epoch's data order, stops on a non-finite loss, and logs/prints/saves each finished epoch."""

    def __init__(
        self, model, data: Splits, phase: Phase, batches: EpochBatches, ckpt_dir: Path, backup_dir: Path, logger
    ):
        super().__init__()
        self.data, self.phase, self.batches, self.logger = data, phase, batches, logger
        self.ckpt_dir, self.backup_dir = ckpt_dir, backup_dir
        # The dropout generators: BackupAndRestore leaves them out, so they get their own checkpoint,
        # numbered by finished epochs, and a resumed epoch draws the masks of an uninterrupted run.
        self.rng = tf.train.Checkpoint(**engine_module().dropout_state(model))
        self.rng_manager = tf.train.CheckpointManager(self.rng, str(backup_dir / "rng"), max_to_keep=2)
        self.total = phase.epochs * batches.steps
        self.start: int | None = None  # the step training (re)started at, known at the first epoch
        self.bar = None
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.epoch = self.epoch = epoch  # before the epoch's first batch is drawn
        if self.start is None:
            # BackupAndRestore restored the optimizer (and its step count) in on_train_begin.
            self.start = int(self.model.optimizer.iterations.numpy())
            name, steps = self.phase.name, self.batches.steps
            if epoch:
                saved = self.backup_dir / "rng" / f"ckpt-{epoch}"
                if tf.io.gfile.exists(f"{saved}.index"):
                    self.rng.restore(str(saved)).assert_consumed()
            if self.start:
                print(
                    f"[qatzoo] {name} phase: resuming at epoch {epoch + 1} of {self.phase.epochs} "
                    f"(step {self.start} of {self.total}) from {self._last_backup()}"
                )
            else:
                print(f"[qatzoo] {name} phase: {self.phase.epochs} epochs x {steps} steps (Model.fit)")
            self.bar = tqdm(total=self.total, initial=self.start, desc=name, unit="step", disable=None, leave=False)
            self.began = time.perf_counter()
        self.epoch_start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        # logs["loss"] is the epoch's running mean: it turns non-finite at the first non-finite batch.
        loss = float((logs or {}).get("loss", float("nan")))
        if not math.isfinite(loss):
            self.close()
            step = self.epoch * self.batches.steps + batch + 1
            last = self._last_backup()
            kept = f"the last good checkpoint is {last}" if last else "no checkpoint was saved yet"
            knob = "lr" if self.phase.name == "float" else "qat_lr"
            raise TrainingError(
                f"{self.phase.name} phase: the loss became {loss} at step {step}; {kept}; lower schedule.{knob}"
            )
        if self.bar is not None:
            self.bar.update(1)

    def on_epoch_end(self, epoch, logs=None):
        predictions = self.model.predict(self.data.x_val, batch_size=256, verbose=0)
        out = {
            "loss": float(logs["loss"]),
            f"val_{self.data.task.metric}": self.data.task.score(self.data.y_val, predictions),
        }
        done = epoch + 1
        self.rng_manager.save(checkpoint_number=done)  # before BackupAndRestore marks the epoch done
        if self.phase.epoch_weights or done == self.phase.epochs:  # the last one marks the phase as done
            _save_weights(self.model, self.ckpt_dir / f"{self.phase.name}-{done:03d}.h5")
        self.logger.log(self.phase.name, done, out)
        if prints_epoch(done, self.phase.epochs, self.phase.verbose):
            step = done * self.batches.steps
            eta = (time.perf_counter() - self.began) / max(step - self.start, 1) * (self.total - step)
            seconds = time.perf_counter() - self.epoch_start
            tqdm.write(epoch_line(self.phase, done, out, self.data.task, seconds, eta))

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _last_backup(self) -> str | None:
        return engine_module().last_backup(self.backup_dir)


class SealBackup(keras.callbacks.Callback):
    """After BackupAndRestore has written an epoch's backup: ``seal.json`` beside it, with the phase's tag and
    the sha256 of each file of the backup folder itself (Keras 3's ``latest.weights.h5``, whose HDF5 keeps no
    checksum of its data, so a flipped bit would be resumed silently, and ``training_metadata.json``).
    tf_keras' backup is a TensorFlow checkpoint under ``chief/``, whose tensors are checksummed."""

    def __init__(self, phase: Phase, backup_dir: Path):
        super().__init__()
        self.phase, self.backup_dir = phase, backup_dir

    def on_epoch_end(self, epoch, logs=None):
        backup = engine_module().last_backup(self.backup_dir)
        if backup:
            write_json(self.backup_dir / SEAL, {"tag": self.phase.tag, "files": _backup_files(self.backup_dir)})


#: The seal of a fit backup (see :class:`SealBackup`).
SEAL = "seal.json"


def _backup_files(backup_dir: Path) -> dict[str, str]:
    """sha256 of each regular file in the backup folder (not its subfolders), the seal left out."""
    return {p.name: sha256_file(p) for p in sorted(backup_dir.iterdir()) if p.is_file() and p.name != SEAL}


def backup_sealed(backup: str, backup_dir: Path, phase: Phase) -> bool:
    """Whether the backup carries this phase's seal (its tag, and its sha256 when it has one); says why not."""
    why = None
    try:
        seal = parse_json(read_bounded(backup_dir / SEAL, 4096))
        if not isinstance(seal, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError, RecursionError):
        seal, why = {}, "it has no readable seal (a kill between the backup and its seal, or not this run's)"
    why = why or tag_mismatch(seal.get("tag"), phase.tag)
    if not why and seal.get("files") != _backup_files(backup_dir):
        why = "its sha256 differs from the one sealed when it was written (a file of it changed on disk)"
    if why:
        print(f"[qatzoo] {phase.name} phase: refusing the backup {backup}: {why}; starting this phase afresh")
    return not why


class SynchronizeRanges(keras.callbacks.Callback):
    """Under a tf.distribute strategy: after every batch, every replica gets the quantizer ranges of
    the global batch (``distribute.synchronize_ranges``), before anything reads or saves them."""

    def __init__(self, strategy: tf.distribute.Strategy, variables: list):
        super().__init__()
        self.synchronize = tf.function(lambda: strategy.run(distribute.synchronize_ranges, args=(variables,)))

    def on_train_batch_end(self, batch, logs=None):
        self.synchronize()


def run_phase_fit(
    model: keras.Model,
    data: Splits,
    phase: Phase,
    ckpt_dir: Path,
    logger,
    strategy: tf.distribute.Strategy | None = None,
) -> dict:
    """Train ``model`` for one phase with ``Model.fit``, resuming from ``ckpt_dir/<phase>-fit`` if a backup is there.

    Returns ``{"resumed_from_step": int, "steps": int}`` like ``loop.run_phase``; resuming happens at
    epoch boundaries only (see the module docstring). Compiles ``model`` (QAT models come uncompiled).
    With a ``tf.distribute`` ``strategy`` (``model`` built under its scope) the optimizer, the compile
    and the callbacks' checkpoints are made under its scope; ``fit`` then splits each batch (the global
    batch, in the same order) across the replicas and scales the loss itself.
    """
    ckpt_dir = Path(ckpt_dir)
    batches = EpochBatches(data.x_train, data.y_train, phase.batch_size, phase.seed)
    total = phase.epochs * batches.steps
    backup_dir = ckpt_dir / f"{phase.name}-fit"
    final = engine_module().weights_file(ckpt_dir / f"{phase.name}-{phase.epochs:03d}.h5")
    if total == 0:
        return {"resumed_from_step": 0, "steps": 0}
    if final.is_file():
        # The phase finished (fit deleted its backup, or was killed just before it could).
        model.load_weights(str(final))
        shutil.rmtree(backup_dir, ignore_errors=True)
        return {"resumed_from_step": total, "steps": total}
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    backup = engine_module().last_backup(backup_dir)
    if backup and not (
        engine_module().backup_readable(backup, phase.name) and backup_sealed(backup, backup_dir, phase)
    ):
        shutil.rmtree(backup_dir)  # BackupAndRestore keeps one backup: with it unreadable, start afresh

    loss_fn = loss_for(data.task, probabilities=outputs_probabilities(model))
    with distribute.scope(strategy):
        optimizer = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(phase.lr, max(total, 1)))
        model.compile(optimizer=optimizer, loss=loss_fn, jit_compile=False)
        optimizer.build(model.trainable_variables)  # slots exist before BackupAndRestore restores them
        phase_callback = PhaseCallback(model, data, phase, batches, ckpt_dir, backup_dir, logger)
    callbacks = [
        phase_callback,  # first: sets the data order; its h5/log precede the backup that ends an epoch
        keras.callbacks.BackupAndRestore(backup_dir=str(backup_dir)),
        SealBackup(phase, backup_dir),  # after the backup it seals
    ]
    if strategy is not None and distribute.range_variables(model):
        callbacks.insert(0, SynchronizeRanges(strategy, distribute.range_variables(model)))
    try:
        model.fit(batches, epochs=phase.epochs, shuffle=False, callbacks=callbacks, verbose=0)
    finally:
        phase_callback.close()
    shutil.rmtree(backup_dir, ignore_errors=True)  # Keras removes backup_dir/chief; drop the empty folder
    start = phase_callback.start if phase_callback.start is not None else total
    return {"resumed_from_step": start, "steps": total}
