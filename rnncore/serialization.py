"""Model files: safetensors arrays plus JSON metadata. Loading never executes code.

Every rnnflow file records its ``kind`` (``"model"``, ``"forecaster"``, ...) and a
format version; a file of another kind or a newer version is refused with a
message saying so. Writes go to a temporary file that is renamed into place, so an
interrupted save never leaves a complete-looking file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

__all__ = ["FORMAT_VERSION", "ModelFileError", "read_arrays", "write_arrays"]

#: Version of the file layout written by this rnnflow.
FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """A model file is missing, unreadable, truncated or does not describe a valid object."""


def write_arrays(path: str | os.PathLike, arrays: dict[str, Any], kind: str, config: dict) -> Path:
    """Write ``arrays`` and a JSON ``config`` to ``path`` atomically.

    Parameters
    ----------
    path
        Destination file (conventionally ``*.safetensors``).
    arrays
        Named NumPy arrays.
    kind
        What the file holds, checked again by :func:`read_arrays`.
    config
        JSON-serialisable description needed to rebuild the object.

    Returns
    -------
    Path
        The written path.
    """
    path = Path(path)
    metadata = {
        "format": "rnnflow",
        "kind": kind,
        "format_version": str(FORMAT_VERSION),
        "config": json.dumps(config, sort_keys=True),
    }
    tensors = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_arrays(path: str | os.PathLike, kind: str) -> tuple[dict[str, np.ndarray], dict]:
    """Read a file written by :func:`write_arrays`, checking its kind and version.

    Returns
    -------
    arrays, config
        The named arrays and the decoded JSON config.

    Raises
    ------
    ModelFileError
        If the file is missing, not a safetensors file (or truncated), not an
        rnnflow file of this ``kind``, or of a newer format version.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    try:
        with safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata() or {}
            arrays = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelFileError(
            f"{path} is not a readable safetensors file (truncated or corrupt?): {err}"
        ) from None
    if metadata.get("format") != "rnnflow" or metadata.get("kind") != kind:
        raise ModelFileError(
            f"{path} is not an rnnflow {kind} file "
            f"(format={metadata.get('format')!r}, kind={metadata.get('kind')!r})"
        )
    version = metadata.get("format_version", "")
    if not version.isdigit() or int(version) > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} has format version {version!r}; this rnnflow reads up to {FORMAT_VERSION}"
        )
    try:
        config = json.loads(metadata["config"])
    except (KeyError, json.JSONDecodeError) as err:
        raise ModelFileError(f"{path} has no valid JSON config in its metadata: {err}") from None
    return arrays, config
