"""Checks that need a Keras 3 process (``engine=keras3``); tests/test_keras3_engine.py runs them in a subprocess,
since the test process itself runs the tfmot engine and a process holds one Keras.

    QATZOO_ENGINE=keras3 python -m tests.keras3_checks parity

Prints one JSON object on its last line.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np


def imports() -> dict:
    """Build every architecture, quantize and convert one: which Keras and which quantization packages got loaded."""
    from qatzoo.keras import ENGINE, KERAS_VERSION
    from qatzoo.models.mnist_cnn import mnist_cnn
    from qatzoo.models.small_transformer import small_transformer
    from qatzoo.models.ts_attention import ts_attention
    from qatzoo.quant.schemes import scheme

    x = np.random.default_rng(0).random((8, 28, 28, 1), dtype=np.float32)
    mnist_cnn(input_shape=(28, 28, 1), num_outputs=10)
    ts_attention(input_shape=(52, 1), num_outputs=4, norm="layer")
    model = small_transformer(input_shape=(28, 28, 1), num_outputs=10)
    scheme("int8", qat=True, int8=True).quantize(model, x)
    return {
        "engine": ENGINE,
        "keras": KERAS_VERSION,
        "tf_keras": "tf_keras" in sys.modules,
        "tfmot": "tensorflow_model_optimization" in sys.modules,
    }


def _steps(blob: bytes, model, x: np.ndarray) -> dict:
    """How far the int8 file's outputs are from the fake-quant Keras model's, in steps of the int8 output."""
    from qatzoo.export import checks, litert

    y_int8 = litert.predict(blob, x)
    y_keras = model.predict(x, verbose=0)
    scale = litert.io_quant(litert.interpreter(blob))[1].scale
    return {
        "full_integer": checks.full_integer(blob).ok,
        "max_steps": float(np.abs(y_int8 - y_keras).max() / scale),
        "mean_steps": float(np.abs(y_int8 - y_keras).mean() / scale),
        "argmax_agreement": float((y_int8.argmax(-1) == y_keras.argmax(-1)).mean()),
    }


def parity() -> dict:
    """Fake-quant Keras 3 models against their converted int8 files, on the calibration inputs."""
    from qatzoo.export.tflite import to_int8_tflite
    from qatzoo.keras import keras
    from qatzoo.models.mnist_cnn import mnist_cnn
    from qatzoo.models.small_transformer import small_transformer
    from qatzoo.models.ts_attention import ts_attention
    from qatzoo.quant.schemes import scheme

    seed = int(os.environ.get("QATZOO_CHECK_SEED", "0"))
    keras.utils.set_random_seed(seed)  # the initial weights too: the same models on every run
    rng = np.random.default_rng(seed)
    images = rng.random((64, 28, 28, 1), dtype=np.float32)
    series = rng.normal(size=(64, 104, 1)).astype(np.float32)
    models = {
        "mnist_cnn": (mnist_cnn(input_shape=(28, 28, 1), num_outputs=10), images),
        # attention_int8's forecaster: ReLU attention, symmetric K/V, one head, a linear skip
        "ts_attention": (
            ts_attention(
                input_shape=(104, 1),
                num_outputs=4,
                num_heads=1,
                ffn_activation="relu",
                symmetric_kv=True,
                attention="relu",
                skip="linear",
            ),
            series,
        ),
        # softmax attention with four heads (the int8 SOFTMAX grid, RESHAPE/TRANSPOSE between heads)
        "ts_attention_softmax": (ts_attention(input_shape=(104, 1), num_outputs=4, num_heads=4), series),
        "small_transformer": (
            small_transformer(
                input_shape=(28, 28, 1),
                num_outputs=10,
                patchify="dense",
                norm="nonorm",
                ffn_activation="relu",
                symmetric_kv=True,
                attention="relu",
            ),
            images,
        ),
    }
    out = {}
    for name, (model, x) in models.items():
        qat = scheme("int8", qat=True, int8=True).quantize(model, x)
        out[name] = _steps(to_int8_tflite(qat, lambda x=x: x), qat, x)
    return out


def own_layer() -> dict:
    """A user's layer: refused without a QuantizeConfig, quantized and exported in int8 once one is registered."""
    import tensorflow as tf

    from qatzoo.export.tflite import to_int8_tflite
    from qatzoo.keras import keras
    from qatzoo.quant import register
    from qatzoo.quant.keras3 import InnerPointsQuantizeConfig, QuantizeWrapper
    from qatzoo.quant.schemes import scheme
    from qatzoo.quant.spec import UnsupportedLayerError

    class Scale(keras.layers.Layer):
        """``x * w`` then a ReLU, with its product exposed as an identity point."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.product_act = keras.activations.linear

        def build(self, input_shape):
            self.w = self.add_weight(name="w", shape=(int(input_shape[-1]),), initializer="ones")

        def call(self, x):
            return tf.nn.relu(self.product_act(x * self.w))

    class ScaleQuantizeConfig(InnerPointsQuantizeConfig):
        kernels = ("w",)
        points = ("product_act",)

    inputs = keras.Input((8,))
    outputs = keras.layers.Dense(4, name="head")(Scale(name="scale")(keras.layers.Dense(8, name="fc")(inputs)))
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).normal(size=(32, 8)).astype(np.float32)
    int8 = scheme("int8", qat=True, int8=True)
    try:
        int8.quantize(model, x)
        refused = ""
    except UnsupportedLayerError as error:
        refused = str(error)
    register(Scale, ScaleQuantizeConfig)
    qat = int8.quantize(model, x)
    wrapped = qat.get_layer("scale")
    from qatzoo.quant.schemes import custom_objects

    return {
        "refused": refused,
        "custom_objects": sorted(custom_objects()),
        "wrapped": isinstance(wrapped, QuantizeWrapper),
        "ranges": sorted(w.path.split("/")[-1] for w in wrapped.weights if w.path.endswith(("_min", "_max"))),
        **_steps(to_int8_tflite(qat, lambda: x), qat, x),
    }


def straight_through() -> dict:
    """Gradients of a training step through each range-estimating quantizer: exactly the fake-quant op's
    straight-through mask (1 inside the range, 0 where clipped), as in tfmot; no gradient reaches the tensor
    through the range taken from it (which would also cost a reduce_min/max backward per tensor and step)."""
    import tensorflow as tf

    from qatzoo.keras import keras
    from qatzoo.quant.keras3 import RangeQuantizer, WeightQuantizer

    # Skewed values: the nudged [min, max] of an asymmetric grid clips the smallest one.
    x = tf.constant(np.random.default_rng(0).uniform(-0.3, 1.7, size=(4, 16)).astype(np.float32))
    holder = keras.layers.Layer()
    out = {}
    for name, quantizer in {
        "last_value": RangeQuantizer(range="last_value"),
        "ema": RangeQuantizer(range="ema"),
        "weights_per_tensor": WeightQuantizer(per_channel=False, symmetric=False, narrow_range=False),
        "weights_per_channel": WeightQuantizer(per_channel=True, symmetric=False, narrow_range=False),
    }.items():
        state = quantizer.build(holder, name, tuple(x.shape))
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = quantizer(x, True, state)
        grad = tape.gradient(y, x).numpy()
        low, high = (np.asarray(keras.ops.convert_to_numpy(state[k])) for k in ("min", "max"))
        per_channel = np.ndim(low) > 0
        mask = (
            tf.quantization.fake_quant_with_min_max_vars_per_channel_gradient
            if per_channel
            else tf.quantization.fake_quant_with_min_max_vars_gradient
        )(tf.ones_like(x), x, low, high, num_bits=8, narrow_range=False)[0]
        grad_expected = np.asarray(mask)
        out[name] = {"equal": bool(np.array_equal(grad, grad_expected)), "clipped": int((grad_expected == 0).sum())}
    return out


def fit_resume() -> dict:
    """trainer.loop=fit on Keras 3: a QAT phase killed after epoch 2's weights (before its backup) resumes at
    epoch 2 and ends with the weights, ranges and dropout state of an uninterrupted run; an emptied backup
    makes the phase start afresh. The data: mnist_5k in $QATZOO_CHECK_DATA_DIR."""
    import dataclasses
    from pathlib import Path
    from tempfile import mkdtemp

    from qatzoo.data.load import image_classification
    from qatzoo.keras import keras
    from qatzoo.models.mnist_cnn import mnist_cnn
    from qatzoo.quant.schemes import scheme
    from qatzoo.train.fit import run_phase_fit
    from qatzoo.train.loop import Phase

    splits = {"train": "train", "val": "validation", "test": "test"}
    data = image_classification(
        name="mnist_5k", builder="mnist5k", data_dir=os.environ["QATZOO_CHECK_DATA_DIR"], splits=splits
    )
    data = dataclasses.replace(data, x_train=data.x_train[:1000], y_train=data.y_train[:1000])  # 16 steps an epoch

    class Logger:
        def __init__(self, die_at=None):
            self.epochs, self.die_at = [], die_at

        def log(self, phase, epoch, metrics):
            self.epochs.append(epoch)
            if epoch == self.die_at:
                raise KeyboardInterrupt

    def model():
        keras.utils.set_random_seed(0)
        float_model = mnist_cnn(input_shape=data.input_shape, num_outputs=data.num_outputs)
        return scheme("int8", qat=True, int8=True).quantize(float_model, data.representative(64, 0))

    def state(m):  # every variable: weights, quantizer ranges, the dropout SeedGenerator's state
        return [np.asarray(v) for v in m.variables]

    phase = Phase(name="qat", epochs=3, lr=1e-4, batch_size=64, seed=0, verbose=0)
    root = Path(mkdtemp())
    clean = model()
    run_phase_fit(clean, data, phase, root / "clean", Logger())
    try:
        run_phase_fit(model(), data, phase, root / "killed", Logger(die_at=2))
    except KeyboardInterrupt:
        pass
    backup = root / "killed" / "qat-fit" / "latest.weights.h5"
    backed_up = backup.is_file()
    resumed, log = model(), Logger()
    result = run_phase_fit(resumed, data, phase, root / "killed", log)
    # An emptied backup: the phase starts afresh (and still ends where an uninterrupted run does).
    try:
        run_phase_fit(model(), data, phase, root / "emptied", Logger(die_at=1))
    except KeyboardInterrupt:
        pass
    (root / "emptied" / "qat-fit" / "latest.weights.h5").write_bytes(b"")
    afresh = model()
    restarted = run_phase_fit(afresh, data, phase, root / "emptied", Logger())
    return {
        "backed_up": backed_up,
        "result": result,
        "epochs_logged": log.epochs,
        "equal": all(np.array_equal(a, b) for a, b in zip(state(clean), state(resumed), strict=True)),
        "backup_removed": not (root / "killed" / "qat-fit").exists(),
        "restarted": restarted,
        "afresh_equal": all(np.array_equal(a, b) for a, b in zip(state(clean), state(afresh), strict=True)),
    }


if __name__ == "__main__":
    print(json.dumps(globals()[sys.argv[1]]()))
