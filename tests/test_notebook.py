"""The tutorial notebook runs top to bottom on generated data and shows its figures (issue 31)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"


@pytest.mark.slow
def test_quickstart_notebook_runs_and_shows_its_figures(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp_path}})
    client.execute()  # a cell that raises fails here, naming the cell
    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    text = "".join(out.get("text", "") for out in outputs)
    figures = [out for out in outputs if "image/png" in out.get("data", {})]
    assert "best val mIoU" in text and "val mIoU" in text
    assert len(figures) >= 4  # labelled sample, overlay, per-class IoU, worst images
    assert (tmp_path / "quickstart_out" / "run" / "metrics.json").is_file()
