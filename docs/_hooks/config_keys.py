"""MkDocs hook: the `<!-- config keys -->` marker becomes the table of every config key, built from the code."""

from __future__ import annotations

from typing import Any

from trashseg.config_reference import markdown_reference

MARKER = "<!-- config keys -->"


def on_page_markdown(markdown: str, **_: Any) -> str:
    return markdown.replace(MARKER, markdown_reference()) if MARKER in markdown else markdown
