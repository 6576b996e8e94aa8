"""The deployment runtimes on real files: TensorFlow Lite Micro's kernels and Arm's Vela compiler, no mocks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qatzoo.deploy import tflm, vela

ZOO = Path(__file__).resolve().parent.parent / "zoo"
PUBLISHED = {
    f"{e['name']}@{e['version']}": ZOO / e["location"] for e in json.loads((ZOO / "index.json").read_text())["models"]
}
CNN = PUBLISHED["mnist_cnn_int8@1"]


def _litert(path: Path, x: np.ndarray, reference: bool = False) -> np.ndarray:
    """LiteRT's int8 outputs for int8 inputs, one invoke per example (as the zoo's numbers are measured);
    ``reference``: from LiteRT's reference kernels, without XNNPACK."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from qatzoo.export.litert import interpreter

    if reference:
        it = Interpreter(str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
        it.allocate_tensors()
    else:
        it = interpreter(str(path))
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    outputs = []
    for example in x:
        it.set_tensor(inp["index"], example[None])
        it.invoke()
        outputs.append(it.get_tensor(out["index"])[0])
    return np.stack(outputs)


def _random_inputs(path: Path, n: int = 200) -> np.ndarray:
    from qatzoo.export.litert import interpreter

    shape = tuple(interpreter(str(path)).get_input_details()[0]["shape"][1:])
    return np.random.default_rng(0).integers(-128, 128, (n, *shape), dtype=np.int8)


@pytest.fixture(scope="module")
def gelu_gather_tile() -> bytes:
    """A tiny int8 model with ops TFLM lacks (GELU, TILE) and one Vela leaves to the CPU on an Ethos-U55 (GATHER)."""
    import tensorflow as tf

    from qatzoo.export.tflite import to_int8_tflite
    from qatzoo.keras import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    x = keras.layers.Dense(8, activation="gelu")(inputs)
    x = keras.layers.Lambda(lambda t: tf.tile(tf.gather(t, [3, 1, 0], axis=1), [1, 2]))(x)
    rep = np.random.default_rng(0).normal(size=(16, 8)).astype(np.float32)
    return to_int8_tflite(keras.Model(inputs, x), lambda: rep)


def _edited(path: Path, edit) -> bytes:
    """The model at ``path`` with ``edit(model)`` applied to its schema object, packed again."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    model = fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(path.read_bytes(), 0))
    edit(model)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_tflm_runs_the_zoo_cnn_in_the_smallest_arena_it_reports():
    from tflite_micro.python.tflite_micro import runtime

    loaded = tflm.load(CNN)
    assert loaded.runs and loaded.unsupported == () and loaded.error is None
    assert loaded.flash_bytes == CNN.stat().st_size
    assert loaded.arena_bytes and loaded.arena_bytes > 0
    zeros = np.zeros((1, 28, 28, 1), np.int8)

    def fits(arena: int) -> bool:
        try:
            it = runtime.Interpreter.from_file(str(CNN), arena_size=arena)
            it.set_input(zeros, 0)
            it.invoke()
        except RuntimeError:
            return False
        return True

    assert fits(loaded.arena_bytes) and not fits(loaded.arena_bytes - 16)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_every_published_model_runs_in_tflm_as_in_litert_or_names_the_ops_tflm_lacks(name):
    path = PUBLISHED[name]
    loaded = tflm.load(path)
    if not loaded.runs:
        assert loaded.unsupported and loaded.error is None
        with pytest.raises(tflm.TflmError, match=loaded.unsupported[0]):
            tflm.run(path, _random_inputs(path, 2))
        return
    x = _random_inputs(path)
    got = tflm.agreement(tflm.run(path, x), _litert(path, x))
    # TFLM's reference kernels round some requantizations differently: 1 step per op in a few elements, which
    # a deep graph carries to its output (README, "Where it runs"); the CNNs stay almost exact (the 4-bit-grid
    # mnist_cnn_int8@4: 86% of elements equal on these random inputs, 90% on the test split, at most 1 step;
    # mnist_cnn_fashion_int8@4, 4-bit grid too: 83% on these inputs, 82.8% on the test split, at most 1 step).
    assert got["max_step_diff"] <= (2 if name.startswith("mnist_cnn") else 5), got
    assert got["equal_share"] >= (0.8 if name.startswith("mnist_cnn") else 0.3), got


@pytest.mark.parametrize("name", ["ds_cnn_fashion_int8@2", "mnist_cnn_int8@4"])
def test_on_the_cnns_tflm_follows_litert_s_reference_kernels_and_xnnpack_is_what_rounds_apart(name):
    """The DS-CNN's TFLite Micro outputs are 31% equal to LiteRT's on the test split (at most 11 steps): that is
    XNNPACK's rounding (the zoo measures with it), not TFLM's - LiteRT's own reference kernels agree with TFLM."""
    path = PUBLISHED[name]
    x = _random_inputs(path)
    micro, reference = tflm.run(path, x), _litert(path, x, reference=True)
    against_reference = tflm.agreement(micro, reference)
    assert against_reference["equal_share"] >= 0.95 and against_reference["max_step_diff"] <= 1, against_reference
    xnnpack = tflm.agreement(_litert(path, x), reference)
    assert xnnpack["equal_share"] < against_reference["equal_share"] - 0.05, (xnnpack, against_reference)


@pytest.mark.parametrize("name", ["mnist_cnn_int8@1", "attention_int8@2"])
def test_the_tflm_comparison_takes_litert_predictions_instead_of_running_litert_again(name):
    from qatzoo.deploy.report import measure
    from qatzoo.export import litert

    path = PUBLISHED[name]
    in_q, out_q = litert.io_quant(litert.interpreter(str(path)))
    x = litert.dequantize(_random_inputs(path, 100), in_q)  # floats that quantize to the random int8 inputs
    predictions = litert.predict(str(path), x)
    np.testing.assert_array_equal(litert.quantize(predictions, out_q), _litert(path, litert.quantize(x, in_q)))
    blob = path.read_bytes()
    assert measure("tflm", blob, x, predictions=predictions) == measure("tflm", blob, x)


def test_the_deployable_attention_models_run_in_tflm():
    for name in ("attention_int8@2", "transformer_int8@2"):
        loaded = tflm.load(PUBLISHED[name])
        assert loaded.runs and loaded.arena_bytes > 0, (name, loaded)


@pytest.mark.parametrize("name", ["transformer_int8@1", "attention_int8@1"])
def test_the_zoo_attention_models_need_gelu_which_tflm_lacks(name):
    loaded = tflm.load(PUBLISHED[name])
    assert not loaded.runs and loaded.unsupported == ("GELU",) and loaded.arena_bytes is None
    assert loaded.flash_bytes == PUBLISHED[name].stat().st_size


def test_tflm_names_every_missing_op_not_only_the_first(gelu_gather_tile):
    assert tflm.load(gelu_gather_tile).unsupported == ("GELU", "TILE")
    with pytest.raises(tflm.TflmError, match="GELU, TILE") as error:
        tflm.run(gelu_gather_tile, np.zeros((1, 8), np.int8))
    assert error.value.unsupported == ("GELU", "TILE")


def _bad_buffer_index(model):
    model.subgraphs[0].tensors[model.subgraphs[0].operators[0].inputs[1]].buffer = 999


def _bad_output_index(model):
    model.subgraphs[0].outputs = [500]


BROKEN = {
    "half": lambda: CNN.read_bytes()[: CNN.stat().st_size // 2],
    "tail_cut": lambda: CNN.read_bytes()[:-100],
    "empty": lambda: b"",
    "garbage": lambda: np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes(),
    # Well-formed flatbuffers with indices that crash TFLM itself (checked before it sees them):
    "bad_buffer_index": lambda: _edited(CNN, _bad_buffer_index),
    "bad_output_index": lambda: _edited(CNN, _bad_output_index),
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_a_broken_file_is_a_clean_result_in_tflm_not_a_crash(kind):
    data = BROKEN[kind]()
    loaded = tflm.load(data)
    assert not loaded.runs and loaded.unsupported == () and loaded.flash_bytes == len(data)
    assert loaded.error and "\n" not in loaded.error
    with pytest.raises(tflm.TflmError, match="not a valid TFLite model"):
        tflm.run(data, np.zeros((1, 28, 28, 1), np.int8))


def test_tflm_run_refuses_float_or_misshapen_inputs():
    with pytest.raises(ValueError, match="quantize"):
        tflm.run(CNN, np.zeros((2, 28, 28, 1), np.float32))
    with pytest.raises(ValueError, match="do not fit"):
        tflm.run(CNN, np.zeros((2, 28, 28), np.int8))
    assert tflm.run(CNN, np.zeros((3, 1, 28, 28, 1), np.int8)).shape == (3, 10)


def test_agreement_counts_equal_elements_and_the_largest_step():
    a = np.array([[1, 2, 3, 4]], np.int8)
    b = np.array([[1, 2, 5, -128]], np.int8)
    assert tflm.agreement(a, b) == {"equal_share": 0.5, "max_step_diff": 132}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_vela_puts_every_published_model_on_the_ethos_u55_npu(name):
    report = vela.compile(PUBLISHED[name])
    assert (report.npu_share, report.cpu_ops, report.cpu_op_names) == (1.0, 0, ())
    assert report.npu_ops > 0 and report.cycles > 0 and report.sram_bytes > 0 and report.flash_bytes > 0
    assert report.system_config == "Ethos_U55_High_End_Embedded" and report.memory_mode == "Shared_Sram"
    # inference_time in Vela's CSV is seconds: the cycles at the 500 MHz clock of that system config.
    assert report.inference_ms == pytest.approx(report.cycles / 500e6 * 1e3, rel=1e-3)
    assert report.as_dict()["accelerator"] == "ethos-u55-128"


def test_vela_names_the_ops_it_leaves_to_the_cpu(gelu_gather_tile):
    report = vela.compile(gelu_gather_tile)
    assert report.cpu_ops == 1 and report.cpu_op_names == ("GATHER",)
    assert report.npu_share == report.npu_ops / (report.npu_ops + 1) and 0 < report.npu_share < 1


@pytest.mark.parametrize("data", [b"not a model" * 100, CNN.read_bytes()[:50_000]], ids=["garbage", "truncated"])
def test_vela_failure_is_a_one_line_vela_error(data):
    with pytest.raises(vela.VelaError) as error:
        vela.compile(data)
    assert "\n" not in str(error.value) and str(error.value).startswith("Vela ")
