import pytest

from trashseg.demo import MARKER, fresh_out
from trashseg.errors import TrashsegError


def test_demo_reruns_from_scratch_but_never_deletes_a_foreign_folder(tmp_path):
    out = tmp_path / "demo_out"
    fresh_out(out)
    (out / "runs").mkdir()
    fresh_out(out)  # a second `make demo`: its own earlier output goes
    assert sorted(p.name for p in out.iterdir()) == [MARKER]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "results.csv").write_text("keep me")
    with pytest.raises(TrashsegError, match="not made by trashseg demo"):
        fresh_out(mine)
    assert (mine / "results.csv").read_text() == "keep me"
