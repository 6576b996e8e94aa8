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
    assert isinstance(model, keras.Model) and model._is_graph_network  # noqa: SLF001 - functional
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
