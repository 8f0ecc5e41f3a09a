"""Training over Dask on a LocalCluster equals training in memory, for every chunking."""

import dask
import dask.array as da
import dask.threaded
import numpy as np
import pytest
import xarray as xr

from rnncore import InputError, Model, train
from rnncore.grad.chunked import value_and_grad_chunked
from rnncore.states import pack_states
from tests.rnncore.reference import rel_err

TOL = 1e-12  # float64, relative


def _data(n_series, n_steps, seed=0):
    """Sines of random phases and frequencies, NaN at some inputs and some targets."""
    rng = np.random.default_rng(seed)
    t = np.arange(float(n_steps))
    values = np.sin(rng.uniform(0.1, 0.5, (n_series, 1)) * t + rng.uniform(0, 6, (n_series, 1)))
    y = xr.DataArray(values, dims=("series", "time"), name="y")
    target = y.shift(time=-1).where(rng.uniform(size=values.shape) > 0.1)
    return y.where(rng.uniform(size=values.shape) > 0.1), target


def _model(cell, seed=1):
    return Model.init(cell, 1, [4, 3], 1, dtype=np.float64, seed=seed)


def _assert_same_run(got, expected):
    for key, value in expected.model.state_dict().items():
        assert rel_err(got.model.state_dict()[key], value) < TOL, key
    for name in ("train_loss", "validation_loss"):
        assert rel_err(got.history[name], expected.history[name]) < TOL, name


OPTIONS = {"epochs": 2, "lr": 0.02, "progress": False}

cluster = pytest.mark.slow  # a LocalCluster and a few dozen round trips to it


@cluster
@pytest.mark.parametrize(
    ("cell", "method", "shape", "chunks", "options"),
    [
        # linear-state, time chunks stitched by the prefix tree; 3 + 4 + 4 uneven chunks
        ("MinGRU", "prefix_scan", (11, 31), {"series": 4, "time": 7}, {"window": 16}),
        # nonlinear, adjoints carried; uneven chunks of every length, prime ones included
        ("GRU", "auto", (7, 29), {"series": (2, 4, 1), "time": (5, 11, 1, 12)}, {"window": 15}),
        # steps and series of one: a chunk per value
        ("MinLSTM", "parallel", (4, 9), {"series": 1, "time": 1}, {"window": 5}),
        ("LSTM", "sequential", (3, 9), {"series": 1, "time": 1}, {}),
        # full-sequence gradients of all the training series: one step per epoch
        ("QRNN", "auto", (9, 37), {"series": 5, "time": 17}, {"batch_series": None}),
        ("Elman", "auto", (6, 23), {"series": 2, "time": 3}, {"split_by": "time"}),
        # a decay per unit, up to 0.999: Adam's steps projected back below 1
        (
            "DiagonalLinear",
            "prefix_scan",
            (5, 26),
            {"series": (2, 3), "time": (7, 2, 13, 4)},
            {"window": 9, "split_by": "time"},
        ),
    ],
)
def test_training_over_dask_equals_training_in_memory(client, cell, method, shape, chunks, options):
    x, target = _data(*shape)
    options = OPTIONS | {"batch_series": 4, "validation": 0.3} | options
    expected = train(_model(cell), x, target, **options)
    lazy, lazy_target = x.chunk(chunks), target.chunk(chunks)
    got = train(_model(cell), lazy, lazy_target, method=method, **options)
    assert got.history.attrs["method"] == method
    _assert_same_run(got, expected)
    assert expected.history.train_loss[-1] < expected.history.train_loss[0]


@cluster
def test_a_lazy_dataset_with_targets_in_memory(client):
    x, target = _data(8, 30, seed=2)
    ds = xr.Dataset({"x": x.chunk({"series": 3, "time": 11}), "next": target})
    options = OPTIONS | {"batch_series": 5, "window": 12}
    expected = train(_model("MinGRU"), x, target, **options)
    _assert_same_run(train(_model("MinGRU"), ds, "next", **options), expected)


