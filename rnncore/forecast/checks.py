"""The forecasting modules' name for :func:`rnncore.checks.check_int` (defined there only)."""

from __future__ import annotations

from rnncore.checks import check_int

__all__ = ["check_int"]
