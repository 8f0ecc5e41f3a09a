"""Fitting and forecasting on a distributed LocalCluster equal the in-process result."""

import numpy as np
import pytest
import xarray as xr
from distributed import Client, LocalCluster

from rnncore.forecast import Forecaster
from rnncore.synthetic import generate

pytestmark = pytest.mark.slow  # a LocalCluster of worker processes


def test_fit_and_predict_on_a_local_cluster_equal_the_in_process_result():
    ds = generate(16, 24 * 7 * 4, seed=5, n_all_nan=1).chunk({"series": 5, "time": 200})
    local = Forecaster(12, ridge=1e-6)
    expected = local.fit_predict(ds)
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        remote = Forecaster(12, ridge=1e-6).fit(ds)
        forecast = remote.predict(ds)
        assert len(client.scheduler_info()["workers"]) == 2
    np.testing.assert_allclose(remote.coef_, local.coef_, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(remote.quantiles_, local.quantiles_, rtol=1e-9)
    xr.testing.assert_allclose(forecast.drop_attrs(), expected.drop_attrs(), rtol=1e-9)
    assert forecast.all_missing.values.sum() == 1
