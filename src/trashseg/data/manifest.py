"""``dataset.yaml``: what a dataset folder says about itself, so that no later command needs its class list typed.

`trashseg convert` writes it beside the COCO file it makes when the class list is the export's own (or a file's);
every command that is given the folder (``--data``) reads it when neither a config nor ``--set`` states
``data.classes``. A dataset without one keeps the configured default, the 11 recycling classes.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from trashseg.config import DataConfig, load_yaml, validate_as
from trashseg.errors import TrashsegError
from trashseg.fileio import atomic_write_text

MANIFEST = "dataset.yaml"
MAX_BYTES = 1 << 20  # a class list of thousands of names fits many times over


def read_classes(root: Path) -> list[str] | None:
    """The class list `root/dataset.yaml` states, validated as ``data.classes`` is; None without the file."""
    path = root / MANIFEST
    if not path.is_file():
        return None
    raw = path.read_bytes()[: MAX_BYTES + 1]
    if len(raw) > MAX_BYTES:
        raise TrashsegError(f"{path}: over {MAX_BYTES} bytes; a dataset manifest holds only its class list")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise TrashsegError(f"{path}: not UTF-8 text") from None
    data = load_yaml(text, str(path))  # the one bounded YAML loader
    if not isinstance(data, dict) or "classes" not in data:
        raise TrashsegError(f"{path}: needs 'classes: [Background, ...]' (the dataset's class list, background first)")
    return validate_as(DataConfig, {"classes": data["classes"]}, str(path)).classes


def write_classes(root: Path, classes: list[str]) -> Path:
    """Record the dataset's class list in `root/dataset.yaml` (replacing an older one)."""
    path = root / MANIFEST
    text = "# written by trashseg convert: the class list every command uses for this folder\n"
    atomic_write_text(path, text + yaml.safe_dump({"classes": classes}, allow_unicode=True, sort_keys=False))
    return path
