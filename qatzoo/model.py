"""An int8 model with its contract: raw input in, decoded output out.

    from qatzoo.zoo import load
    model = load("mnist_cnn_int8")            # or Model.from_run("runs/mnist_cnn_int8/<date>")
    model.predict(pixels)                     # uint8 (28, 28) or (N, 28, 28): class indices
    model.predict(pixels, labels=True)        # class names; probabilities=True: softmax of the logits (or the
                                              # file's own probabilities, when it ends in a softmax)
    load("attention_int8").predict(co2_ppm)   # >= window weekly values: the next horizon weeks, in ppm

``predict`` applies the contract (:mod:`qatzoo.contract`): raw -> the same preprocessing the trainer used
-> int8 with the model's input scale and zero point -> LiteRT -> dequantized -> decoded. ``.contract`` and
``.interpreter`` stay reachable.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from qatzoo import contract as contracts
from qatzoo.artifacts import parse_json, read_bounded
from qatzoo.contract import Contract, ContractError

#: A contract.json larger than this is not read (one is about a kilobyte).
MAX_CONTRACT_BYTES = 1024 * 1024


class InputRangeWarning(UserWarning):
    """Model inputs (after the contract's steps) outside what the int8 file's input holds: they are clipped to
    the range calibrated on the training data, so the output may be off (a series that drifted past it)."""


class Model:
    """A .tflite run in LiteRT behind its contract."""

    def __init__(self, model: bytes | str | Path, contract: dict | Contract):
        from qatzoo.export.litert import interpreter

        #: The typed contract (``.plain``: its JSON; ``contract["input"]`` still reads like the dict).
        self.contract = contracts.read(contract)
        self.interpreter = interpreter(model if isinstance(model, bytes) else str(model))
        # One interpreter holds one input and one output tensor: ``predict`` from several threads takes turns.
        self._lock = threading.Lock()

    @classmethod
    def from_files(cls, model: str | Path, contract_file: str | Path) -> Model:
        try:
            data = parse_json(read_bounded(contract_file, MAX_CONTRACT_BYTES))
        except (OSError, ValueError, RecursionError) as error:
            raise ContractError(f"{contract_file} is not a readable contract ({type(error).__name__})") from None
        return cls(model, data)

    @classmethod
    def from_run(cls, run_dir: str | Path) -> Model:
        """The int8 model of a finished run directory (``model_int8.tflite`` and ``contract.json``)."""
        run_dir = Path(run_dir)
        return cls.from_files(run_dir / "model_int8.tflite", run_dir / "contract.json")

    # ---- the contract applied

    def _batch(self, raw) -> tuple[np.ndarray, bool]:
        """Raw input as a batch (first axis: examples) and whether one example was given."""
        spec = self.contract.input.raw
        x = np.asarray(raw)
        if x.dtype.kind not in "biuf":  # complex too: its imaginary part would be dropped
            raise ContractError(f"input must be numbers, got {x.dtype}")
        if spec.kind == "image":
            shape = tuple(spec.shape)
            if spec.dtype == "float32":  # a user's own scaled images
                if x.dtype.kind != "f" or not np.all(np.isfinite(x)):
                    raise ContractError(f"input must be finite float values of shape {shape}, got {x.dtype}")
            elif x.dtype != np.uint8:
                raise ContractError(f"input must be uint8 pixels (0-255) of shape {shape}, got {x.dtype}")
            if len(shape) == 2 and x.shape[-1:] == (1,) and x.shape[-3:-1] == shape:
                x = x[..., 0]
            if x.shape == shape:
                return x[None], True
            if x.ndim == len(shape) + 1 and x.shape[1:] == shape:
                if not len(x):
                    raise ContractError("the batch is empty")
                return x, False
            raise ContractError(
                f"input must be one image {shape} or a batch (N, {', '.join(map(str, shape))}), got {x.shape}"
            )
        need = spec.min_length
        if not np.all(np.isfinite(x)):
            raise ContractError("the series holds NaN or infinite values")
        if x.ndim == 1:
            x = x[None]
            single = True
        elif x.ndim == 2:
            single = False
        else:
            raise ContractError(f"input must be one series (length >= {need}) or a batch (N, length), got {x.shape}")
        if not len(x):
            raise ContractError("the batch is empty")
        if x.shape[1] < need:
            raise ContractError(
                f"the series needs at least {need} values ({spec.frequency}, {spec.unit}), got {x.shape[1]}"
            )
        return x.astype(np.float64), single

    def _warn_outside(self, x: np.ndarray) -> None:
        """One :class:`InputRangeWarning` line when model inputs ``x`` fall outside the int8 input's range."""
        quantization = self.contract.input.quantization
        if quantization is None or np.dtype(quantization.dtype).kind not in "iu":
            return
        low, high = contracts.representable(quantization)
        outside = int(np.count_nonzero((x < low) | (x > high)))
        if outside:
            import warnings

            warnings.warn(
                f"{outside} of {x.size} model input values lie outside {low:.4g} to {high:.4g}, the range the int8 "
                "input was calibrated for on the training data: they are clipped and the output may be off",
                InputRangeWarning,
                stacklevel=3,
            )

    def read(self, path: str | Path):
        """The raw input in a file, read as ``qatzoo predict`` reads it (:mod:`qatzoo.inputs`): a .png image, a
        .csv series (its last column; a header row skipped) or a .npy. ``model.predict(model.read(path))``."""
        from qatzoo.inputs import read_input

        return read_input(path, self.contract.input.raw)

    def predict(self, raw, *, probabilities: bool = False, labels: bool = False):
        """Decoded outputs of raw input (one example or a batch).

        Classifiers: class indices; ``labels=True`` class names; ``probabilities=True`` the softmax of the
        logits (with ``labels``, a dict of both). Forecasters: the next ``horizon`` values in the series'
        unit, from its last ``window`` values (a longer history is fine). Safe to call from several threads
        (they take turns on the one interpreter); ``.interpreter`` used directly is not.
        """
        from qatzoo.export.litert import predict

        batch, single = self._batch(raw)
        x = contracts.preprocess(self.contract.input, batch)
        expected = tuple(int(d) for d in self.interpreter.get_input_details()[0]["shape"][1:])
        if tuple(x.shape[1:]) != expected:  # a contract whose steps do not make what the file takes
            raise contracts.ContractError(
                f"the contract's steps make inputs of shape {tuple(x.shape[1:])}, the model takes {expected}"
            )
        self._warn_outside(x)
        with self._lock:
            y = predict(self.interpreter, x)
        output = self.contract.output
        if self.contract.task in ("forecast", "regression"):  # values in the unit, as the contract decodes them
            result = contracts.decode(output.steps, y, batch)
        else:
            classes = np.argmax(y, axis=-1)
            if probabilities and output.kind == "probabilities":  # the file ends in a softmax already
                clipped = np.clip(y, 0.0, None)  # int8 steps: renormalised, never a second softmax
                probs = clipped / np.maximum(clipped.sum(axis=-1, keepdims=True), 1e-12)
            elif probabilities:
                e = np.exp(y - y.max(axis=-1, keepdims=True))
                probs = e / e.sum(axis=-1, keepdims=True)
            if labels:
                names = np.asarray(output.classes)[classes]
                result = {"labels": names, "probabilities": probs} if probabilities else names
            else:
                result = probs if probabilities else classes
        if single:
            return {k: v[0] for k, v in result.items()} if isinstance(result, dict) else result[0]
        return result
