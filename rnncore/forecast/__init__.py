"""Forecasting many series with one global model on the parallel engine.

:class:`Forecaster` fits a direct multi-horizon ridge readout of a fixed reservoir
(:mod:`~rnncore.forecast.reservoir`, run by :func:`rnncore.run`), calendar and
exogenous features, by a distributed reduction over Dask blocks, with
split-conformal prediction intervals; :func:`backtest` evaluates it by rolling
origins beside a seasonal-naive baseline, and :func:`backtest_table` tabulates it.
"""

from .backtest import backtest, backtest_table
from .forecaster import Forecaster

__all__ = ["Forecaster", "backtest", "backtest_table"]
