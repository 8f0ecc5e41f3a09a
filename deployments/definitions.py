"""The deployments declared in ``prefect.yaml``, read into runnable deployments.

``prefect.yaml`` (at the project root) is the one declaration of rnnflow's
deployments: ``prefect deploy`` reads it for work-pool deployments, and
:func:`runner_deployments` turns it into deployments that ``flow.serve`` /
:func:`prefect.serve` run in-process. Relative paths among the parameters
(:data:`PATH_PARAMETERS`) are taken relative to the file's directory.
"""

from __future__ import annotations

import datetime
import importlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from prefect import Flow
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.schedules import Cron, Interval, Schedule

__all__ = [
    "PATH_PARAMETERS",
    "PREFECT_YAML",
    "Definition",
    "load_definitions",
    "runner_deployments",
]

#: The project's deployment declarations.
PREFECT_YAML = Path(__file__).resolve().parents[1] / "prefect.yaml"
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
        ``path/to/module.py:flow_function``, relative to the project root.
    parameters
        Flow parameters, path parameters made absolute.
    schedules
        Each a mapping with ``cron`` (and optionally ``timezone``) or ``interval``
        (seconds).
    description, tags
        As in the file.
    """

    name: str
    entrypoint: str
    parameters: dict[str, Any] = field(default_factory=dict)
    schedules: list[dict[str, Any]] = field(default_factory=list)
    description: str = ""
    tags: list[str] = field(default_factory=list)

    def flow(self) -> Flow[..., Any]:
        """Import the flow of :attr:`entrypoint` (by module name, as installed)."""
        path, _, name = self.entrypoint.partition(":")
        module = importlib.import_module(Path(path).with_suffix("").as_posix().replace("/", "."))
        flow = getattr(module, name, None)
        if not isinstance(flow, Flow):
            raise ValueError(f"deployment {self.name!r}: {self.entrypoint} is not a Prefect flow")
        return flow

    def schedule_objects(self) -> list[Schedule]:
        """:attr:`schedules` as Prefect schedules."""
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


def load_definitions(path: str | os.PathLike[str] = PREFECT_YAML) -> list[Definition]:
    """Read the deployments of a ``prefect.yaml`` file.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ValueError
        If it declares no deployments, or one lacks a name or entrypoint.
    """
    path = Path(path)
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
            key: str(path.parent / value) if key in PATH_PARAMETERS and value else value
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
        deployments.append(
            flow.to_deployment(
                definition.name,
                schedules=schedules,
                parameters=parameters,
                description=definition.description or None,
                tags=definition.tags,
                entrypoint_type=EntrypointType.MODULE_PATH,
            )
        )
    return deployments
