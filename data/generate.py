"""Write rnnflow's synthetic sample data to a Zarr store (``rnnflow generate-data``).

Run ``python data/generate.py --help`` for the options; with none it writes
``data/sample.zarr`` beside this script: 2000 hourly series over a year (8760 steps).
The generator itself is installed code, :mod:`rnnflow.flows.generate_data`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rnnflow.flows import generate_data

#: The store written without ``--output``: beside this script.
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "sample.zarr"


def main(argv: Sequence[str] | None = None) -> Path:
    """Parse ``argv`` (the command line if ``None``), write the store, report it; returns
    the store written."""
    return generate_data.main(argv, default_output=DEFAULT_OUTPUT)


if __name__ == "__main__":
    main()
