"""The deployments declared in ``prefect.yaml``, read into runnable deployments.

``prefect.yaml`` (``deployments/prefect.yaml`` in the checkout, package data of
``rnnflow.deployments`` once installed: :data:`PREFECT_YAML`) is the one declaration
of rnnflow's deployments: ``prefect deploy --prefect-file deployments/prefect.yaml``
reads it for work-pool deployments, and :func:`runner_deployments` turns it into
deployments that ``flow.serve`` / :func:`prefect.serve` run in-process. Entrypoints
are module paths (``rnnflow.deployments.scheduled:nightly_forecast``: the flow with the
deployment's ``flow_options``, retries and time limit), so they load wherever rnnflow
is installed. Relative paths among the parameters (:data:`PATH_PARAMETERS`) are
relative to the working directory, as the flows' own defaults are; fsspec URLs
(``s3://...``, ``file://...``) are kept as they are.

Prefect is imported only by what needs it, not by reading the file.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prefect import Flow
    from prefect.deployments.runner import RunnerDeployment
    from prefect.schedules import Schedule

__all__ = [
    "PATH_PARAMETERS",
    "PREFECT_YAML",
    "Definition",
    "load_definitions",
    "runner_deployments",
]

#: The project's deployment declarations: package data of this package.
PREFECT_YAML: Traversable = resources.files(__package__).joinpath("prefect.yaml")
#: Flow parameters that name files or directories.
PATH_PARAMETERS = frozenset({"data", "output", "forecaster", "model"})


@dataclass(frozen=True)
class Definition:
    """One deployment of ``prefect.yaml``.

    Attributes
    ----------
    name
        The deployment's name.
    entrypoint
        ``module:flow_function`` (or ``path/to/module.py:flow_function``), as
        ``prefect deploy`` reads it.
    parameters
        Flow parameters, path parameters made absolute.
    schedules
        Each a mapping with ``cron`` (and optionally ``timezone``) or ``interval``
        (seconds).
    flow_options
        Options of the flow for this deployment's runs (``retries``,
        ``retry_delay_seconds``, ``timeout_seconds``; :meth:`prefect.Flow.with_options`).
        The entrypoint's flow carries them already (:mod:`rnnflow.deployments.scheduled`);
        :meth:`flow` applies them again, for a file whose entrypoints do not.
    description, tags
        As in the file.
    """

    name: str
    entrypoint: str
    parameters: dict[str, Any] = field(default_factory=dict)
    schedules: list[dict[str, Any]] = field(default_factory=list)
    description: str = ""
    tags: list[str] = field(default_factory=list)
    flow_options: dict[str, Any] = field(default_factory=dict)

    def flow(self) -> Flow[..., Any]:
        """Import the flow of :attr:`entrypoint`, as Prefect's workers do."""
        from prefect import Flow
        from prefect.flows import load_flow_from_entrypoint

        flow = load_flow_from_entrypoint(self.entrypoint, use_placeholder_flow=False)
        if not isinstance(flow, Flow):
            raise ValueError(f"deployment {self.name!r}: {self.entrypoint} is not a Prefect flow")
        return flow.with_options(**self.flow_options) if self.flow_options else flow

    def schedule_objects(self) -> list[Schedule]:
        """:attr:`schedules` as Prefect schedules."""
        from prefect.schedules import Cron, Interval

        out = []
        for spec in self.schedules:
            if "cron" in spec:
                out.append(Cron(spec["cron"], timezone=spec.get("timezone")))
            elif "interval" in spec:
                out.append(Interval(datetime.timedelta(seconds=spec["interval"])))
            else:
                raise ValueError(
                    f"deployment {self.name!r}: a schedule needs 'cron' or 'interval'; got {spec}"
                )
        return out


def load_definitions(
    path: str | os.PathLike[str] | Traversable = PREFECT_YAML,
    base: str | os.PathLike[str] | None = None,
) -> list[Definition]:
    """Read the deployments of a ``prefect.yaml`` file.

    Parameters
    ----------
    path
        The file; by default rnnflow's own (:data:`PREFECT_YAML`).
    base
        The directory relative path parameters are relative to (made absolute); by
        default the working directory.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ValueError
        If it declares no deployments, or one lacks a name or entrypoint.
    """
    import yaml

    if isinstance(path, str | os.PathLike):
        path = Path(path)
    base = Path(base if base is not None else os.getcwd()).resolve()
    content = yaml.safe_load(path.read_text()) or {}
    declared = content.get("deployments") or []
    if not declared:
        raise ValueError(f"{path} declares no deployments")
    definitions = []
    for entry in declared:
        if not entry.get("name") or not entry.get("entrypoint"):
            raise ValueError(
                f"{path}: every deployment needs a name and an entrypoint; got {entry}"
            )
        parameters = {
            key: str(base / value) if _is_path(key, value) else value
            for key, value in (entry.get("parameters") or {}).items()
        }
        definitions.append(
            Definition(
                name=entry["name"],
                entrypoint=entry["entrypoint"],
                parameters=parameters,
                schedules=list(entry.get("schedules") or []),
                description=entry.get("description", ""),
                tags=list(entry.get("tags") or []),
                flow_options=dict(entry.get("flow_options") or {}),
            )
        )
    return definitions


def runner_deployments(
    definitions: Sequence[Definition],
    *,
    interval: float | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[RunnerDeployment]:
    """The deployments ``prefect.serve`` runs.

    Parameters
    ----------
    definitions
        From :func:`load_definitions`.
    interval
        Seconds between runs, replacing every declared schedule (for trying things out).
    overrides
        Parameter values by deployment name, replacing the declared ones.

    Raises
    ------
    ValueError
        If an override names an unknown deployment, or the parameters do not fit
        the flow.
    """
    from prefect.deployments.runner import EntrypointType
    from prefect.schedules import Interval

    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - {d.name for d in definitions})
    if unknown:
        raise ValueError(
            f"no deployments named {unknown}; there are {[d.name for d in definitions]}"
        )
    deployments = []
    for definition in definitions:
        flow = definition.flow()
        parameters = {**definition.parameters, **overrides.get(definition.name, {})}
        flow.validate_parameters(parameters)
        schedules = (
            [Interval(datetime.timedelta(seconds=interval))]
            if interval
            else definition.schedule_objects()
        )
        deployment = flow.to_deployment(
            definition.name,
            schedules=schedules,
            parameters=parameters,
            description=definition.description or None,
            tags=definition.tags,
            entrypoint_type=EntrypointType.MODULE_PATH,
        )
        if ".py:" not in definition.entrypoint:
            # the declared object (with its flow options), not the function it wraps
            deployment.entrypoint = definition.entrypoint.replace(":", ".")
        deployments.append(deployment)
    return deployments


def _is_path(key: str, value: Any) -> bool:
    """Whether the parameter ``key=value`` is a path to make absolute (not a URL)."""
    from rnncore.storage import is_url  # not at import: --help reads this module

    return key in PATH_PARAMETERS and bool(value) and not is_url(value)
