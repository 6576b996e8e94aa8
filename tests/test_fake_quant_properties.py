"""Property tests of fake quantization.

1. TensorFlow's fake-quant kernels against a NumPy reference of their nudging and rounding.
2. This project's quantizers (``RangeQuantizer``, ``weight_quantizer``) against TensorFlow's ops.
3. Learned ranges: their straight-through gradients, and that they train.

Sections 2 and 3 test the quantizers of this process's engine: Keras 3's (qatzoo/quant/keras3.py) here, and
tfmot's (qatzoo/quant/configs.py) where tests/test_tfmot_engine.py runs this file with QATZOO_ENGINE=tfmot.

The reference follows ``tensorflow/core/kernels/fake_quant_ops_functor.h`` as built into TF 2.21, in
float32, operation by operation, so the comparisons are exact (``assert_array_equal``), not within a
tolerance. Two details of the TF 2.21 kernels matter for bit-exactness and differ from the textbook
``q = floor((clamped - nudged_min) / scale + 0.5); out = q * scale + nudged_min``:

* the output is ``floor((clamped - nudged_min) / scale - quant_zero + 0.5) * scale`` with
  ``quant_zero = floor(-nudged_min * inv_scale + 0.5)``, i.e. the integer is re-centred on the zero
  point before it is scaled (zero comes out as exactly ``0 * scale``). The textbook form agrees up to
  float rounding almost everywhere but lands one whole step off on some near-ties;
* ``inv_scale = (quant_max - quant_min) / (max - min)`` is computed on its own (not ``1 / scale``);
  the per-tensor kernel (FakeQuantWithMinMaxVars) divides by ``scale`` while the per-channel kernel
  multiplies by ``inv_scale``. The two differ on a few near-ties, so the per-channel op is compared
  with the per-channel flavour of the reference (``per_channel_kernel=True``), channel by channel.

Both kernels return zeros for ``min == max == 0``.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qatzoo.keras import KERAS3, keras
from qatzoo.quant.schemes import engine_module, scheme
from qatzoo.quant.spec import Bits

f32 = np.float32
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- NumPy reference of tensorflow/core/kernels/fake_quant_ops_functor.h -----------------------------


def quant_limits(num_bits: int, narrow_range: bool) -> tuple[int, int]:
    return (1 if narrow_range else 0), 2**num_bits - 1


def _std_round(v: np.float32) -> np.float32:
    """C's ``std::round`` (half away from zero) for v >= 0; ``np.round`` rounds half to even."""
    low = np.floor(v)
    return f32(low + (1.0 if v - low >= 0.5 else 0.0))


def nudge(low: float, high: float, num_bits: int, narrow_range: bool):
    """TF's ``Nudge``: (nudged_min, nudged_max, scale, inv_scale, nudged_zero_point), all float32."""
    qmin, qmax = (f32(q) for q in quant_limits(num_bits, narrow_range))
    low, high = f32(low), f32(high)
    scale = f32(f32(high - low) / f32(qmax - qmin))
    inv_scale = f32(f32(qmax - qmin) / f32(high - low))
    zero_point_from_min = f32(qmin - f32(low / scale))
    if zero_point_from_min < qmin:
        zero_point = qmin
    elif zero_point_from_min > qmax:
        zero_point = qmax
    else:
        zero_point = _std_round(zero_point_from_min)
    return f32((qmin - zero_point) * scale), f32((qmax - zero_point) * scale), scale, inv_scale, zero_point


def fake_quant_ref(x, low, high, num_bits=8, narrow_range=False, per_channel_kernel=False):
    """One channel of TF's fake quantization of ``x`` to ``[low, high]``."""
    x = np.asarray(x, f32)
    if f32(low) == 0.0 and f32(high) == 0.0:
        return np.zeros_like(x)
    nudged_min, nudged_max, scale, inv_scale, _ = nudge(low, high, num_bits, narrow_range)
    quant_zero = np.floor(f32(f32(-nudged_min * inv_scale) + f32(0.5)))
    clamped = np.maximum(np.minimum(x, nudged_max), nudged_min)
    shifted = (clamped - nudged_min).astype(f32)
    steps = (shifted * inv_scale if per_channel_kernel else shifted / scale).astype(f32)
    return (np.floor((steps - quant_zero).astype(f32) + f32(0.5)) * scale).astype(f32)


