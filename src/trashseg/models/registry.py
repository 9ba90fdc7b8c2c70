"""Architecture registry: config names → model constructors, as in timm and smp.

A recipe names its architecture (``model.arch: UPerNet``); ``create_model`` looks it up here, so adding an
architecture means registering it, never editing a chain of ``if`` statements. Every architecture smp ships is
registered under its class name; ours (``OCRNet``, ``FCN``) register themselves with ``@register_arch``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import TypeVar

import segmentation_models_pytorch as smp
from torch import nn

from trashseg.errors import TrashsegError

ArchConstructor = Callable[..., nn.Module]
"""Called as ``constructor(encoder_name=..., encoder_weights=..., in_channels=..., classes=..., **params)``."""

C = TypeVar("C", bound=ArchConstructor)

_ARCHS: dict[str, ArchConstructor] = {}


def register_arch(name: str) -> Callable[[C], C]:
    """Decorator that makes a constructor available as ``model.arch: <name>``."""

    def decorator(constructor: C) -> C:
        if _ARCHS.get(name, constructor) is not constructor:
            raise ValueError(f"architecture {name!r} is already registered by {_ARCHS[name]!r}")
        _ARCHS[name] = constructor
        return constructor

    return decorator


def list_archs() -> list[str]:
    """Names accepted by ``model.arch``, sorted."""
    return sorted(_ARCHS)


def get_arch(name: str) -> ArchConstructor:
    """The constructor registered as `name`; an unknown name is a user error that lists the known ones."""
    try:
        return _ARCHS[name]
    except KeyError:
        by_lower = {known.lower(): known for known in _ARCHS}
        close = difflib.get_close_matches(name.lower(), by_lower, n=1)
        hint = f" Did you mean {by_lower[close[0]]!r}?" if close else ""
        raise TrashsegError(
            f"model.arch: unknown architecture {name!r}.{hint} Known: {', '.join(list_archs())}"
        ) from None


for _cls in smp.MODEL_ARCHITECTURES_MAPPING.values():
    register_arch(_cls.__name__)(_cls)
