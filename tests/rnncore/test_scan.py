import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rnncore import IDENTITY, compose, kernels, linear_scan, scan_summary, stitch
from tests.rnncore.reference import rel_err, scan, scan_scalar

TOL = {np.float32: 1e-5, np.float64: 1e-12}


def random_inputs(rng, shape, dtype=np.float64, low=0.0, high=1.0):
    a = rng.uniform(low, high, shape).astype(dtype)
    b = rng.normal(size=shape).astype(dtype)
    return a, b


@st.composite
def partitions(draw, max_length=120):
    """A time length and a partition of it: length-1, prime, uneven and single chunks."""
    sizes = draw(st.lists(st.integers(1, 17), max_size=12))
    if draw(st.booleans()):
        sizes = [1] * draw(st.integers(0, max_length // 4))
    return sum(sizes), sizes


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (7, 3), (257, 5), (1000, 2, 3), (4096, 1)])
def test_linear_scan_matches_sequential_reference(rng, dtype, shape):
    a, b = random_inputs(rng, shape, dtype)
    h0 = rng.normal(size=shape[1:])
    h = linear_scan(a, b, h0)
    assert h.dtype == dtype and h.shape == shape
    assert rel_err(h, scan(a, b, h0)) < TOL[dtype]


def test_linear_scan_million_steps(rng):
    a, b = random_inputs(rng, (10**6,), np.float64, 0.9, 1.0)
    expected = scan_scalar(a, b, 0.5)
    assert rel_err(linear_scan(a, b, 0.5), expected) < 1e-12
    assert rel_err(linear_scan(a.astype(np.float32), b.astype(np.float32), 0.5), expected) < 1e-5


@given(data=st.data(), part=partitions(), dtype=st.sampled_from([np.float32, np.float64]))
def test_any_chunking_equals_unchunked(data, part, dtype):
    length, sizes = part
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    width = data.draw(st.integers(1, 4))
    a, b = random_inputs(rng, (length, width), dtype)
    h0 = rng.normal(size=width)
    whole = linear_scan(a, b, h0, chunk=max(length, 1))
    chunked = linear_scan(a, b, h0, chunk=sizes)
    assert chunked.shape == (length, width)
    if length:
        assert rel_err(chunked, whole) < TOL[dtype]
        assert rel_err(chunked, scan(a, b, h0)) < TOL[dtype]


