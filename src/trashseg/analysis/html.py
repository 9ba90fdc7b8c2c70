"""One self-contained HTML page per report: figures and pictures embedded as base64, tables sortable by a click.

Self-contained so that a report can be mailed, attached to an issue or opened from a laptop's download folder with
nothing beside it; the only script is the few lines that sort a table by the clicked column.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from trashseg.fileio import atomic_write_text

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1300px;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:right;vertical-align:middle}
th{background:#f3f3f3;position:sticky;top:0}th.sort{cursor:pointer}th.sort:after{content:" \\2195";color:#999}
td:first-child,th:first-child{text-align:left}img{max-width:100%}p.note{color:#555;font-size:.9em}
"""
# Click a header of a .sortable table: numbers sort as numbers (blank and "—" last), the rest as text.
_SORT_JS = """
document.querySelectorAll("table.sortable th").forEach(function (th) {
  th.classList.add("sort");
  th.addEventListener("click", function () {
    var col = th.cellIndex, body = th.closest("table").tBodies[0], rows = Array.from(body.rows);
    var asc = th.dataset.dir !== "asc"; th.dataset.dir = asc ? "asc" : "desc";
    function key(r) { var c = r.cells[col]; var v = c.dataset.v !== undefined ? c.dataset.v : c.textContent;
      var n = parseFloat(v); return isNaN(n) ? v : n; }
    rows.sort(function (a, b) { var x = key(a), y = key(b);
      if (typeof x !== typeof y) return typeof x === "number" ? -1 : 1;
      return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1); });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""


def figure_uri(fig: Any) -> str:
    """A matplotlib figure as a PNG data URI."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def file_uri(path: str | Path) -> str:
    """A PNG file already written (e.g. by ``plot_confusion``) as a data URI."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def image_uri(rgb: np.ndarray, quality: int = 85) -> str:
    """An RGB uint8 array as a JPEG data URI (photos with masks drawn: JPEG is a tenth of PNG's size)."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"could not encode an image of shape {rgb.shape}")
    return "data:image/jpeg;base64," + base64.b64encode(data.tobytes()).decode("ascii")


def thumbnail(rgb: np.ndarray, width: int) -> np.ndarray:
    """Scaled to `width` pixels wide (never up), aspect kept."""
    h, w = rgb.shape[:2]
    if w <= width:
        return rgb
    return cv2.resize(rgb, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)


def fmt(value: Any, digits: int = 4) -> str:
    """Table text: floats rounded, NaN/None as a dash."""
    if value is None or (isinstance(value, float) and value != value):
        return "—"
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}f}"
    return str(value)


class Page:
    """Sections appended in order, then written once (atomically) as one HTML file."""

    def __init__(self, title: str, subtitle: str = ""):
        self.title = title
        self.parts: list[str] = [f"<h1>{html.escape(title)}</h1>"]
        if subtitle:
            self.note(subtitle)

    def heading(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def note(self, text: str) -> None:
        self.parts.append(f'<p class="note">{html.escape(text)}</p>')

    def figure(self, fig: Any, alt: str) -> None:
        self.parts.append(f'<p><img src="{figure_uri(fig)}" alt="{html.escape(alt)}"></p>')

    def picture(self, rgb: np.ndarray, alt: str) -> None:
        self.parts.append(f'<p><img src="{image_uri(rgb)}" alt="{html.escape(alt)}"></p>')

    def png_file(self, path: str | Path, alt: str) -> None:
        self.parts.append(f'<p><img src="{file_uri(path)}" alt="{html.escape(alt)}"></p>')

    def swatches(self, names: Sequence[str], colors: Sequence[tuple[int, int, int]]) -> None:
        """A colour legend: one swatch and name per class."""
        items = "".join(
            f'<span style="display:inline-block;margin-right:1em"><span style="display:inline-block;'
            f'width:.9em;height:.9em;background:rgb{tuple(c)};vertical-align:middle"></span> '
            f"{html.escape(n)}</span>"
            for n, c in zip(names, colors, strict=True)
        )
        self.parts.append(f"<p>{items}</p>")

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[Any]], sortable: bool = False) -> None:
        """Cells are text (escaped) or ``Cell`` (an image, or a text with its own sort key)."""
        head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
        cls = ' class="sortable"' if sortable else ""
        self.parts.append(f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def render(self) -> str:
        return (
            f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(self.title)}'
            f"</title><style>{_STYLE}</style></head><body>{''.join(self.parts)}<script>{_SORT_JS}</script>"
            "</body></html>\n"
        )

    def write(self, path: str | Path) -> Path:
        atomic_write_text(path, self.render())
        return Path(path)


class Cell:
    """A table cell that is a picture (`rgb`) or a text whose sort key differs from what it shows."""

    def __init__(self, text: str = "", rgb: np.ndarray | None = None, key: Any = None):
        self.text, self.rgb, self.key = text, rgb, key


def _cell(value: Any) -> str:
    if not isinstance(value, Cell):
        text = fmt(value)
        return f'<td data-v="{"" if text == "—" else html.escape(text)}">{html.escape(text)}</td>'
    key = "" if value.key is None else f' data-v="{html.escape(fmt(value.key, 6))}"'
    inner = html.escape(value.text)
    if value.rgb is not None:
        inner = f'<img src="{image_uri(value.rgb)}" alt="{inner}">'
    return f"<td{key}>{inner}</td>"
