"""The built wheel, as a user installs it: it works outside the checkout and installs no
generic top-level names (``flows``, ``tasks``, ``deployments``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: The source folders and their installed names.
PACKAGES = {
    "rnncore": "rnncore",
    "flows": "rnnflow/flows",
    "tasks": "rnnflow/tasks",
    "deployments": "rnnflow/deployments",
}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the packaging inputs (a stale ``build/`` in the
    checkout cannot leak into it, and the checkout is left as it is)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for folder in PACKAGES:
        shutil.copytree(
            ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    done = subprocess.run(
        [*command, "-q", "-w", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [built] = out.glob("rnnflow-*.whl")
    return built


def test_the_development_install_imports_the_checkout_folders():
    import rnnflow.deployments
    import rnnflow.flows
    import rnnflow.tasks

    for module, folder in [
        (rnnflow.flows, "flows"),
        (rnnflow.tasks, "tasks"),
        (rnnflow.deployments, "deployments"),
    ]:
        assert Path(module.__file__).resolve() == ROOT / folder / "__init__.py"


def test_the_wheel_holds_every_package_under_its_installed_name(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert not tops & {"flows", "tasks", "deployments"}
    assert {"rnncore", "rnnflow"} <= tops
    assert "rnnflow/__init__.py" not in names  # an implicit namespace package
    for folder, installed in PACKAGES.items():
        for module in (ROOT / folder).rglob("*.py"):
            relative = module.relative_to(ROOT / folder).as_posix()
            assert f"{installed}/{relative}" in names, f"{module} is not in the wheel"
    assert "rnnflow/deployments/prefect.yaml" in names
    assert {"rnncore/kernels/cuda/scan.cu", "rnncore/kernels/cuda/common.cuh"} <= set(names)
    [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "rnnflow = rnnflow.flows.cli:main" in text


@pytest.mark.slow
def test_the_installed_wheel_works_outside_the_checkout(wheel, tmp_path):
    """Unpacked on ``PYTHONPATH`` (in front of everything), run from an empty directory:
    the generator, the deployments' declarations and the flows import from the wheel."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(site)

    def python(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, *args], cwd=work, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    cli = ["-m", "rnnflow.flows.cli"]
    where = python(
        "-c",
        "import importlib.util, rnncore, rnnflow.flows, rnnflow.tasks, rnnflow.deployments\n"
        "for m in (rnncore, rnnflow.flows, rnnflow.tasks, rnnflow.deployments): print(m.__file__)\n"
        "for name in ('flows', 'tasks', 'deployments'):\n"
        "    spec = importlib.util.find_spec(name)\n"
        "    print(spec.origin if spec else None)\n",
    ).split()
    assert all(path.startswith(str(site)) for path in where[:4]), where
    assert not any(path.startswith(str(site)) for path in where[4:]), where

    assert "data/sample.zarr" in python(*cli, "generate-data", "--help")
    python(*cli, "generate-data", "-n", "3", "-t", "48", "--series-chunk", "3")
    assert (work / "data" / "sample.zarr" / "zarr.json").is_file()

    serve_help = "".join(python(*cli, "serve", "--help").split())  # a long path is wrapped
    assert str(site / "rnnflow" / "deployments" / "prefect.yaml") in serve_help
    declared = python(
        "-c",
        "from rnnflow.deployments.definitions import load_definitions\n"
        "for d in load_definitions(): print(d.name, d.entrypoint, d.parameters['data'])\n",
    )
    entrypoint = "rnnflow.deployments.scheduled:nightly_forecast"
    assert f"nightly-forecast {entrypoint} {work.resolve()}/data/sample.zarr" in declared
    assert "--horizon HORIZON" in python(*cli, "forecast", "--help")