def fake_quant_ref_per_channel(x, lows, highs, num_bits=8, narrow_range=False):
    """The per-channel op: the reference applied to each slice ``x[..., c]``."""
    x = np.asarray(x, f32)
    out = np.empty_like(x)
    for c in range(x.shape[-1]):
        out[..., c] = fake_quant_ref(x[..., c], lows[c], highs[c], num_bits, narrow_range, per_channel_kernel=True)
    return out


def probe_inputs(rng, low, high, num_bits, narrow_range, n=400):
    """Random values around the range plus the awkward ones: grid points, near-ties, bounds, zero."""
    nudged_min, nudged_max, scale, _, _ = nudge(low, high, num_bits, narrow_range)
    qmin, qmax = quant_limits(num_bits, narrow_range)
    span = float(nudged_max - nudged_min)
    k = np.arange(qmax - qmin + 1)
    x = np.concatenate(
        [
            rng.uniform(nudged_min - 0.3 * span - scale, nudged_max + 0.3 * span + scale, n),
            nudged_min + k * scale,
            nudged_min + (k + 0.5) * scale,
            [0.0, -0.0, low, high, nudged_min, nudged_max, np.nextafter(f32(nudged_max), f32(np.inf))],
        ]
    ).astype(f32)
    # TF's CPU kernels flush subnormals to zero (a subnormal above nudged_max = 0 counts as in range);
    # subnormal inputs would test the FPU mode, not the algorithm.
    return np.where(np.abs(x) < np.finfo(f32).tiny, f32(0.0), x)


def symmetric_range(low, high):
    m = max(abs(f32(low)), abs(f32(high)))
    return -m, m


bits_st = st.integers(2, 8)
range_st = st.tuples(st.floats(-8.0, 0.0, width=32), st.floats(0.0, 8.0, width=32)).filter(
    lambda r: r[1] - r[0] >= 1e-2
)
seed_st = st.integers(0, 2**32 - 1)


# --- 1. TensorFlow's kernels against the reference ------------------------------------------------


@SETTINGS
@given(num_bits=bits_st, narrow_range=st.booleans(), bounds=range_st, seed=seed_st)
def test_tf_fake_quant_matches_the_numpy_reference_bit_for_bit(num_bits, narrow_range, bounds, seed):
    low, high = bounds
    x = probe_inputs(np.random.default_rng(seed), low, high, num_bits, narrow_range)
    ours = fake_quant_ref(x, low, high, num_bits, narrow_range)
    theirs = tf.quantization.fake_quant_with_min_max_vars(
        x, f32(low), f32(high), num_bits=num_bits, narrow_range=narrow_range
    ).numpy()
    np.testing.assert_array_equal(theirs, ours)


def test_tf_fake_quant_of_an_all_zero_range_is_zero():
    x = np.linspace(-3, 3, 13, dtype=f32)
    np.testing.assert_array_equal(tf.quantization.fake_quant_with_min_max_vars(x, 0.0, 0.0).numpy(), 0 * x)
    np.testing.assert_array_equal(fake_quant_ref(x, 0.0, 0.0), 0 * x)


@SETTINGS
@given(
    num_bits=bits_st,
    narrow_range=st.booleans(),
    bounds=st.lists(range_st, min_size=1, max_size=5),
    four_d=st.booleans(),
    seed=seed_st,
)
def test_tf_per_channel_fake_quant_is_the_reference_channel_by_channel(num_bits, narrow_range, bounds, four_d, seed):
    rng = np.random.default_rng(seed)
    lows, highs = (np.array(v, f32) for v in zip(*bounds, strict=True))
    # Same bits for every channel, so every column has the same length.
    x = np.stack([probe_inputs(rng, lo, hi, num_bits, narrow_range, n=300) for lo, hi in bounds], axis=-1)
    if four_d:
        x = x.reshape(1, -1, 1, len(bounds))  # [batch, height, width, channels]
    theirs = tf.quantization.fake_quant_with_min_max_vars_per_channel(
        x, lows, highs, num_bits=num_bits, narrow_range=narrow_range
    ).numpy()
    np.testing.assert_array_equal(theirs, fake_quant_ref_per_channel(x, lows, highs, num_bits, narrow_range))
    # And within one grid step of the per-tensor op on each channel (the kernels differ only on near-ties).
    for c, (lo, hi) in enumerate(bounds):
        per_tensor = tf.quantization.fake_quant_with_min_max_vars(
            x[..., c], f32(lo), f32(hi), num_bits=num_bits, narrow_range=narrow_range
        ).numpy()
        scale = nudge(lo, hi, num_bits, narrow_range)[2]
        assert np.abs(np.round(per_tensor / scale) - np.round(theirs[..., c] / scale)).max() <= 1


