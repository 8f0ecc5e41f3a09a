"""Forecasting many series with one global model on the parallel engine.

:class:`Forecaster` fits a direct multi-horizon ridge readout of each origin's lag
window and a fixed reservoir's moving averages (run by :func:`rnncore.run`), both
normalised by the window's own level and spread, predicting corrections to seasonal
naive; it is fitted by a distributed reduction over Dask blocks, with conformal
intervals calibrated by blocked cross-validation. It takes xarray Datasets or long
frames in StatsForecast's shape (:mod:`~rnncore.forecast.frame`) at any regular
pandas frequency (:mod:`~rnncore.timeaxis`). :func:`backtest` evaluates it
by rolling origins beside a seasonal-naive baseline, and :func:`backtest_table`
tabulates it.
"""

from .backtest import backtest, backtest_table
from .forecaster import Forecaster

__all__ = ["Forecaster", "backtest", "backtest_table"]
