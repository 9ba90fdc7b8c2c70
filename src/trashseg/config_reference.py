"""Every config key with its type, default and meaning, read from the pydantic models themselves.

The meanings are the comments beside each field in ``trashseg.config`` (a comment on the field's line, or the
comment lines just above it): the reference that ``trashseg configs --keys`` prints and the documentation site
shows is built from the code, so it cannot drift from it.
"""

from __future__ import annotations

import ast
import inspect
import io
import json
import tokenize
from dataclasses import dataclass
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from trashseg.config import Config


@dataclass(frozen=True)
class Key:
    name: str  # dotted: ``train.epochs``
    type: str
    default: str
    meaning: str


def _comments(model: type[BaseModel]) -> dict[str, str]:
    """field → its comment, from the class source: the trailing comment, else the comment block above it."""
    source = inspect.getsource(model)
    lines = source.splitlines()
    trailing = {
        tok.start[0]: tok.string.lstrip("# ").strip()
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
        if tok.type == tokenize.COMMENT and lines[tok.start[0] - 1].split("#")[0].strip()
    }
    found = {}
    for node in ast.parse(source).body[0].body:  # type: ignore[attr-defined]
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        text = trailing.get(node.lineno, "")
        if not text:
            above: list[str] = []
            line = node.lineno - 2
            while line >= 0 and lines[line].strip().startswith("#"):
                above.insert(0, lines[line].strip().lstrip("# ").strip())
                line -= 1
            text = " ".join(above)
        found[node.target.id] = text
    return found


def _type(annotation: Any) -> str:
    """A type as a user writes it in YAML terms: ``int | [int, int]``, ``"seed" | "light"``, ``list[str]``."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _type(args[0])
    if origin in (Union, UnionType):
        return " | ".join(_type(a) for a in args)
    if origin is Literal:
        return " | ".join(json.dumps(a) for a in args)
    if origin is tuple:
        return "[" + ", ".join(_type(a) for a in args) + "]"
    if origin is not None:
        return f"{getattr(origin, '__name__', origin)}[{', '.join(_type(a) for a in args)}]"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: Any) -> str:
    value = field.default_factory() if field.default is PydanticUndefined and field.default_factory else field.default
    return "null" if value is None else json.dumps(value, default=str)


def config_keys(model: type[BaseModel] = Config, prefix: str = "") -> list[Key]:
    """Every leaf key of `model` (sections and nested sections walked), in declaration order."""
    comments = _comments(model)
    keys = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys += config_keys(annotation, f"{prefix}{name}.")
        else:
            keys.append(Key(f"{prefix}{name}", _type(annotation), _default(field), comments.get(name, "")))
    return keys


def markdown_reference() -> str:
    """One table per top-level section, for the documentation site."""
    out: list[str] = []
    section = None
    for key in config_keys():
        top = key.name.split(".")[0] if "." in key.name else ""
        if top != section:
            section = top
            title = f"`{top}`" if top else "top level"
            about = inspect.getdoc(Config.model_fields[top].annotation) if top else ""
            out += ["", f"### {title}", "", *([about, ""] if about else []), "| key | type | default | meaning |"]
            out.append("| --- | --- | --- | --- |")
        cells = [f"`{key.name}`", f"`{key.type}`", f"`{key.default}`", key.meaning]
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(out).strip() + "\n"
