"""Temporaries left by a killed writer are removed by the next run; a live writer's are kept (issue 16.7)."""

import errno
import json
import os
import subprocess
import sys

import pytest

from tests.helpers import fill_disk
from trashseg import fileio
from trashseg.errors import DiskFull
from trashseg.fileio import atomic_open, remove_stale_temps


def _dead_pid() -> int:
    return int(
        subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
        ).stdout
    )


def test_only_the_temporaries_of_dead_writers_on_this_host_are_removed(tmp_path):
    host = fileio._HOST
    dead = tmp_path / "a" / f".x.png.abcd1234.{_dead_pid()}@{host}.tmp.png"
    live = tmp_path / f".y.json.abcd1234.{os.getpid()}@{host}.tmp.json"
    elsewhere = tmp_path / f".z.npy.abcd1234.{_dead_pid()}@another-{host}.tmp.npy"
    unrelated = tmp_path / ".notes.tmp"
    dead.parent.mkdir()
    for path in (dead, live, elsewhere, unrelated):
        path.write_text("x")
    assert remove_stale_temps(tmp_path) == 1
    assert not dead.exists() and live.exists() and elsewhere.exists() and unrelated.exists()


def test_temporaries_carry_the_writer_pid(tmp_path):
    with atomic_open(tmp_path / "out.json") as fh:
        fh.write("{}")
        (tmp,) = [p.name for p in tmp_path.iterdir()]
        assert tmp.startswith(".out.json.") and tmp.endswith(f".{os.getpid()}@{fileio._HOST}.tmp.json")
        assert remove_stale_temps(tmp_path) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_a_file_in_the_way_of_an_output_folder_is_named(tmp_path):
    """Issue 16.8: the file that blocks the folder is named, whichever level of the path it sits at."""
    import pytest

    from trashseg.errors import TrashsegError
    from trashseg.fileio import atomic_write_json

    (tmp_path / "out").write_text("x")
    with pytest.raises(TrashsegError, match=rf"cannot create folder {tmp_path}/out/a: {tmp_path}/out is a file"):
        atomic_write_json(tmp_path / "out" / "a" / "meta.json", {})


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_a_full_disk_is_named_and_leaves_the_old_output_whole(tmp_path, monkeypatch, code):
    """Issue 27.2: a write that fills the disk (or the quota) is DiskFull naming the folder, not Errno 28; the
    output written before stays as it was and no temporary is left."""
    out = tmp_path / "reports" / "summary.json"
    fileio.atomic_write_json(out, {"run": 1})
    fill_disk(monkeypatch, tmp_path, free=10, code=code)
    why = "no space left on its disk" if code == errno.ENOSPC else "over your disk quota there"
    with pytest.raises(DiskFull, match=rf"{out.parent} is full \({why}\): cannot write summary.json\. Nothing half"):
        fileio.atomic_write_json(out, {"run": 2, "text": "x" * 100})
    with pytest.raises(DiskFull, match="rerun the same command to resume"):  # writers that take a file name
        fileio.atomic_write_with(out, lambda tmp: (_ for _ in ()).throw(OSError(code, os.strerror(code), tmp)))
    assert json.loads(out.read_text()) == {"run": 1} and os.listdir(out.parent) == ["summary.json"]
