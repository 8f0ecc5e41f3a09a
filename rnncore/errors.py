"""rnnflow's error for bad input: data, files and model files it refuses.

Every reader of rnncore (long-format tables, Zarr stores and NetCDF files, model
and forecaster files) raises :class:`InputError` for input it cannot use, with a
one-line message naming what is wrong and what was expected; the input is left as
it was and nothing is written. It is a :class:`ValueError`, so ``except ValueError``
catches it too. :class:`rnncore.serialization.ModelFileError` is the kind raised for
model files.
"""

from __future__ import annotations

import re

__all__ = ["InputError", "one_line"]


class InputError(ValueError):
    """Input rnnflow refuses: a malformed table, dataset or model file."""


def one_line(err: BaseException | str) -> str:
    """The first line of an error's message (pandas and others add advice below it).

    Examples
    --------
    >>> one_line(ValueError("bad value. You might want to try:\\n  - this"))
    'bad value'
    """
    text = str(err).strip()
    line = text.splitlines()[0] if text else type(err).__name__
    return re.sub(r"[.,]? You might want to try:$", "", line)
