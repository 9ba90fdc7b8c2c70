"""dataset.yaml: a dataset's own class list, used when no config or --set states one."""

from __future__ import annotations

import pytest

from trashseg.data.manifest import read_classes, write_classes
from trashseg.errors import TrashsegError


def test_classes_round_trip_and_a_missing_manifest_is_none(tmp_path):
    assert read_classes(tmp_path) is None
    classes = ["Background", "bottle 'PET'", "名前", "a: b"]
    write_classes(tmp_path, classes)
    assert read_classes(tmp_path) == classes


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[a, b]", "needs 'classes: \\[Background, ...\\]'"),
        ("classes: [only]", "classes"),
        ("classes: [a, {b: c}]", "classes"),
        ("classes: [a\n", "invalid YAML"),
    ],
)
def test_a_bad_manifest_is_named(tmp_path, text, message):
    (tmp_path / "dataset.yaml").write_text(text)
    with pytest.raises(TrashsegError, match=message) as err:
        read_classes(tmp_path)
    assert "dataset.yaml" in str(err.value)
