"""The top level: the engine's names, loaded on first use; every module imports on its own."""

import subprocess
import sys

import rnncore


def _python(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout


def test_every_public_name_resolves():
    for name in rnncore.__all__:
        assert getattr(rnncore, name) is not None, name
    assert rnncore.forecast.Forecaster.__module__ == "rnncore.forecast.forecaster"
    assert set(rnncore.__all__) <= set(dir(rnncore))


def test_an_unknown_name_is_an_attribute_error():
    try:
        rnncore.no_such_name  # noqa: B018
    except AttributeError as err:
        assert "no_such_name" in str(err)
    else:
        raise AssertionError("rnncore.no_such_name resolved")


def test_the_scan_alone_imports_neither_dask_nor_the_forecaster():
    heavy = ("dask", "distributed", "numba", "prefect", "rnncore.forecast", "rnncore.labelled")
    code = (
        "import sys, rnncore\n"
        "from rnncore import linear_scan, __version__\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    assert _python(code).strip() == "[]"


def test_importing_rnncore_registers_the_accessor():
    code = "import rnncore, xarray as xr\nprint(hasattr(xr.DataArray([1.0]), 'rnn'))"
    assert _python(code).strip() == "True"


def test_every_module_imports_first_in_a_fresh_interpreter():
    """No import cycle hides behind the order in which the top level used to import."""
    code = """
import importlib, pkgutil, sys, warnings
import rnncore
names = [m.name for m in pkgutil.walk_packages(rnncore.__path__, "rnncore.")]
failed = []
warnings.simplefilter("ignore")
for name in names:
    for loaded in [m for m in sys.modules if m == "rnncore" or m.startswith("rnncore.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except ImportError as err:
        if "cupy" not in str(err):
            failed.append(f"{name}: {err}")
print(len(names))
print("\\n".join(failed))
"""
    out = _python(code).splitlines()
    assert int(out[0]) > 20
    assert [line for line in out[1:] if line] == []
