"""User-facing errors: the CLI prints their message without a traceback and exits non-zero."""

from __future__ import annotations

import errno
import importlib
import os
from pathlib import Path
from types import ModuleType


class TrashsegError(Exception):
    """A mistake in the user's input (file, id, config key) with a message that says what to do."""


class ModelNotFoundError(TrashsegError):
    """No model where one was asked for: no such run folder, checkpoint or ONNX file, or a run without checkpoints."""


class MissingExtra(TrashsegError):
    """An optional part of trashseg (an extra in pyproject.toml) is used but its packages are not installed."""


class NoImagesFound(TrashsegError):
    """``predict --images`` was given a folder or pattern that holds no image files."""


class VideoError(TrashsegError):
    """A video (``predict --images clip.mp4``) that cannot be opened, or that breaks off before its end."""


class UnreadableImages(TrashsegError):
    """Some images of a folder could not be used: each is listed; every other image was processed."""


class DiskFull(TrashsegError):
    """An output could not be written: no space left on its disk, or over the user's quota. Outputs are written
    through a temporary and renamed (``trashseg.fileio``), so nothing half-written is left and a rerun resumes."""


def disk_full(exc: BaseException, path: str | os.PathLike | None) -> DiskFull | None:
    """`exc` as the named error when it is ENOSPC or EDQUOT (writing `path`); None for any other error."""
    if not isinstance(exc, OSError) or exc.errno not in (errno.ENOSPC, errno.EDQUOT):
        return None
    quota = exc.errno == errno.EDQUOT
    if path:
        why = "over your disk quota there" if quota else "no space left on its disk"
        where = f"{Path(path).parent} is full ({why}): cannot write {Path(path).name}"
    else:
        where = f"an output's disk is {'over your quota' if quota else 'full'}"
    return DiskFull(
        f"{where}. Nothing half-written is left and the outputs finished before it are kept: free some space (or "
        "write to a folder on another disk) and rerun the same command to resume (train: with --resume)"
    )


def require_extra(module: str, extra: str, feature: str) -> ModuleType:
    """Import `module`, or say which extra brings it: a raw ModuleNotFoundError names a package, not the fix."""
    try:
        importlib.import_module(module.split(".")[0])  # a cached submodule must not hide a missing package
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or module.split(".")[0] != exc.name.split(".")[0]:
            raise  # the module is there but one of its own imports is broken: not a missing extra
        raise MissingExtra(
            f'{feature} needs the optional package {exc.name!r}: pip install "trashseg[{extra}]"'
        ) from None


def user_message(exc: Exception) -> str:
    """The message of `exc` as raised. A DataLoader re-raises a worker's error as a new exception of the same class
    whose message is "Caught X in DataLoader worker process N. Original Traceback ..." : the original message is
    what follows the traceback's last ``module.X: `` line."""
    text = str(exc)
    cls = type(exc)
    if not text.startswith(f"Caught {cls.__name__} in DataLoader worker process"):
        return text
    name = cls.__qualname__ if cls.__module__ in ("builtins", "__main__") else f"{cls.__module__}.{cls.__qualname__}"
    return text.rpartition(f"\n{name}: ")[2].rstrip("\n") or text
