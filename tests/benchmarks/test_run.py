"""The benchmark suite runs end to end (small shapes) and reports every row.

No timing is asserted: only that each row is measured and reported sensibly.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # runs every benchmark row
def test_quick_benchmark_reports_every_row(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    rows = report["rows"]
    assert {r["row"].split()[0] for r in rows} == {str(k) for k in range(1, 11)}
    for r in rows:
        assert math.isfinite(r["ratio"]) and r["ratio"] > 0, r
        assert r["met"] in ((True, False) if r["target"] != "-" else (None,))
        assert r["row"] in done.stdout  # the markdown table names every row
    assert report["context"]["quick"] is True
