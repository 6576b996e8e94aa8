"""The architecture factories build functional models of the documented shapes."""

from __future__ import annotations

import pytest

from qatzoo.keras import keras
from qatzoo.models.mnist_cnn import mnist_cnn
from qatzoo.models.small_transformer import small_transformer
from qatzoo.models.ts_attention import ts_attention


@pytest.mark.parametrize(
    ("factory", "input_shape", "outputs", "must_have"),
    [
        (mnist_cnn, (28, 28, 1), 10, {"Conv2D"}),
        (small_transformer, (28, 28, 1), 10, {"Attention", "LayerNorm", "PositionEmbedding"}),
        (ts_attention, (52, 1), 4, {"Attention", "PositionEmbedding"}),
    ],
)
def test_factories_return_functional_models(factory, input_shape, outputs, must_have):
    model = factory(input_shape=input_shape, num_outputs=outputs)
    assert isinstance(model, keras.Model) and type(model).__name__ == "Functional"  # not a subclassed model
    assert model.output_shape == (None, outputs)
    assert must_have <= {type(layer).__name__ for layer in model.layers}


def test_transformer_has_two_blocks_with_gelu_mlp():
    model = small_transformer(input_shape=(28, 28, 1), num_outputs=10)
    attention = [layer for layer in model.layers if type(layer).__name__ == "Attention"]
    gelu = [layer for layer in model.layers if getattr(layer, "activation", None) is keras.activations.gelu]
    assert len(attention) == 2 and len(gelu) == 2


def test_patch_size_must_divide_the_image():
    with pytest.raises(ValueError, match="arch.patch_size=5 must divide the image size 28x28"):
        small_transformer(input_shape=(28, 28, 1), num_outputs=10, patch_size=5)


def test_deployable_options_build_relu_nonorm_and_symmetric_kv():
    from qatzoo.models.layers import NoNorm

    model = small_transformer(
        input_shape=(28, 28, 1), num_outputs=10, norm="nonorm", ffn_activation="relu", symmetric_kv=True
    )
    layers = model.layers
    assert sum(isinstance(layer, NoNorm) for layer in layers) == 5  # two per block and the final one
    assert not any(type(layer).__name__ == "LayerNorm" for layer in layers)
    assert sum(getattr(layer, "activation", None) is keras.activations.relu for layer in layers) == 2
    assert all(layer.symmetric_kv for layer in layers if type(layer).__name__ == "Attention")
    bare = small_transformer(input_shape=(28, 28, 1), num_outputs=10, norm="none")
    assert not any(type(layer).__name__ in ("LayerNorm", "NoNorm") for layer in bare.layers)
    with pytest.raises(ValueError, match="arch.ffn_activation"):
        small_transformer(input_shape=(28, 28, 1), num_outputs=10, ffn_activation="swish")


def test_dense_patchify_is_the_strided_conv():
    import numpy as np

    conv = small_transformer(input_shape=(28, 28, 1), num_outputs=10)
    dense = small_transformer(input_shape=(28, 28, 1), num_outputs=10, patchify="dense")
    assert not any(isinstance(layer, keras.layers.Conv2D) for layer in dense.layers)
    weights = conv.get_weights()
    weights[0] = weights[0].reshape(-1, weights[0].shape[-1])  # (7, 7, 1, 96) -> (49, 96), same pixel order
    dense.set_weights(weights)
    images = np.random.default_rng(0).uniform(size=(2, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(dense(images), conv(images), atol=1e-5)
    with pytest.raises(ValueError, match="arch.patchify"):
        small_transformer(input_shape=(28, 28, 1), num_outputs=10, patchify="pool")


@pytest.mark.parametrize("heads", [1, 4])
def test_relu_attention_has_no_softmax_and_one_head_no_transpose(heads):
    import numpy as np
    import tensorflow as tf

    from qatzoo.models.layers import Attention

    layer = Attention(heads, 16, probabilities="relu")
    x = np.random.default_rng(0).normal(size=(2, 52, 64)).astype("float32")
    assert layer(x).shape == (2, 52, 64)
    ops = {op.type for op in tf.function(layer).get_concrete_function(x).graph.get_operations()}
    assert "Softmax" not in ops and "Relu" in ops
    assert ("Transpose" in ops) == (heads > 1)
    assert layer.get_config()["probabilities"] == "relu"
    assert "probabilities" not in Attention(heads, 16).get_config()  # earlier models' configs unchanged
    with pytest.raises(ValueError, match="probabilities"):
        Attention(heads, 16, probabilities="sigmoid")


def test_forecaster_linear_skip_and_patches():
    import numpy as np

    plain = ts_attention(input_shape=(52, 1), num_outputs=4)  # the defaults: today's model, unchanged
    assert not any(layer.name.startswith(("skip_", "patchify")) for layer in plain.layers)
    model = ts_attention(input_shape=(104, 1), num_outputs=4, skip="linear", patch=2)
    layers = {layer.name: layer for layer in model.layers}
    assert layers["patchify"].output.shape[1:] == (52, 2)  # 2-week tokens: the attention sees 52 of them
    assert layers["skip_linear"].input.shape[-1] == 104  # the whole window, flattened
    # Zero-initialized: at the start the skip adds nothing and the model is the attention path alone.
    window = np.random.default_rng(0).normal(size=(2, 104, 1)).astype("float32")
    np.testing.assert_allclose(layers["skip_linear"](window.reshape(2, 104)), 0.0)
    assert model.output_shape == (None, 4)
    with pytest.raises(ValueError, match="arch.patch=3 must divide the window of 104 steps"):
        ts_attention(input_shape=(104, 1), num_outputs=4, patch=3)
    with pytest.raises(ValueError, match="arch.skip"):
        ts_attention(input_shape=(52, 1), num_outputs=4, skip="seasonal")
