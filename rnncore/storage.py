"""Where rnnflow's data live, and the one way they are written: never half-written.

Locations
---------
A location is a local path (``str`` or ``os.PathLike``) or an fsspec URL:
``memory://``, ``s3://``, ``gs://``, ``file://`` or any other protocol fsspec knows.
Plain paths and ``file://`` URLs are local and handled with :mod:`pathlib` and
:mod:`os`; other URLs go through fsspec (Zarr and pandas use it for them too), with
``storage_options`` (credentials, endpoint, ...) passed to the file system. A
protocol needs its fsspec implementation installed: ``s3fs`` for ``s3://``,
``gcsfs`` for ``gs://``; without it, an :class:`ImportError` names the package.

The write pattern
-----------------
Every rnnflow writer (datasets, tables, model files, reports) goes through
:func:`write_file` (one file) or :func:`write_store` (a directory tree: a Zarr
store). Both write the whole thing to a hidden temporary sibling of the target,
``.NAME.tmp-XXXXXXXX``, and install it on the target only once it is complete; a
write that fails removes its temporary, and a process killed outright leaves it
behind, hidden.

On a local file system the temporary is renamed onto the target (``os.replace``:
atomic, the temporary being in the same directory). A file replaces a file at
once. An existing directory (store) is first renamed aside
(``.NAME.old-XXXXXXXX``) and deleted once the new one is in place: at every moment
the target is the old complete version, the new one, or (for the instant between
two renames) absent.

Object stores (S3, GCS, ...) have no rename, so the guarantee is weaker:

* A file is written locally, uploaded to its temporary sibling and moved onto the
  target (a server-side copy, then the temporary deleted). S3 and GCS make an object
  visible whole or not at all, so a reader sees the old file or the new one.
* A store is written whole to its temporary sibling prefix, then copied object by
  object onto the target: first the old store's root document (``zarr.json``) is
  deleted, then its other objects; then the new store's objects are copied, its
  root document last. A Zarr store does not open without its root document, and
  :func:`rnncore.io.open_dataset` refuses a store without one, so a reader sees the
  old complete store, no store (for as long as the copy takes, not an instant), or
  the new complete store; never a partial store that looks complete. A process
  killed during the copy leaves a target without root document (it does not open;
  the next write with ``overwrite=True`` replaces it).

Neither guards against writers racing for one target (the last install wins), nor
against a reader still reading the old version while it is replaced: the flows hold
the lock of their output directory (:func:`rnncore.locking.output_lock`) for that.

Debris and full disks
---------------------
A writer killed outright (``SIGKILL``, power loss) leaves its hidden temporary, and,
if killed between the two renames of a store, the previous store set aside with the
target absent. :func:`remove_debris` clears a local directory of both, putting a
set-aside store back where its target is missing; it is for a directory no other
writer is writing to, and the flows call it once they hold the directory's lock.
A local write that runs out of space (``ENOSPC``, ``EDQUOT``, or ``EFBIG`` past a
file size limit) removes its temporary and raises an :class:`OSError` with the
same ``errno`` saying so, naming the target, which keeps its previous version.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import IO, Any

import fsspec
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

__all__ = [
    "ROOT_DOCUMENT",
    "Location",
    "is_url",
    "join",
    "locate",
    "read_bytes",
    "remove_debris",
    "with_suffix",
    "write_file",
    "write_store",
]

#: The object of a Zarr store (format 3) copied last onto an object store.
ROOT_DOCUMENT = "zarr.json"

#: The package to install for the usual protocols fsspec implements elsewhere.
_PACKAGES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs"}


def is_url(target: str | os.PathLike[str]) -> bool:
    """Whether ``target`` is a URL (``protocol://...``) rather than a plain path."""
    return isinstance(target, str) and "://" in target


class Location:
    """A target resolved: a local :class:`~pathlib.Path`, or a file system and its path.

    Attributes
    ----------
    url
        The target as given, as a string (for messages and return values).
    local
        A :class:`~pathlib.Path` for a local target (a plain path or a ``file://``
        URL), else ``None``.
    fs, path
        The fsspec file system and the path on it of a remote target (``None`` and
        ``""`` for a local one).
    storage_options
        Keyword arguments of the file system (for Zarr, xarray and pandas).
    """

    def __init__(
        self, target: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None
    ) -> None:
        self.url = os.fspath(target)
        self.storage_options = dict(storage_options or {})
        self.fs: fsspec.AbstractFileSystem | None = None
        self.path = ""
        self.local: Path | None = None
        if not is_url(target):
            self.local = Path(target)
            return
        try:
            fs, path = url_to_fs(self.url, **self.storage_options)
        except ImportError as err:
            protocol = self.url.split("://", 1)[0]
            package = _PACKAGES.get(protocol, f"the fsspec implementation of {protocol}://")
            raise ImportError(
                f"{self.url}: {protocol}:// URLs need {package} installed "
                f"(pip install {package}); fsspec says: {err}"
            ) from err
        if isinstance(fs, LocalFileSystem):
            self.local = Path(path)
        else:
            self.fs, self.path = fs, path

    @property
    def target(self) -> str:
        """What Zarr, xarray and pandas open: the local path, or the URL."""
        return str(self.local) if self.local is not None else self.url

    @property
    def open_options(self) -> dict[str, Any]:
        """Their keywords for this file system: ``storage_options`` for a remote one."""
        return {} if self.local is not None else {"storage_options": self.storage_options}

    @property
    def name(self) -> str:
        """The last component of the target."""
        return self.local.name if self.local is not None else PurePosixPath(self.path).name

    def exists(self) -> bool:
        """Whether anything (a file, a store) is at the target."""
        if self.local is not None:
            return os.path.lexists(self.local)
        return self.fs.exists(self.path)

    def is_dir(self) -> bool:
        """Whether the target is a directory (on an object store: a prefix with objects)."""
        return self.local.is_dir() if self.local is not None else self.fs.isdir(self.path)

    def is_file(self) -> bool:
        """Whether the target is a file (an object)."""
        return self.local.is_file() if self.local is not None else self.fs.isfile(self.path)

    def open(self, mode: str = "rb") -> IO[Any]:
        """The target opened (locally with :func:`open`, else through fsspec)."""
        if self.local is not None:
            return open(self.local, mode)
        return self.fs.open(self.path, mode)

    def child(self, name: str) -> Location:
        """The location ``name`` inside this one."""
        if self.local is not None:
            return Location(self.local / name)
        return Location(f"{self.url.rstrip('/')}/{name}", self.storage_options)

    def sibling(self, name: str) -> Location:
        """The location ``name`` beside this one (in the same directory or prefix)."""
        if self.local is not None:
            return Location(self.local.with_name(name))
        head = self.url.rstrip("/").rpartition("/")[0]
        return Location(f"{head}/{name}", self.storage_options)

    def returned(self) -> Path | str:
        """What writers return: the local :class:`~pathlib.Path`, else the URL."""
        return self.local if self.local is not None else self.url


def locate(
    target: str | os.PathLike[str] | Location, storage_options: Mapping[str, Any] | None = None
) -> Location:
    """``target`` resolved to a :class:`Location` (see the module docstring).

    Raises
    ------
    ImportError
        If the URL's protocol needs a package that is not installed (the message
        names it: ``s3fs``, ``gcsfs``, ...).
    ValueError
        If fsspec does not know the URL's protocol.
    """
    if isinstance(target, Location):
        return target
    return Location(target, storage_options)


def read_bytes(
    target: str | os.PathLike[str] | Location, storage_options: Mapping[str, Any] | None = None
) -> bytes:
    """The contents of the file at ``target`` (a local path or an fsspec URL).

    Raises
    ------
    FileNotFoundError
        If there is no file at ``target``.

    Examples
    --------
    >>> url = write_file("memory://rnnflow-doc/a.txt", lambda t: Path(t).write_text("ok"))
    >>> url, read_bytes(url)
    ('memory://rnnflow-doc/a.txt', b'ok')
    >>> locate(url).fs.rm(locate(url).path)
    """
    where = locate(target, storage_options)
    if where.local is not None:
        return where.local.read_bytes()
    # one call for the whole object: fsspec's memory file system hands every reader the
    # same file object, so readers in several threads must not share a position
    return where.fs.cat_file(where.path)


def join(base: str | os.PathLike[str], name: str) -> Path | str:
    """``base / name``: a :class:`~pathlib.Path` for a local ``base``, a URL for a URL.

    Examples
    --------
    >>> join("out", "a.zarr"), join("memory://out/", "a.zarr")
    (PosixPath('out/a.zarr'), 'memory://out/a.zarr')
    """
    if is_url(base):
        return f"{os.fspath(base).rstrip('/')}/{name}"
    return Path(base) / name


def with_suffix(target: str | os.PathLike[str], suffix: str) -> Path | str:
    """``target`` with its last suffix replaced by ``suffix`` (:meth:`pathlib.Path.with_suffix`),
    a URL staying a URL.

    Examples
    --------
    >>> with_suffix("m/f.safetensors", ".json"), with_suffix("s3://b/f.safetensors", ".json")
    (PosixPath('m/f.json'), 's3://b/f.json')
    """
    if not is_url(target):
        return Path(target).with_suffix(suffix)
    head, _, name = os.fspath(target).rpartition("/")
    return f"{head}/{PurePosixPath(name).with_suffix(suffix)}"


def write_file(
    target: str | os.PathLike[str] | Location,
    write: Callable[[str], object],
    *,
    overwrite: bool = True,
    storage_options: Mapping[str, Any] | None = None,
) -> Path | str:
    """Write one file at ``target`` atomically: ``write(tmp)`` writes it at the local
    path ``tmp``, which is then installed on ``target`` (see the module docstring).

    Missing parent directories of a local target are created.

    Returns
    -------
    pathlib.Path or str
        ``target``: a Path if it is local, else the URL.

    Raises
    ------
    FileExistsError
        If something is at ``target`` and ``overwrite`` is false.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = write_file(f"{tmp}/a/b.txt", lambda t: Path(t).write_text("ok"))
    ...     path.read_text()
    'ok'
    """
    where = locate(target, storage_options)
    _refuse_existing(where, overwrite)
    if where.local is not None:
        _write_local(where.local, write)
        return where.local
    tmp = where.sibling(_hidden(where.name, "tmp"))
    try:
        with tempfile.TemporaryDirectory(prefix="rnnflow-") as scratch:
            local = os.path.join(scratch, where.name)
            write(local)
            where.fs.put_file(local, tmp.path)
        if where.fs.isdir(where.path):
            where.fs.rm(where.path, recursive=True)
        where.fs.mv(tmp.path, where.path)
    except BaseException:
        _remove_remote(tmp)
        raise
    return where.url


def write_store(
    target: str | os.PathLike[str] | Location,
    write: Callable[[str], object],
    *,
    overwrite: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    last: str = ROOT_DOCUMENT,
) -> Path | str:
    """Write a directory tree (a Zarr store) at ``target`` atomically: ``write(tmp)``
    creates it at ``tmp`` (a local path, or a URL on ``target``'s file system with
    the same ``storage_options``), which is then installed on ``target``, on an
    object store with the object ``last`` copied last (see the module docstring).

    Returns
    -------
    pathlib.Path or str
        ``target``: a Path if it is local, else the URL.

    Raises
    ------
    FileExistsError
        If something is at ``target`` and ``overwrite`` is false.
    """
    where = locate(target, storage_options)
    _refuse_existing(where, overwrite)
    if where.local is not None:
        _write_local(where.local, write)
        return where.local
    tmp = where.sibling(_hidden(where.name, "tmp"))
    try:
        write(tmp.url)
        _copy_store(where.fs, tmp.path, where.path, last)
    except BaseException:
        _remove_remote(tmp)
        raise
    _remove_remote(tmp)
    return where.url


def remove_debris(directory: str | os.PathLike[str]) -> list[Path]:
    """Clear the local ``directory`` of what killed writers left there (see the module
    docstring): temporaries (``.NAME.tmp-XXXXXXXX``) are deleted; a set-aside version
    (``.NAME.old-XXXXXXXX``) is put back on ``NAME`` if nothing is there, else deleted.

    Only call it on a directory no other writer is writing to (hold its lock:
    :func:`rnncore.locking.output_lock`): a live writer's temporary would go too.

    Returns
    -------
    list of pathlib.Path
        The targets whose debris was cleared (a restored one included), each once.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = Path(tmp, ".a.zarr.tmp-0123abcd").mkdir()
    ...     [p.name for p in remove_debris(tmp)], os.listdir(tmp)
    (['a.zarr'], [])
    """
    root = Path(directory)
    if not root.is_dir():
        return []
    cleared: dict[Path, None] = {}
    for entry in sorted(root.iterdir()):
        match = _DEBRIS.match(entry.name)
        if match is None:
            continue
        target = root / match["name"]
        if match["tag"] == "old" and not os.path.lexists(target):
            os.replace(entry, target)  # the previous version, whose successor never came
        else:
            _remove(entry)
        cleared[target] = None
    return list(cleared)


# -- internals ----------------------------------------------------------------------


#: The names :func:`_hidden` makes.
_DEBRIS = re.compile(r"^\.(?P<name>.+)\.(?P<tag>tmp|old)-[0-9a-f]{8}$")
#: The errors of a write that ran out of room.
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def _hidden(name: str, tag: str) -> str:
    """A fresh hidden name for a temporary (``tag="tmp"``) or set-aside (``"old"``) ``name``."""
    return f".{name}.{tag}-{uuid.uuid4().hex[:8]}"


def _refuse_existing(where: Location, overwrite: bool) -> None:
    if not overwrite and where.exists():
        shown = where.returned()
        raise FileExistsError(f"{shown} already exists; pass overwrite=True to replace it")


def _write_local(path: Path, write: Callable[[str], object]) -> None:
    """Write to a temporary sibling of ``path`` and rename it onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(_hidden(path.name, "tmp"))
    try:
        write(str(tmp))
        _install(tmp, path)
    except BaseException as error:
        _remove(tmp)
        full = _no_space(error)
        if full is not None:
            raise OSError(
                full.errno,
                f"{path}: not written, the file system is full or a file size limit was "
                f"reached ({os.strerror(full.errno)}); the previous version, if any, is kept",
            ) from error
        raise


def _no_space(error: BaseException) -> OSError | None:
    """The out-of-space :class:`OSError` that caused ``error`` (itself, or one it was
    raised from: Zarr and others wrap it), or ``None``."""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, OSError) and error.errno in _NO_SPACE:
            return error
        error, seen = error.__cause__ or error.__context__, seen + 1
    return None


def _install(tmp: Path, path: Path) -> None:
    """Move the complete ``tmp`` onto ``path``, replacing what is there."""
    if not os.path.lexists(path) or (tmp.is_file() and not path.is_dir()):
        os.replace(tmp, path)
        return
    old = path.with_name(_hidden(path.name, "old"))
    os.replace(path, old)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.replace(old, path)
        raise
    _remove(old)


def _remove(path: Path) -> None:
    """Delete a file or directory tree, if there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        path.unlink()


def _remove_remote(where: Location) -> None:
    """Delete a remote object or prefix, if there; errors are ignored (cleanup only)."""
    try:
        if where.fs.exists(where.path):
            where.fs.rm(where.path, recursive=True)
    except Exception:  # best effort: the temporary is hidden
        pass


def _copy_store(fs: fsspec.AbstractFileSystem, tmp: str, path: str, last: str) -> None:
    """Replace the tree at ``path`` by a copy of the tree at ``tmp``, ``last`` copied last
    and the old tree's ``last`` deleted first (see the module docstring)."""
    if fs.exists(path):
        old_last = f"{path}/{last}"
        if fs.exists(old_last):
            fs.rm_file(old_last)
        fs.rm(path, recursive=True)
    sources = sorted(fs.find(tmp))
    first = [src for src in sources if src != f"{tmp}/{last}"]
    destinations = [path + src[len(tmp) :] for src in first]
    if first:
        fs.copy(first, destinations)
    if len(first) < len(sources):
        fs.copy(f"{tmp}/{last}", f"{path}/{last}")
