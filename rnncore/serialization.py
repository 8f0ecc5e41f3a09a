"""Model files: safetensors arrays plus JSON metadata. Loading never executes code.

Every rnnflow file records its ``kind`` (``"model"``, ``"forecaster"``, ...) and a
format version; a file of another kind or a newer version is refused with a
message saying so. Files are local paths or fsspec URLs (a remote file is
downloaded to a temporary local file to be read). Writes go to a temporary file
that is moved into place (:func:`rnncore.storage.write_file`), so an interrupted
save never leaves a complete-looking file.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from .errors import InputError, one_line
from .storage import Location, locate, read_bytes, write_file

__all__ = ["FORMAT_VERSION", "ModelFileError", "read_arrays", "write_arrays"]

#: Version of the file layout written by this rnnflow.
FORMAT_VERSION = 1


class ModelFileError(InputError):
    """A model file is missing, unreadable, truncated or does not describe a valid object
    (an :class:`~rnncore.errors.InputError`, so a :class:`ValueError`)."""


def write_arrays(
    path: str | os.PathLike,
    arrays: dict[str, Any],
    kind: str,
    config: dict,
    *,
    storage_options: Mapping[str, Any] | None = None,
) -> Path | str:
    """Write ``arrays`` and a JSON ``config`` to ``path`` atomically.

    Parameters
    ----------
    path
        Destination file (conventionally ``*.safetensors``): a local path or an
        fsspec URL, with ``storage_options`` for its file system.
    arrays
        Named NumPy arrays.
    kind
        What the file holds, checked again by :func:`read_arrays`.
    config
        JSON-serialisable description needed to rebuild the object.

    Returns
    -------
    pathlib.Path or str
        The written path: a Path if it is local, else the URL.
    """
    metadata = {
        "format": "rnnflow",
        "kind": kind,
        "format_version": str(FORMAT_VERSION),
        "config": json.dumps(config, sort_keys=True),
    }
    tensors = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    return write_file(
        path,
        lambda tmp: _save_canonical(tensors, tmp, metadata),
        storage_options=storage_options,
    )


def _save_canonical(tensors: dict[str, np.ndarray], path: str, metadata: dict[str, str]) -> None:
    """``save_file``, its JSON header then rewritten with sorted keys: safetensors writes
    the metadata in hash-map order, which changes from call to call, and the same arrays
    and config must give the same bytes (reruns are idempotent, byte for byte)."""
    save_file(tensors, path, metadata=metadata)
    with open(path, "rb") as file:
        content = file.read()
    (size,) = struct.unpack("<Q", content[:8])
    header = json.dumps(json.loads(content[8 : 8 + size]), sort_keys=True, separators=(",", ":"))
    header += " " * (-len(header) % 8)  # safetensors pads its header to 8 bytes too
    with open(path, "wb") as file:
        file.write(struct.pack("<Q", len(header)) + header.encode() + content[8 + size :])


def read_arrays(
    path: str | os.PathLike, kind: str, *, storage_options: Mapping[str, Any] | None = None
) -> tuple[dict[str, np.ndarray], dict]:
    """Read a file written by :func:`write_arrays`, checking its kind and version.

    Returns
    -------
    arrays, config
        The named arrays and the decoded JSON config.

    Raises
    ------
    ModelFileError
        If the file is missing, not a safetensors file (or truncated; a Python
        pickle or PyTorch archive is named as such and never unpickled), not an
        rnnflow file of this ``kind``, of a newer format version, or without a JSON
        object as its config.
    """
    where = locate(path, storage_options)
    path = where.returned()
    if not where.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    try:
        with _local_copy(where) as local, safe_open(local, framework="numpy") as f:
            metadata = f.metadata() or {}
            arrays = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        if _looks_pickled(where):
            raise ModelFileError(
                f"{path} is not a readable safetensors file: it is a Python pickle (or a "
                "PyTorch archive holding one), which rnnflow never loads since unpickling "
                "can run code; expected a safetensors file written by rnnflow"
            ) from None
        raise ModelFileError(
            f"{path} is not a readable safetensors file (truncated or corrupt?): {one_line(err)}"
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
        raise ModelFileError(
            f"{path} has no valid JSON config in its metadata: {one_line(err)}"
        ) from None
    if not isinstance(config, dict):
        raise ModelFileError(
            f"{path}: its config is a JSON {type(config).__name__}; expected a JSON object"
        )
    return arrays, config


def _looks_pickled(where: Location) -> bool:
    """Whether the file at ``where`` starts as a pickle (protocol 2 or later) or a zip
    archive (PyTorch's ``.pt``/``.pth``): read as bytes, never unpickled."""
    try:
        with where.open("rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5) or head == b"PK\x03\x04"


@contextlib.contextmanager
def _local_copy(where: Location) -> Iterator[str]:
    """A local path of the file at ``where``: itself, or a temporary download of it."""
    if where.local is not None:
        yield str(where.local)
        return
    with tempfile.TemporaryDirectory(prefix="rnnflow-") as scratch:
        local = os.path.join(scratch, where.name)
        Path(local).write_bytes(read_bytes(where))
        yield local