@SETTINGS
@given(num_bits=bits_st, narrow_range=st.booleans(), bounds=range_st)
def test_fake_quant_grid_has_the_promised_levels_and_an_exact_zero(num_bits, narrow_range, bounds):
    low, high = bounds
    qmin, qmax = quant_limits(num_bits, narrow_range)
    nudged_min, nudged_max, scale, _, zero_point = nudge(low, high, num_bits, narrow_range)
    # The nudged zero point is an integer of the quantized range, and the nudged range holds zero.
    assert zero_point == np.round(zero_point) and qmin <= zero_point <= qmax
    assert nudged_min <= 0.0 <= nudged_max

    levels = qmax - qmin + 1  # 2**bits, or 2**bits - 1 on the narrow grid
    assert levels == (2**num_bits - 1 if narrow_range else 2**num_bits)
    # Spacing well below one step, running past both ends: every level is hit.
    dense = np.linspace(nudged_min - 2 * scale, nudged_max + 2 * scale, 8 * levels + 16, dtype=f32)
    out = tf.quantization.fake_quant_with_min_max_vars(
        dense, f32(low), f32(high), num_bits=num_bits, narrow_range=narrow_range
    ).numpy()
    assert len(np.unique(out)) == levels
    # Every output is an integer multiple of the scale, between the nudged bounds.
    steps = out / scale
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)
    assert np.round(out.min() / scale) == qmin - zero_point and np.round(out.max() / scale) == qmax - zero_point
    # Zero is exactly representable: 0.0 (and -0.0) come back as exactly 0.0.
    zero = tf.quantization.fake_quant_with_min_max_vars(
        np.array([0.0, -0.0], f32), f32(low), f32(high), num_bits=num_bits, narrow_range=narrow_range
    ).numpy()
    np.testing.assert_array_equal(zero, [0.0, 0.0])