@given(
    data=st.data(),
    part=partitions(),
    axis=st.sampled_from([0, 1]),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_out_receives_the_same_result_in_place(data, part, axis, dtype):
    length, sizes = part
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    shape = (length, 3) if axis == 0 else (3, length)
    a, b = random_inputs(rng, shape, dtype)
    expected = linear_scan(a, b, 0.5, axis=axis, chunk=sizes or None)
    out = np.full(shape, np.nan, dtype)
    assert linear_scan(a, b, 0.5, axis=axis, chunk=sizes or None, out=out) is out
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize(
    "out",
    [np.zeros((4, 3), np.float32), np.zeros((3, 4)), [[0.0] * 3] * 4],
    ids=["dtype", "shape", "list"],
)
def test_out_must_match_the_result(out):
    with pytest.raises(ValueError, match=r"out is a .*; expected a numpy array of shape \(4, 3\)"):
        linear_scan(np.ones((4, 3)), np.ones((4, 3)), out=out)


@given(length=st.integers(0, 60), chunk=st.integers(1, 70))
def test_integer_chunk_equals_unchunked(length, chunk):
    rng = np.random.default_rng(length * 100 + chunk)
    a, b = random_inputs(rng, (length, 3))
    np.testing.assert_allclose(linear_scan(a, b, chunk=chunk), scan(a, b), rtol=1e-12, atol=1e-14)


def test_underflowing_decay_products_stay_exact(rng):
    a = np.full((10**4, 3), 0.5)
    b = rng.normal(size=a.shape)
    for chunk in (None, 1, 97, 10**4):
        h = linear_scan(a, b, h0=1.0, chunk=chunk)
        assert np.isfinite(h).all()
        assert rel_err(h, scan(a, b, np.ones(3))) < 1e-12
    big_a, big_b = scan_summary(a, b)
    assert (big_a == 0).all() and np.isfinite(big_b).all()
    np.testing.assert_allclose(big_b, scan(a, b)[-1], rtol=1e-12)


@pytest.mark.parametrize("path", kernels.PATHS)
@pytest.mark.parametrize("chunk", [None, 7, [100, 1, 1399]])
def test_entry_states_are_carried_past_chunks_whose_decays_underflow(path, chunk):
    # 0.5 ** 1500 underflows to 0, but 1e300 * 0.5 ** t stays a double: the stitch
    # carries states from chunk to chunk, never multiplying decays across chunks
    a = np.full((1500, 4), 0.5)
    with kernels.use(path):
        h = linear_scan(a, np.zeros_like(a), h0=1e300, chunk=chunk)
    expected = scan(a, np.zeros_like(a), np.full(4, 1e300))
    assert expected[-1, 0] > 1e-160 and 0.5**1500 == 0
    np.testing.assert_allclose(h, expected, rtol=1e-12)


def test_time_axis_of_length_zero():
    h = linear_scan(np.ones((0, 4)), np.ones((0, 4)), h0=np.ones(4), chunk=3)
    assert h.shape == (0, 4)
    big_a, big_b = scan_summary(np.ones((0, 4)), np.ones((0, 4)))
    np.testing.assert_array_equal(big_a, np.ones(4))
    np.testing.assert_array_equal(big_b, np.zeros(4))


def test_axis_and_broadcasting(rng):
    a = rng.uniform(0, 1, (3, 1, 50))  # time last, decay shared across axis 1
    b = rng.normal(size=(3, 4, 50)).astype(np.float32)
    h = linear_scan(a, b, axis=-1, chunk=7)
    assert h.dtype == np.float32 and h.shape == (3, 4, 50)
    expected = np.moveaxis(scan(np.moveaxis(a, -1, 0), np.moveaxis(b, -1, 0)), 0, -1)
    assert rel_err(h, expected) < 1e-5
    scalar_decay = linear_scan(0.5, np.ones(4))
    np.testing.assert_allclose(scalar_decay, [1, 1.5, 1.75, 1.875])


def test_integer_inputs_are_promoted():
    h = linear_scan(np.ones(3, dtype=int), np.arange(3))
    assert h.dtype == np.float64
    np.testing.assert_array_equal(h, [0, 1, 3])


def test_inputs_are_not_modified(rng):
    a, b = random_inputs(rng, (30, 2))
    h0 = np.ones(2)
    copies = a.copy(), b.copy(), h0.copy()
    linear_scan(a, b, h0, chunk=[10, 3, 17])
    scan_summary(a, b)
    for before, after in zip(copies, (a, b, h0), strict=True):
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"a": np.ones((3, 2)), "b": np.ones((3, 4))}, ValueError, "does not broadcast"),
        ({"a": 0.5, "b": 1.0}, ValueError, "scalars"),
        ({"a": np.ones(3), "b": np.ones(3, complex)}, TypeError, "b has dtype complex128"),
        ({"a": np.ones(3), "b": np.ones(3), "chunk": 0}, ValueError, "positive"),
        ({"a": np.ones(3), "b": np.ones(3), "chunk": [1, 1]}, ValueError, "sum to the time"),
        ({"a": np.ones(3), "b": np.ones(3), "axis": 1}, ValueError, "out of range"),
        ({"a": np.ones((3, 2)), "b": np.ones((3, 2)), "h0": np.ones(3)}, ValueError, "h0"),
    ],
)
def test_bad_arguments_get_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        linear_scan(**kwargs)


@given(st.lists(st.tuples(st.floats(0, 1), st.floats(-5, 5)), min_size=3, max_size=3))
def test_compose_is_associative_with_identity(maps):
    s1, s2, s3 = maps
    left = compose(compose(s1, s2), s3)
    right = compose(s1, compose(s2, s3))
    np.testing.assert_allclose(left, right, rtol=1e-12, atol=1e-12)
    assert compose(IDENTITY, s1) == pytest.approx(s1)
    assert compose(s1, IDENTITY) == pytest.approx(s1)


@given(part=partitions(), seed=st.integers(0, 2**32 - 1))
def test_stitch_gives_the_state_entering_each_chunk(part, seed):
    length, sizes = part
    if not sizes:
        return
    rng = np.random.default_rng(seed)
    a, b = random_inputs(rng, (length, 2))
    h0 = rng.normal(size=2)
    starts = np.cumsum([0, *sizes[:-1]])
    summaries = [
        scan_summary(a[s : s + n], b[s : s + n]) for s, n in zip(starts, sizes, strict=True)
    ]
    entries = stitch(summaries, h0)
    states = np.concatenate([h0[None], scan(a, b, h0)])
    np.testing.assert_allclose(entries, states[starts], rtol=1e-12, atol=1e-13)


def test_summary_maps_start_state_to_end_state(rng):
    a, b = random_inputs(rng, (33, 5))
    h0 = rng.normal(size=5)
    big_a, big_b = scan_summary(a, b)
    np.testing.assert_allclose(big_a * h0 + big_b, linear_scan(a, b, h0)[-1], rtol=1e-12)
    np.testing.assert_allclose(big_a, np.prod(a, axis=0), rtol=1e-12)


def test_stitch_needs_summaries():
    with pytest.raises(ValueError, match="at least one"):
        stitch([])
