"""Data flows one way: no stage imports a later one, in the order docs/architecture.md gives (issue 15)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "trashseg"


def stage_order() -> dict[str, int]:
    """Stage → layer, from the numbered list under the marker in docs/architecture.md."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = text.split("<!-- stage order", 1)[1].split("-->", 1)[1]
    layers = {}
    for line in block.strip().splitlines():
        match = re.fullmatch(r"(\d+)\. (.+)", line.strip())
        if not match:
            break
        layers.update({name.strip(): int(match[1]) for name in match[2].split(",")})
    return layers


def _stage(module: str) -> str:
    """``trashseg.data.coco`` → ``data``; ``trashseg.metrics`` → ``metrics``."""
    return module.split(".")[1]


def imported_modules(source: str) -> set[str]:
    """Every trashseg module a source imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("trashseg.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "trashseg":  # from trashseg import fileio (not __version__: the package's own)
                found |= {f"trashseg.{a.name}" for a in node.names if not a.name.startswith("__")}
            elif node.module.startswith("trashseg."):
                found.add(node.module)
    return found


def backward_imports(sources: dict[str, str], order: dict[str, int]) -> list[str]:
    """`module imports target` for each import of a later stage; a stage missing from `order` is one too."""
    problems = []
    for module, source in sorted(sources.items()):
        for target in sorted(imported_modules(source)):
            here, there = _stage(module), _stage(target)
            if here not in order or there not in order:
                missing = here if here not in order else there
                problems.append(f"{module}: stage {missing!r} is not in docs/architecture.md's stage order")
            elif order[there] > order[here]:
                problems.append(
                    f"{module} imports {target}: {there} (layer {order[there]}) comes after "
                    f"{here} (layer {order[here]})"
                )
    return problems


def package_sources() -> dict[str, str]:
    sources = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        sources[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path.read_text(encoding="utf-8")
    return {module: text for module, text in sources.items() if module != "trashseg"}


def test_no_stage_imports_a_later_stage() -> None:
    problems = backward_imports(package_sources(), stage_order())
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from trashseg.postprocess.crf import dense_crf_many", "trashseg.infer.predict imports trashseg.postprocess"),
        ("def f():\n    import trashseg.serve.app", "trashseg.infer.predict imports trashseg.serve.app"),
        ("from trashseg import pseudo", "trashseg.infer.predict imports trashseg.pseudo"),
        ("from trashseg.newstage import x", "stage 'newstage' is not in"),
    ],
    ids=["top-level", "lazy", "from-package", "unlisted-stage"],
)
def test_a_backwards_import_is_caught(source: str, expected: str) -> None:
    order = stage_order()
    assert not backward_imports({"trashseg.infer.predict": "from trashseg.models import load_model"}, order)
    problems = backward_imports({"trashseg.infer.predict": source}, order)
    assert len(problems) == 1 and expected in problems[0], problems


def test_the_order_lists_every_stage_in_the_flow_of_the_diagram() -> None:
    order = stage_order()
    stages = {_stage(module) for module in package_sources()}
    assert stages <= order.keys(), stages - order.keys()
    assert (
        order["data"]
        < order["models"]
        < order["train"]
        < order["infer"]
        < order["postprocess"]
        < order["ensemble"]
        < order["pseudo"]
        < order["analysis"]
        < order["serve"]
        < order["cli"]
    )
