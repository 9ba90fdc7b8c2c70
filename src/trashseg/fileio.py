"""Atomic file writes: a crash never leaves a half-written output that a rerun would mistake for a finished one."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def _file_mode() -> int:
    """What open() would give a new file (0666 less the umask); mkstemp's own 0600 would surprise users."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_MODE = _file_mode()


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", durable: bool = True, **kwargs: Any) -> Iterator[IO]:
    """Open a temp file beside `path`; rename it onto `path` only when the block finishes without error.

    ``durable=False`` skips the fsync: right for caches, whose readers rebuild an entry they cannot load.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, _MODE)
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def atomic_write_with(path: str | os.PathLike, writer: Callable[[str], None]) -> None:
    """For libraries that only write to a filename (torch.save, savefig): write to a temp name, then rename.

    The temp name keeps the suffix (some writers pick the format from it) behind a leading dot, so a listing of
    finished outputs must skip hidden files; prefer ``atomic_open`` where the library can write to a file object.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
    try:
        writer(str(tmp))
        with open(tmp, "rb") as fh:  # durable like atomic_open: a rename of unsynced data can survive as 0 bytes
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def jsonable(obj: Any) -> Any:
    """`obj` as it will read back from JSON (tuples → lists, Paths → str, numpy → Python), for comparisons."""
    return json.loads(json.dumps(obj, default=_json_default))


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy scalars and arrays
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")