@pytest.mark.parametrize("narrow_range", [False, True])
@pytest.mark.parametrize("num_bits", range(2, 9))
def test_zero_point_ties_round_half_away_from_zero(num_bits, narrow_range):
    """A zero point of exactly k + 1/2 rounds up (C's std::round), not to even (NumPy's round): ranges
    with a power-of-two scale make the tie exact in float32. Random ranges almost never hit a tie."""
    qmin, qmax = quant_limits(num_bits, narrow_range)
    scale = 2.0**-3
    for k in sorted({qmin, qmin + 1, (qmin + qmax) // 2, qmax - 1}):
        low, high = f32(-(k - qmin + 0.5) * scale), f32((qmax - k - 0.5) * scale)
        nudged_min, nudged_max, _, _, zero_point = nudge(low, high, num_bits, narrow_range)
        assert zero_point == k + 1
        x = probe_inputs(np.random.default_rng(k), low, high, num_bits, narrow_range)
        out = tf.quantization.fake_quant_with_min_max_vars(
            x, low, high, num_bits=num_bits, narrow_range=narrow_range
        ).numpy()
        np.testing.assert_array_equal(out, fake_quant_ref(x, low, high, num_bits, narrow_range))
        assert out.min() == nudged_min and out.max() == nudged_max


# --- 2. Our quantizers against TensorFlow's ops --------------------------------------------------

ENGINE = engine_module()


class Built:
    """A quantizer of this process's engine with its variables on a bare layer, named as the tests read them
    (``min_var``, ``max_var``, ``seen``); calling it runs the quantizer on its own state."""

    def __init__(self, quantizer, shape, name):
        self.quantizer, self.layer = quantizer, keras.layers.Layer()
        if KERAS3:
            self.state = quantizer.build(self.layer, name, shape)
            self.vars = {"min_var": self.state["min"], "max_var": self.state["max"]}
            self.vars.update({"seen": self.state["seen"]} if "seen" in self.state else {})
        else:
            self.state = self.vars = quantizer.build(shape, name, self.layer)

    def __getitem__(self, key):
        return self.vars[key]

    def __call__(self, x, training):
        return self.quantizer(x, training, self.state)


def _range_quantizer(**kwargs):
    built = Built(ENGINE.RangeQuantizer(**kwargs), None, "t")
    return built, built, built.layer


def _current_range(weights, symmetric):
    low, high = f32(weights["min_var"].numpy()), f32(weights["max_var"].numpy())
    return symmetric_range(low, high) if symmetric else (low, high)


def _assert_is_tf_fake_quant(y, x, weights, symmetric, num_bits, narrow_range):
    """``y`` is TF's fake quantization of ``x`` with the quantizer's current range, and the reference's."""
    low, high = _current_range(weights, symmetric)
    expected = tf.quantization.fake_quant_with_min_max_vars(
        x, low, high, num_bits=num_bits, narrow_range=narrow_range
    ).numpy()
    np.testing.assert_array_equal(np.asarray(y), expected)
    np.testing.assert_array_equal(np.asarray(y), fake_quant_ref(x, low, high, num_bits, narrow_range))


def _batch_range(x):
    return min(f32(x.min()), f32(0.0)), max(f32(x.max()), f32(0.0))


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("estimator", ["ema", "last_value", "fixed", "learned"])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(num_bits=bits_st, narrow_range=st.booleans(), seed=seed_st)
def test_range_quantizer_is_tf_fake_quant_with_its_range(estimator, symmetric, num_bits, narrow_range, seed):
    rng = np.random.default_rng(seed)
    fixed = (-float(rng.uniform(0.0, 4.0)), float(rng.uniform(0.5, 4.0)))
    decay = 0.75
    quantizer, weights, _ = _range_quantizer(
        num_bits=num_bits,
        range=estimator,
        ema_decay=decay,
        symmetric=symmetric,
        narrow_range=narrow_range,
        fixed_range=fixed,
    )

    def batch():
        return rng.normal(rng.uniform(-2, 2), rng.uniform(0.2, 3.0), size=(4, 16)).astype(f32)

    start = (f32(fixed[0]), f32(fixed[1])) if estimator == "fixed" else (f32(-6.0), f32(6.0))
    assert (weights["min_var"].numpy(), weights["max_var"].numpy()) == start

    # First training batch: sets the range (the batch's, widened to hold 0), except for "fixed".
    x1 = batch()
    y1 = quantizer(tf.constant(x1), True)
    first = start if estimator == "fixed" else _batch_range(x1)
    assert (weights["min_var"].numpy(), weights["max_var"].numpy()) == first
    _assert_is_tf_fake_quant(y1, x1, weights, symmetric, num_bits, narrow_range)

    # Second training batch: moving average, last value, or left alone (fixed; learned moves by gradients only).
    x2 = batch()
    y2 = quantizer(tf.constant(x2), True)
    b_low, b_high = _batch_range(x2)
    d = f32(decay)
    second = {
        "ema": (d * first[0] + (f32(1) - d) * b_low, d * first[1] + (f32(1) - d) * b_high),
        "last_value": (b_low, b_high),
        "fixed": first,
        "learned": first,
    }[estimator]
    np.testing.assert_allclose([weights["min_var"].numpy(), weights["max_var"].numpy()], second, rtol=1e-6, atol=1e-7)
    _assert_is_tf_fake_quant(y2, x2, weights, symmetric, num_bits, narrow_range)

    # Inference: the stored range, unchanged by a batch far outside it.
    before = (weights["min_var"].numpy(), weights["max_var"].numpy())
    x3 = 3.0 * batch()
    y3 = quantizer(tf.constant(x3), False)
    assert (weights["min_var"].numpy(), weights["max_var"].numpy()) == before
    _assert_is_tf_fake_quant(y3, x3, weights, symmetric, num_bits, narrow_range)
    # "fixed" never reads the data, so it never marks a batch as seen.
    assert float(weights["seen"].numpy()) == (0.0 if estimator == "fixed" else 1.0)


def tfmot_last_value_range(kernel, num_bits, per_channel, symmetric, narrow_range):
    """The range tfmot's ``quant_ops.LastValueQuantize`` assigns (float32, per output channel or not)."""
    axes = tuple(range(kernel.ndim - 1)) if per_channel else None
    batch_min, batch_max = kernel.min(axis=axes), kernel.max(axis=axes)
    if symmetric:
        ratio = f32(-1.0 if narrow_range else -((1 << num_bits) - 2) / (1 << num_bits))
        # min(batch_min, batch_max / ratio) and max(batch_max, batch_min * ratio): both hold 0.
        low = np.minimum(batch_min, (batch_max / ratio).astype(f32))
        high = np.maximum(batch_max, (batch_min * ratio).astype(f32))
    else:
        low, high = np.minimum(batch_min, f32(0.0)), np.maximum(batch_max, f32(0.0))
    return np.asarray(low, f32), np.asarray(high, f32)


@pytest.mark.parametrize("shape", [(6, 3), (3, 3, 2, 4)], ids=["dense", "conv"])
@pytest.mark.parametrize("per_channel", [True, False])
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(num_bits=bits_st, symmetric=st.booleans(), narrow_range=st.booleans(), seed=seed_st)
def test_weight_quantizer_is_tf_fake_quant_on_the_last_value_range(
    shape, per_channel, num_bits, symmetric, narrow_range, seed
):
    rng = np.random.default_rng(seed)
    bits = Bits(
        weight_bits=num_bits, per_channel=per_channel, weight_symmetric=symmetric, weight_narrow_range=narrow_range
    )
    quantizer = weights = Built(ENGINE.weight_quantizer(bits), shape, "kernel")

    def kernel():
        k = (rng.normal(size=shape) * rng.uniform(0.05, 2.0, size=shape[-1]) + rng.normal(size=shape[-1])).astype(f32)
        k[(0,) * (len(shape) - 1)] = 0.0  # one exact zero per output channel
        return k

    k1 = kernel()
    y1 = quantizer(tf.constant(k1), True).numpy()
    low, high = tfmot_last_value_range(k1, num_bits, per_channel, symmetric, narrow_range)
    np.testing.assert_array_equal(weights["min_var"].numpy(), low)
    np.testing.assert_array_equal(weights["max_var"].numpy(), high)

    def check(y, k):
        if per_channel:
            op = tf.quantization.fake_quant_with_min_max_vars_per_channel
            np.testing.assert_array_equal(y, fake_quant_ref_per_channel(k, low, high, num_bits, narrow_range))
        else:
            op = tf.quantization.fake_quant_with_min_max_vars
            np.testing.assert_array_equal(y, fake_quant_ref(k, low, high, num_bits, narrow_range))
        np.testing.assert_array_equal(y, op(k, low, high, num_bits=num_bits, narrow_range=narrow_range).numpy())
        # A grid of at most 2**bits levels (2**bits - 1 narrow) per channel; zero stays exactly zero.
        levels = 2**num_bits - (1 if narrow_range else 0)
        columns = y.reshape(-1, shape[-1]).T if per_channel else [y.ravel()]
        lows, highs = (np.broadcast_to(v, (len(columns),)) for v in (low, high))
        for c, column in enumerate(columns):
            assert len(np.unique(column)) <= levels
            _, _, scale, _, zero_point = nudge(lows[c], highs[c], num_bits, narrow_range)
            steps = column / scale
            np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)
            qmin, qmax = quant_limits(num_bits, narrow_range)
            assert (qmin - zero_point) <= np.round(steps).min() and np.round(steps).max() <= (qmax - zero_point)
        assert np.all(y[(0,) * (len(shape) - 1)] == 0.0)
        if symmetric and narrow_range:
            # The symmetric narrow grid is -(2**(b-1) - 1) .. 2**(b-1) - 1 steps around an exact zero.
            half = 2 ** (num_bits - 1) - 1
            for c in range(len(columns)):
                scale = nudge(lows[c], highs[c], num_bits, narrow_range)[2]
                assert np.abs(np.round(columns[c] / scale)).max() <= half

    check(y1, k1)
    # Inference reads the stored range; a new kernel does not move it.
    k2 = 1.5 * kernel()
    y2 = quantizer(tf.constant(k2), False).numpy()
    np.testing.assert_array_equal(weights["min_var"].numpy(), low)
    check(y2, k2)


# --- 3. Learned ranges -------------------------------------------------------------------------


def _on_grid_range(rng, num_bits, narrow_range):
    """A range the nudge leaves alone: a power-of-two scale and an integer zero point (exact in float32)."""
    qmin, qmax = quant_limits(num_bits, narrow_range)
    scale = 2.0 ** -int(rng.integers(1, 6))
    zero_point = int(rng.integers(qmin, qmax + 1))
    return f32((qmin - zero_point) * scale), f32((qmax - zero_point) * scale)


def _outside(x, bands, gap):
    """``x`` without the values within ``gap`` of any band ``(a, b)`` (in either order)."""
    keep = np.ones(x.shape, bool)
    for a, b in bands:
        keep &= (x < min(a, b) - gap) | (x > max(a, b) + gap)
    return x[keep]


@pytest.mark.parametrize("symmetric", [False, True])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(num_bits=bits_st, narrow_range=st.booleans(), seed=seed_st)
def test_learned_range_gradients_are_the_straight_through_clip_gradients(symmetric, num_bits, narrow_range, seed):
    """For ``L = sum(w * q(x))`` with a learned range:

    * dL/dx = w where ``nudged_min <= x <= nudged_max``, else 0 (rounding passes the gradient through);
    * dL/dmin = sum of w over x below the nudged range, dL/dmax = sum of w over x above it;
    * symmetric: ``[-m, m]`` with ``m = max(|min|, |max|)``, so the larger of the two variables gets
      ``sign * (dL/dm_high - dL/dm_low)`` and the other nothing.

    These are also checked to be the central finite differences of the straight-through surrogate
    ``S(min, max) = sum(w * clip(x, min, max))`` (no rounding), computed with TF in float64. The
    straight-through estimator treats the nudged bounds as the variables themselves (d nudged / d raw = 1),
    so S uses the raw bounds and the check is made where the two classify every x alike: asymmetric
    ranges are drawn on their own grid (power-of-two scale, integer zero point: the nudge is the
    identity), and x is kept out of the band between a raw bound and its nudged value (symmetric
    full-range grids are always nudged by half a step) and out of the finite-difference step around
    it. The finite difference of ``L`` itself is not used: ``L`` is piecewise constant in the bounds
    between jumps, so its difference quotient is not the straight-through gradient.
    """
    rng = np.random.default_rng(seed)
    quantizer, weights, _ = _range_quantizer(
        num_bits=num_bits, range="learned", symmetric=symmetric, narrow_range=narrow_range
    )
    assert weights["min_var"].trainable and weights["max_var"].trainable and not weights["seen"].trainable
    # The first training batch sets the clip values; the later ones leave them to the optimizer.
    quantizer(tf.constant(rng.normal(size=(32,)).astype(f32)), True)
    assert float(weights["seen"].numpy()) == 1.0

    low, high = _on_grid_range(rng, num_bits, narrow_range)
    if symmetric:  # make |min| != |max| so max() has one winner
        low = f32(low if abs(low) != abs(high) else low * 0.5)
    weights["min_var"].assign(low)
    weights["max_var"].assign(high)
    eff_low, eff_high = symmetric_range(low, high) if symmetric else (low, high)
    nudged_min, nudged_max, *_ = nudge(eff_low, eff_high, num_bits, narrow_range)
    if not symmetric:  # on-grid: the nudge is the identity
        assert (nudged_min, nudged_max) == (low, high)

    span = float(eff_high - eff_low)
    x = rng.uniform(eff_low - span, eff_high + span, 300).astype(f32)
    h = 1e-3 * span
    # No x within the finite-difference step of a bound, nor between a raw bound and its nudged
    # value (there, by design, the straight-through gradient follows the nudged bound).
    x = _outside(x, [(nudged_min, eff_low), (nudged_max, eff_high)], 4 * h)
    w = rng.normal(size=x.shape).astype(f32)
    x_var = tf.Variable(x)
    with tf.GradientTape() as tape:
        y = quantizer(x_var, True)
        loss = tf.reduce_sum(w * y)
    g_min, g_max, g_x = tape.gradient(loss, [weights["min_var"], weights["max_var"], x_var])
    # The range did not move (no optimizer step), and the output is TF's fake quantization.
    assert (weights["min_var"].numpy(), weights["max_var"].numpy()) == (low, high)
    np.testing.assert_array_equal(y.numpy(), fake_quant_ref(x, eff_low, eff_high, num_bits, narrow_range))

    below, above = x < nudged_min, x > nudged_max
    assert below.any() and above.any() and (~below & ~above).any()
    np.testing.assert_array_equal(g_x.numpy(), np.where(below | above, 0.0, w))
    to_low, to_high = float(w[below].sum(dtype=np.float64)), float(w[above].sum(dtype=np.float64))
    if symmetric:
        d_m = to_high - to_low  # low = -m
        expected = (0.0, d_m) if abs(high) > abs(low) else (-d_m, 0.0)
    else:
        expected = (to_low, to_high)
    np.testing.assert_allclose([float(g_min), float(g_max)], expected, rtol=1e-5, atol=1e-5)

    # Central finite differences of the straight-through surrogate S.
    xs, ws = tf.constant(x, tf.float64), tf.constant(w, tf.float64)

    def surrogate(lo, hi):
        if symmetric:
            m = tf.maximum(tf.abs(lo), tf.abs(hi))
            lo, hi = -m, m
        return float(tf.reduce_sum(ws * tf.clip_by_value(xs, lo, hi)))

    lo64, hi64 = tf.constant(float(low), tf.float64), tf.constant(float(high), tf.float64)
    fd_min = (surrogate(lo64 + h, hi64) - surrogate(lo64 - h, hi64)) / (2 * h)
    fd_max = (surrogate(lo64, hi64 + h) - surrogate(lo64, hi64 - h)) / (2 * h)
    np.testing.assert_allclose([float(g_min), float(g_max)], [fd_min, fd_max], rtol=1e-4, atol=1e-4)


@SETTINGS
@given(num_bits=bits_st, narrow_range=st.booleans(), bounds=range_st, seed=seed_st)
def test_tf_fake_quant_range_gradients_use_the_nudged_bounds(num_bits, narrow_range, bounds, seed):
    """At any range (not only on-grid ones), TF sends the gradient of an input to min / max exactly
    when the input lies strictly below / above the reference's *nudged* bounds."""
    low, high = (f32(b) for b in bounds)
    x = probe_inputs(np.random.default_rng(seed), low, high, num_bits, narrow_range)
    w = np.random.default_rng(seed + 1).normal(size=x.shape).astype(f32)
    low_v, high_v, x_v = tf.Variable(low), tf.Variable(high), tf.Variable(x)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(
            w * tf.quantization.fake_quant_with_min_max_vars(x_v, low_v, high_v, num_bits, narrow_range)
        )
    g_min, g_max, g_x = tape.gradient(loss, [low_v, high_v, x_v])
    nudged_min, nudged_max, *_ = nudge(low, high, num_bits, narrow_range)
    below, above = x < nudged_min, x > nudged_max
    np.testing.assert_array_equal(g_x.numpy(), np.where(below | above, 0.0, w))
    np.testing.assert_allclose(float(g_min), w[below].sum(dtype=np.float64), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(float(g_max), w[above].sum(dtype=np.float64), rtol=1e-5, atol=1e-5)


def _tiny_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(1, name="out")(hidden))


def _range_variables(model):
    """``{"hidden/activation_min": variable, ...}``: the output ranges of the fake-quant layers (tfmot names
    them ``post_activation_min``, Keras 3's wrapper ``activation_min``)."""
    ranges = {}
    for layer in ("hidden", "out"):
        for v in model.get_layer(ENGINE.quantized_layer_name(layer)).weights:
            name = v.name.split(":")[0].split("/")[-1]
            for end in ("min", "max"):
                if name in (f"post_activation_{end}", f"activation_{end}"):
                    ranges[f"{layer}/activation_{end}"] = v
    return ranges


def _refs(variables):
    """Variables as a set (by identity: Keras 3's variables have no ``ref()``)."""
    return {id(v) for v in variables}


def test_learned_ranges_are_trainable_and_move_during_training():
    rng = np.random.default_rng(0)
    calibration = rng.normal(size=(64, 4)).astype(f32)
    qat = scheme("t", qat=True, int8=True, range="learned").quantize(_tiny_model(), calibration)
    ranges = _range_variables(qat)
    assert set(ranges) == {f"{layer}/activation_{end}" for layer in ("hidden", "out") for end in ("min", "max")}
    trainable = _refs(qat.trainable_variables)
    assert all(id(v) in trainable for v in ranges.values())
    # The "seen" flags and the weight ranges are not trained.
    assert not any(id(v) in trainable for v in qat.weights if v.name.split(":")[0].endswith(("_seen", "kernel_min")))
    calibrated = {name: float(v.numpy()) for name, v in ranges.items()}
    # Calibration set the ranges from the data (not the [-6, 6] start); relu's output range starts at 0.
    assert calibrated["hidden/activation_min"] == 0.0
    out_low, out_high = calibrated["out/activation_min"], calibrated["out/activation_max"]
    assert -6.0 < out_low < 0.0 < out_high < 6.0

    # A target far outside the calibrated output range: the output clip values must widen.
    x = rng.normal(size=(256, 4)).astype(f32)
    target = (4.0 * x.sum(axis=1, keepdims=True) + 8.0).astype(f32)
    assert target.min() < out_low and target.max() > out_high
    optimizer = keras.optimizers.Adam(0.05)
    out_max_grads = []
    for step in range(40):
        batch = slice((step * 32) % 256, (step * 32) % 256 + 32)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(qat(x[batch], training=True) - target[batch]))
        grads = tape.gradient(loss, qat.trainable_variables)
        by_ref = {id(v): g for v, g in zip(qat.trainable_variables, grads, strict=True)}
        out_max_grads.append(float(by_ref[id(ranges["out/activation_max"])]))
        optimizer.apply_gradients(zip(grads, qat.trainable_variables, strict=True))

    # Outputs clipped at max under a larger target: the loss falls as max rises (negative gradient).
    assert min(out_max_grads) < 0.0, out_max_grads
    trained = {name: float(v.numpy()) for name, v in ranges.items()}
    assert trained["out/activation_max"] > out_high + 0.5, (calibrated, trained)
    assert trained["out/activation_min"] != out_low, (calibrated, trained)
    assert trained["hidden/activation_max"] != calibrated["hidden/activation_max"]