@cluster
def test_the_gradient_function_gets_the_lazy_windows(client):
    x, target = _data(6, 20)
    calls = []

    def grad_fn(model, x, target, h0=None, mask=None):
        calls.append((type(x), x.chunks[:2], h0 is None))
        packed = None if h0 is None else pack_states(model, h0)
        return value_and_grad_chunked(model, x, target, packed, mask)

    train(
        _model("GRU"), x.chunk({"series": 2, "time": 6}), target, grad_fn=grad_fn,
        validation=None, batch_series=None, window=8, **OPTIONS,
    )  # fmt: skip
    # all 6 series in one batch; windows of 8, 8 and 4 steps cut across chunks of 6
    assert calls[:3] == [
        (da.Array, ((6, 2), (2, 2, 2)), True),
        (da.Array, ((4, 4), (2, 2, 2)), False),
        (da.Array, ((2, 2), (2, 2, 2)), False),
    ]
    assert len(calls) == 6


def _nbytes(value):
    """The bytes of the arrays (and byte strings) in a nested result."""
    if isinstance(value, dict):
        return sum(_nbytes(v) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(_nbytes(v) for v in value)
    return len(value) if isinstance(value, bytes) else np.asarray(value).nbytes


def test_only_parameter_sized_results_come_back():
    """Every computation returns at most a few hundred numbers; the data are 24,000."""
    x, target = _data(6, 2000)
    returned = []

    def get(dsk, keys, **kwargs):
        results = dask.threaded.get(dsk, keys, **kwargs)
        returned.append(_nbytes(results))
        return results

    lazy, lazy_target = x.chunk({"series": 2, "time": 500}), target.chunk({"time": 300})
    with dask.config.set(scheduler=get):
        train(
            _model("MinGRU"), lazy, lazy_target, batch_series=3, window=1000, validation=None,
            **OPTIONS,
        )  # fmt: skip
    # the targets per window, the fingerprint (a digest per block), the losses of 3 epochs
    # (0: before training), 2 epochs x 2 batches x 2 windows (the first with its end states)
    assert len(returned) == 1 + 1 + 3 + 8
    assert max(returned) < 2_000 < 8 * x.size


@cluster
def test_a_resumed_run_over_dask_equals_an_uninterrupted_one(client, tmp_path):
    x, target = _data(5, 20)
    x, target = x.chunk({"series": 3, "time": 7}), target.chunk({"series": 3, "time": 7})
    options = OPTIONS | {"batch_series": 4, "window": 12}
    whole = train(_model("MinGRU"), x, target, **options | {"epochs": 3})
    path = tmp_path / "run.safetensors"
    train(_model("MinGRU"), x, target, checkpoint=path, **options | {"epochs": 1})
    resumed = train(
        _model("MinGRU"), x, target, checkpoint=path, resume=True, **options | {"epochs": 3}
    )
    for key, value in whole.model.state_dict().items():
        assert np.array_equal(resumed.model.state_dict()[key], value), key
    assert resumed.history.identical(whole.history)
    # the chunks are part of the data's fingerprint, and the method of the run
    with pytest.raises(ValueError, match="other data"):
        rechunked = x.chunk({"time": 10})
        train(_model("MinGRU"), rechunked, target, checkpoint=path, resume=True, **options)
    with pytest.raises(ValueError, match=r"other method \(was 'auto', now 'sequential'\)"):
        train(
            _model("MinGRU"), x, target, checkpoint=path, resume=True, method="sequential",
            **options,
        )  # fmt: skip


@pytest.mark.parametrize(
    ("cell", "method", "message"),
    [
        ("GRU", "parallel", r"method='parallel' is not an exact method for this model \(which "
         r"is nonlinear in the state\).*use one of \('auto', 'sequential'\)"),
        ("GRU", "prefix_scan", "method='prefix_scan' is not an exact method"),
        ("MinGRU", "multiple_shooting", r"linear in the state.*'parallel', 'prefix_scan'\)"),
        ("MinGRU", "fast", "method='fast' is not an exact method"),
    ],
)  # fmt: skip
def test_inexact_and_unknown_methods_are_refused(cell, method, message):
    x, target = _data(4, 10)
    for data in (x, x.chunk({"time": 5})):  # checked in memory too, before any work
        with pytest.raises(InputError, match=message):
            train(_model(cell), data, target, method=method, **OPTIONS)
