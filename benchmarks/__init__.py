"""Benchmarks of rnnflow: each row a ratio to a peer measured side by side in the same run.

Run ``python -m benchmarks.run [--quick] [--json PATH]``; see :mod:`benchmarks.run`.
"""
