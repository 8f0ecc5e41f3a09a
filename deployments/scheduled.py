"""The flows the scheduled deployments run: rnnflow's flows with the flow-level retries and
time limit their deployment declares in ``prefect.yaml`` (``flow_options``).

``prefect.yaml``'s entrypoints name these objects
(``rnnflow.deployments.scheduled:nightly_forecast``), so wherever a deployment's run is
loaded (a worker of ``prefect deploy``'s work pool, the subprocess of ``rnnflow serve``)
it gets the declared options; Prefect itself has no deployment field for them. Run
directly (``rnnflow forecast``, ``forecast(...)``), the flows keep their own: no
retries, no time limit.

A run whose flow fails (an exception in its body, a task failing) is retried from the
start after ``retry_delay_seconds``, up to ``retries`` times, in the same flow run; a
run longer than ``timeout_seconds`` fails (and is retried like any failure). A retry
redoes the work and writes the same outputs: the flows are idempotent.
"""

from __future__ import annotations

from typing import Any

from rnnflow.flows.fit import fit
from rnnflow.flows.forecast import forecast

from .definitions import PREFECT_YAML, load_definitions

__all__ = ["flow_options", "nightly_forecast", "weekly_refit"]


def flow_options(deployment: str) -> dict[str, Any]:
    """The ``flow_options`` that rnnflow's ``prefect.yaml`` declares for ``deployment``."""
    for definition in load_definitions(PREFECT_YAML):
        if definition.name == deployment:
            return dict(definition.flow_options)
    raise ValueError(f"{PREFECT_YAML} declares no deployment {deployment!r}")


#: The nightly forecast, with the retries and time limit of ``nightly-forecast``.
nightly_forecast = forecast.with_options(**flow_options("nightly-forecast"))
#: The weekly refit, with the retries and time limit of ``weekly-refit``.
weekly_refit = fit.with_options(**flow_options("weekly-refit"))
