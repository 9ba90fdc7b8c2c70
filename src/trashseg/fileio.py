"""Atomic file writes: a crash never leaves a half-written output that a rerun would mistake for a finished one.

Temporaries are hidden files beside their target named ``.<name>.<random>.<pid>@<host>.tmp[<suffix>]``: the
writer's pid and host let the next run of the same job remove what a killed writer left (``remove_stale_temps``)
without touching the temporaries of a writer still at work (on this machine or another one sharing the folder).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from trashseg.errors import TrashsegError, disk_full
from trashseg.procs import process_running


def _file_mode() -> int:
    """What open() would give a new file (0666 less the umask); mkstemp's own 0600 would surprise users."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_MODE = _file_mode()
_HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())
_TEMP_NAME = re.compile(r"^\..+\.(\d+)@([A-Za-z0-9_-]+)\.tmp(\.[^.]*)?$")


def make_folder(folder: Path) -> None:
    """``mkdir -p`` whose failure names the folder and what to do: an output path that is a file, or a place the
    user cannot write to, is a mistake in the command line, not a crash."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocker = next((p for p in (folder, *folder.parents) if p.is_file()), None)
        why = (
            f"{blocker} is a file; give another path or remove that file"
            if blocker
            else f"{exc.strerror}; choose a folder you can write to"
        )
        raise TrashsegError(f"cannot create folder {folder}: {why}") from None


def _temp_beside(path: Path) -> tuple[int, Path]:
    """An open, empty temporary in `path`'s folder, named for ``remove_stale_temps``; keeps `path`'s suffix (some
    writers pick the format from it)."""
    if path.is_dir():
        raise TrashsegError(f"cannot write {path}: it is a folder; give a file path")
    make_folder(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=f".{os.getpid()}@{_HOST}.tmp{path.suffix}", dir=path.parent
        )
    except OSError as exc:  # read-only folder or file system, disk full (no inode left)
        raise disk_full(exc, path) or TrashsegError(
            f"cannot write {path}: {exc.strerror}; choose a folder you can write to"
        ) from None
    os.chmod(tmp, _MODE)
    return fd, Path(tmp)


@contextmanager
def _full_disk_named(path: str | os.PathLike) -> Iterator[None]:
    """ENOSPC / EDQUOT while writing `path` (or syncing, or renaming it) → ``DiskFull`` naming its folder."""
    try:
        yield
    except OSError as exc:
        full = disk_full(exc, path)
        if full is None:
            raise
        raise full from None


def ensure_writable(path: str | os.PathLike) -> None:
    """Fail now, with ``atomic_write_*``'s named error, when `path` could not be written at the end of a long job
    (a folder given for a file, a read-only place): the work before it would be lost."""
    fd, tmp = _temp_beside(Path(path))
    os.close(fd)
    tmp.unlink()


def remove_stale_temps(folder: str | os.PathLike) -> int:
    """Delete the temporaries under `folder` whose writer (on this host) is dead: a SIGKILL skips atomic_open's
    cleanup. Returns how many.

    Called when a job starts or resumes on its output folder, so that a killed run leaves nothing behind once rerun.
    """
    removed = 0
    for path in Path(folder).rglob(".*.tmp*"):
        match = _TEMP_NAME.match(path.name)
        if match and match[2] == _HOST and path.is_file() and not process_running(int(match[1])):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", durable: bool = True, **kwargs: Any) -> Iterator[IO]:
    """Open a temp file beside `path`; rename it onto `path` only when the block finishes without error.

    ``durable=False`` skips the fsync: right for caches, whose readers rebuild an entry they cannot load.
    """
    fd, tmp = _temp_beside(Path(path))
    try:
        with _full_disk_named(path), os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_link(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """`dst` becomes a hard link to `src` (no second copy of large files), or a copy where the file system
    refuses links; either way through a temporary, so `dst` is complete or absent."""
    fd, tmp = _temp_beside(Path(dst))
    os.close(fd)
    try:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            with _full_disk_named(dst):
                shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def atomic_write_with(path: str | os.PathLike, writer: Callable[[str], None]) -> None:
    """For libraries that only write to a filename (torch.save, savefig): write to a temp name, then rename.

    The temp name keeps the suffix behind a leading dot, so a listing of finished outputs must skip hidden files;
    prefer ``atomic_open`` where the library can write to a file object.
    """
    path = Path(path)
    fd, tmp = _temp_beside(path)
    os.close(fd)
    try:
        with _full_disk_named(path):
            writer(str(tmp))
            with open(tmp, "rb") as fh:  # durable like atomic_open: a rename of unsynced data can survive as 0 bytes
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_json_bounded(path: Path, max_bytes: int, what: str) -> Any:
    """A JSON file that someone may have sent (a prediction folder's meta.json, an audit's issues.json): read at
    most `max_bytes` (json.loads holds several times a file's size), and every way it can fail is a named error
    but a missing file (FileNotFoundError: the caller says what its absence means)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise TrashsegError(f"{path}: cannot be read ({exc.strerror})") from None
    if len(raw) > max_bytes:
        raise TrashsegError(f"{path}: larger than {max_bytes} bytes: not {what}")
    try:
        return json.loads(raw)
    except UnicodeDecodeError as exc:
        raise TrashsegError(f"{path}: not UTF-8 text (offset {exc.start}): not {what}") from None
    except ValueError as exc:
        raise TrashsegError(f"{path}: not valid JSON ({exc})") from None
    except RecursionError:  # json recurses once per level of nesting
        raise TrashsegError(f"{path}: nested too deep: not {what}") from None


def jsonable(obj: Any) -> Any:
    """`obj` as it will read back from JSON (tuples → lists, Paths → str, numpy → Python), for comparisons."""
    return json.loads(json.dumps(obj, default=_json_default))


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy scalars and arrays
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")
