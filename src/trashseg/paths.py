"""Paths built from names we do not control (a COCO ``file_name``) must stay inside their root.

``../../x/secret.jpg`` or ``/etc/passwd`` as a file name would otherwise be read as a training image and written
back as ``masks/../../x/secret.jpg.png``, outside the prediction folder. Symbolic links that lead out of a dataset
are refused too, unless the config allows them (``data.allow_external_links``); outputs never follow them out.
"""

from __future__ import annotations

import os
from pathlib import Path

from trashseg.errors import TrashsegError


def escape(root: Path, name: str, allow_links: bool = False) -> tuple[str, str] | None:
    """How ``root / name`` leaves `root`, as (problem code, explanation), or None when it stays inside.

    ``outside_root``: the name is absolute or has a ``..`` part (even one that comes back: no file name needs it);
    ``external_link``: a symbolic link on the way leads elsewhere (checked only when `allow_links` is false);
    ``bad_file_name``: no file can have the name (a NUL character, too long, a loop of links).
    """
    if os.path.isabs(name) or ".." in Path(name).parts:
        return "outside_root", f"{name!r} is absolute or contains '..'"
    if "\x00" in name:
        return "bad_file_name", f"{name!r} holds a NUL character, which no file name can"
    try:
        os.stat(root / name)  # raises on what is no file name here: too long, a loop of links
    except (FileNotFoundError, NotADirectoryError):
        pass  # a name a file could have: missing files are the callers' to name
    except OSError as exc:
        return "bad_file_name", f"{name[:80]!r} cannot be a file here: {exc.strerror}"
    if not allow_links:
        target = (root / name).resolve()
        if not target.is_relative_to(root.resolve()):
            return "external_link", f"{name!r} leads through a symbolic link to {target}, outside {root}"
    return None


def inside(root: Path, *parts: str) -> Path:
    """``root / part / ...`` for an output (or a file we wrote), refused when it would land outside `root`; an
    absolute part (a file_name) is refused even after a fixed folder, where ``Path`` would silently start over."""
    name = os.path.join(*parts)
    found = escape(root, name)
    if found:
        raise TrashsegError(
            f"{found[1]}: refused (a dataset's file_name must be a relative path without '..', and "
            "outputs never follow symbolic links out of their folder)"
        )
    return root / name
