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
