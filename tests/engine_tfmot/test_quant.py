"""The quantization pieces: the attention layer's QuantizeConfig, the range quantizer, the registry."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from qatzoo.keras import keras
from qatzoo.models.layers import Attention
from qatzoo.models.layers.attention import INNER_POINTS
from qatzoo.quant.configs import SOFTMAX_OUTPUT_RANGE, EmaRangeQuantizer, LayerQuantizeConfig
from qatzoo.quant.registry import INT8_TABLE, TableQuantizeRegistry, UnsupportedLayerError
from qatzoo.quant.schemes import scheme

QAT = scheme("int8", qat=True, int8=True)


def _attention_model(tokens=6, features=8):
    inputs = keras.Input((tokens, features))
    return keras.Model(inputs, Attention(num_heads=2, key_dim=4, name="attn")(inputs))


def _range_vars(model, layer_name):
    layer = model.get_layer(f"quant_{layer_name}")
    return {v.name.split("/")[-1].split(":")[0]: float(v.numpy()) for v in layer.weights if v.shape == ()}


def test_attention_matches_a_numpy_reference():
    keras.utils.set_random_seed(1)
    model = _attention_model()
    x = np.random.default_rng(0).normal(size=(3, 6, 8)).astype(np.float32)
    layer = model.get_layer("attn")
    w = {name: layer.get_weights()[i] for i, name in enumerate(["qk", "qb", "kk", "kb", "vk", "vb", "ok", "ob"])}

    def heads(t):
        return t.reshape(3, 6, 2, 4).transpose(0, 2, 1, 3)

    q, k, v = (heads(x @ w[f"{n}k"] + w[f"{n}b"]) for n in "qkv")
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(4)
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    context = (probs @ v).transpose(0, 2, 1, 3).reshape(3, 6, 8)
    np.testing.assert_allclose(model(x).numpy(), context @ w["ok"] + w["ob"], rtol=1e-5, atol=1e-5)


def test_attention_inner_activations_are_fake_quantized_and_calibrated():
    keras.utils.set_random_seed(1)
    calibration = np.random.default_rng(0).normal(size=(16, 6, 8)).astype(np.float32)
    qat = QAT.quantize(_attention_model(), calibration)
    ranges = _range_vars(qat, "attn")
    for point in ("query_act", "key_act", "value_act", "scores_act"):
        low, high = ranges[f"{point}_post_activation_min"], ranges[f"{point}_post_activation_max"]
        assert ranges[f"{point}_post_activation_seen"] == 1.0
        # Calibrated from the data, not left at tfmot's [-6, 6] start.
        assert (low, high) != (-6.0, 6.0) and low <= 0.0 <= high and high - low > 0.05, (point, low, high)
    # The kernels are fake-quantized too (per tensor), biases are not.
    names = {v.name.split("/")[-1].split(":")[0] for v in qat.get_layer("quant_attn").weights}
    for kernel in ("query_kernel", "key_kernel", "value_kernel", "output_kernel"):
        assert f"{kernel}_min" in names and f"{kernel}_max" in names
    wrapper = qat.get_layer("quant_attn")
    wrapped = {name: getattr(wrapper.layer, name) for name in INNER_POINTS}
    assert all(type(a).__name__ == "QuantizeAwareActivation" for a in wrapped.values())


def test_softmax_output_lies_on_the_int8_softmax_grid():
    keras.utils.set_random_seed(1)
    calibration = np.random.default_rng(0).normal(size=(4, 6, 8)).astype(np.float32)
    qat = QAT.quantize(_attention_model(), calibration)
    probs_act = qat.get_layer("quant_attn").layer.probs_act
    probs_act.training = False
    values = probs_act(tf.nn.softmax(tf.random.normal((2, 6, 6)))).numpy() * 256.0
    np.testing.assert_allclose(values, np.round(values), atol=1e-3)
    assert SOFTMAX_OUTPUT_RANGE == (0.0, 255.0 / 256.0)


def test_relu_attention_probabilities_get_a_calibrated_range_and_no_scores_point():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((6, 8))
    layer = Attention(num_heads=2, key_dim=4, probabilities="relu", name="attn")
    calibration = np.random.default_rng(0).normal(size=(16, 6, 8)).astype(np.float32)
    qat = QAT.quantize(keras.Model(inputs, layer(inputs)), calibration)
    ranges = _range_vars(qat, "attn")
    assert not any(name.startswith("scores_act") for name in ranges)  # the ReLU fuses into the scaling MUL
    low, high = ranges["probs_act_post_activation_min"], ranges["probs_act_post_activation_max"]
    assert low == 0.0 and 0.0 < high != SOFTMAX_OUTPUT_RANGE[1]


def test_ema_range_quantizer_first_batch_then_moving_average():
    layer = keras.layers.Layer()
    quantizer = EmaRangeQuantizer(num_bits=8, ema_decay=0.9)
    weights = quantizer.build(None, "t", layer)
    x1 = tf.constant([[0.5, 2.0, 1.0]])
    y1 = quantizer(x1, True, weights)
    # The range always holds 0; the first batch sets it.
    assert float(weights["min_var"]) == 0.0 and float(weights["max_var"]) == 2.0
    np.testing.assert_array_equal(y1, tf.quantization.fake_quant_with_min_max_vars(x1, 0.0, 2.0, num_bits=8))
    quantizer(tf.constant([[-1.0, 4.0]]), True, weights)
    assert float(weights["min_var"]) == pytest.approx(0.9 * 0.0 + 0.1 * -1.0)
    assert float(weights["max_var"]) == pytest.approx(0.9 * 2.0 + 0.1 * 4.0)
    # Inference leaves the range alone.
    quantizer(tf.constant([[-50.0, 50.0]]), False, weights)
    assert float(weights["max_var"]) == pytest.approx(2.2)


def test_a_layer_without_a_quantize_config_is_an_error_not_a_float_layer():
    inputs = keras.Input((10, 3))
    model = keras.Model(inputs, keras.layers.Conv1D(4, 3, name="temporal")(inputs))
    with pytest.raises(
        UnsupportedLayerError, match=r"layer 'temporal' \(Conv1D\) has no QuantizeConfig.*register.*keep_float"
    ):
        QAT.quantize(model, np.zeros((1, 10, 3), np.float32))
    assert not TableQuantizeRegistry().supports(model.get_layer("temporal"))


def test_per_channel_dense_weights_are_rejected_by_the_converter():
    """Why Dense and attention kernels are per tensor: TF 2.21's converter refuses per-axis QAT weights
    on FULLY_CONNECTED. If this test fails, the converter learned it: switch them to per channel."""
    import tensorflow_model_optimization as tfmot

    from qatzoo.export.tflite import to_int8_tflite
    from qatzoo.quant.schemes import TableQuantizeScheme

    class PerChannelDense(TableQuantizeScheme):
        def get_quantize_registry(self):
            table = dict(INT8_TABLE)
            table[keras.layers.Dense] = lambda bits: LayerQuantizeConfig(
                ("kernel",), ("activation",), per_channel=True, bits=bits
            )
            return TableQuantizeRegistry(table)

    inputs = keras.Input((8,))
    model = keras.Model(inputs, keras.layers.Dense(4)(inputs))
    qat = tfmot.quantization.keras.quantize_apply(
        tfmot.quantization.keras.quantize_annotate_model(model), PerChannelDense()
    )
    x = np.random.default_rng(0).normal(size=(8, 8)).astype(np.float32)
    with pytest.raises(Exception, match="mismatched quantized axes"):
        to_int8_tflite(qat, lambda: x)


def test_layer_norm_matches_keras_and_fake_quantizes_every_intermediate():
    from qatzoo.models.layers import LayerNorm
    from qatzoo.models.layers.norm import INNER_POINTS as NORM_POINTS

    keras.utils.set_random_seed(2)
    x = np.random.default_rng(0).normal(2.0, 3.0, size=(4, 5, 16)).astype(np.float32)
    ours, reference = LayerNorm(epsilon=1e-5), keras.layers.LayerNormalization(epsilon=1e-5)
    ours.build(x.shape)
    reference.build(x.shape)
    gamma, beta = np.linspace(0.5, 1.5, 16), np.linspace(-1, 1, 16)
    ours.set_weights([gamma, beta])
    reference.set_weights([gamma, beta])
    np.testing.assert_allclose(ours(x).numpy(), reference(x).numpy(), rtol=1e-4, atol=1e-4)

    inputs = keras.Input((5, 16))
    qat = QAT.quantize(keras.Model(inputs, LayerNorm(name="ln")(inputs)), x)
    ranges = _range_vars(qat, "ln")
    for point in NORM_POINTS:
        assert ranges[f"{point}_post_activation_seen"] == 1.0, point
    # mean of N(2, 3) inputs is about 2; the calibrated range holds it.
    assert ranges["mean_act_post_activation_max"] > 1.0