def test_ema_ranges_are_not_trainable():
    calibration = np.random.default_rng(0).normal(size=(64, 4)).astype(f32)
    qat = scheme("t", qat=True, int8=True, range="ema").quantize(_tiny_model(), calibration)
    ranges = _range_variables(qat)
    assert len(ranges) == 4
    trainable, frozen = _refs(qat.trainable_variables), _refs(qat.non_trainable_variables)
    assert not any(id(v) in trainable for v in ranges.values())
    assert all(id(v) in frozen for v in ranges.values())


def test_learned_range_still_holds_zero_after_training():
    """Found by this file: min used to train past 0, and TF's nudge then clipped to [0, max - min]."""
    quantizer, weights, _ = _range_quantizer(num_bits=8, range="learned")
    quantizer(tf.constant([-0.05, 2.0]), True)  # calibration: [-0.05, 2.0]
    x, target = tf.constant([-0.05, 0.5, 1.0, 1.9]), tf.constant([0.5, 0.5, 1.0, 1.9])
    optimizer = keras.optimizers.Adam(0.05)
    variables = [weights["min_var"], weights["max_var"]]
    for _ in range(10):  # the first input wants to be larger: its gradient pushes min up
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(quantizer(x, True) - target))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
    low, high = float(weights["min_var"].numpy()), float(weights["max_var"].numpy())
    # The documented invariant, and an input inside [min, max] coming back within half a step.
    assert low <= 0.0 <= high, (low, high)
    inside = np.float32(1.9)
    assert abs(float(quantizer(tf.constant([inside]), False)[0]) - inside) <= (high - low) / 255 / 2
