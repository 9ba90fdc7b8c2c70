"""Names from a dataset never lead outside their root (issue 16.2)."""

import pytest

from trashseg.errors import TrashsegError
from trashseg.paths import escape, inside


def test_names_inside_the_root_pass_and_others_are_named(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "same").symlink_to(tmp_path / "in")  # a link that stays inside is fine
    (tmp_path / "in" / "out").symlink_to(tmp_path)
    root = tmp_path / "in"
    for ok in ("a.jpg", "b/c.jpg", "same/a.jpg", "..a.jpg"):
        assert escape(root, ok) is None, ok
    for bad in ("../a.jpg", "b/../../a.jpg", "b/../a.jpg", str(tmp_path / "a.jpg")):
        assert escape(root, bad)[0] == "outside_root", bad
    assert escape(root, "out/a.jpg")[0] == "external_link"
    assert escape(root, "out/a.jpg", allow_links=True) is None


def test_an_absolute_part_after_a_fixed_folder_is_refused(tmp_path):
    assert inside(tmp_path, "masks", "a/b.png") == tmp_path / "masks" / "a" / "b.png"
    with pytest.raises(TrashsegError, match="'/etc/x.png' is absolute"):
        inside(tmp_path, "masks", "/etc/x.png")


def test_names_no_file_can_have_are_named_not_raised(tmp_path):
    """A NUL byte or a name longer than the file system allows would raise ValueError / OSError from every
    later stat; they are a listed problem instead, links allowed or not."""
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    for bad in ("a\x00.jpg", "x" * 300 + ".jpg", "loop/a.jpg"):
        for allow_links in (False, True):
            assert escape(tmp_path, bad, allow_links)[0] == "bad_file_name", bad
