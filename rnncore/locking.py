"""One writer per output directory: :func:`output_lock`.

A flow that writes an output directory holds its lock for the whole run: an
advisory :func:`fcntl.flock` on the hidden file ``DIRECTORY/.rnnflow.lock``. A
second run on the same directory, on this machine or another sharing the file
system (Linux NFS emulates ``flock`` with byte-range locks), is refused at once
with :class:`OutputLocked`, whose message names the holder (pid, host, flow,
since when). The kernel releases the lock when the holder's process ends, however
it ends (``SIGKILL`` included): no stale lock to clear by hand. The lock file
stays behind, hidden and harmless; it is never deleted (deleting it while another
process waits on it would let two runs hold locks on two different files).

Once the lock is held, the debris of earlier runs killed while writing (the hidden
temporaries of :mod:`rnncore.storage`) is removed: no other rnnflow writer can be
writing there (:func:`rnncore.storage.remove_debris`).

Object stores and other URLs have no locks: for a URL (other than ``file://``)
:func:`output_lock` locks nothing and cleans nothing; two runs racing for one
prefix end with the last complete write installed (see :mod:`rnncore.storage`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .storage import locate, remove_debris

__all__ = ["LOCK_NAME", "OutputLocked", "output_lock"]

#: The lock file, in the locked directory.
LOCK_NAME = ".rnnflow.lock"


class OutputLocked(RuntimeError):
    """The output directory is in use by another run (see :func:`output_lock`)."""


@contextlib.contextmanager
def output_lock(
    directory: str | os.PathLike[str],
    what: str = "rnnflow",
    storage_options: Mapping[str, Any] | None = None,
) -> Iterator[Path | None]:
    """Hold the lock of the output ``directory`` (created if missing) while inside,
    after removing the debris of killed writers there.

    Parameters
    ----------
    directory
        A local directory or a ``file://`` URL; for any other URL nothing is locked.
    what
        What holds it (a flow's name), recorded in the lock file for messages.
    storage_options
        Options of a URL's file system.

    Yields
    ------
    pathlib.Path or None
        The lock file, or ``None`` for a URL (no lock).

    Raises
    ------
    OutputLocked
        At once, if another process holds the lock.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp, output_lock(tmp) as lock:
    ...     lock.name
    '.rnnflow.lock'
    """
    where = locate(directory, storage_options)
    if where.local is None:
        yield None
        return
    where.local.mkdir(parents=True, exist_ok=True)
    path = where.local / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(os.pread(fd, 4096, 0))
            raise OutputLocked(
                f"output directory {where.local} is in use by another run ({holder}); "
                f"wait for it to end or choose another output (lock: {path})"
            ) from None
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "what": what,
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        remove_debris(where.local)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _describe(content: bytes) -> str:
    """The lock holder, in words, from the lock file's content."""
    try:
        record = json.loads(content)
        return f"{record['what']}, pid {record['pid']} on {record['host']}, since {record['since']}"
    except (ValueError, KeyError, TypeError):
        return "a process that has just taken the lock"
