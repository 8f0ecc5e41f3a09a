"""Write rnnflow's synthetic sample data to a Zarr store (``rnnflow generate-data``).

Run ``python data/generate.py --help`` for the options; with none it writes
``data/sample.zarr`` beside this script: 2000 hourly series over a year (8760 steps).
The generator itself is installed code, :mod:`rnnflow.flows.generate_data`.
"""

from pathlib import Path

from rnnflow.flows.generate_data import main

if __name__ == "__main__":
    main(default_output=Path(__file__).resolve().parent / "sample.zarr")
