import json

import numpy as np
import pytest

from tests.helpers import CLASSES, make_coco, run_cli
from trashseg.data.coco import load_split
from trashseg.data.splits import default_groups, image_groups, make_folds
from trashseg.data.stats import ClassStats
from trashseg.errors import TrashsegError


def test_groups_never_straddle_and_classes_spread():
    rng = np.random.default_rng(0)
    presence = rng.random((60, 5)) < 0.3
    presence[:, 0] = True
    presence[::10, 4] = True  # a rare class in 6 images
    groups = [f"vid{i // 3}" for i in range(60)]  # 20 groups of 3 frames
    folds = make_folds(ClassStats(np.ones(5, np.int64), presence), groups, 3, seed=0)
    seen = []
    for fold in folds:
        assert not {groups[i] for i in fold.train} & {groups[i] for i in fold.val}
        assert presence[fold.val, 4].sum() >= 1  # iterative stratification spreads the rare class
        seen += fold.val
    assert sorted(seen) == list(range(60))


def test_too_few_groups_and_bad_regex_are_named(tiny):
    from tests.helpers import CLASSES
    from trashseg.data.coco import load_split

    split = load_split(tiny / "train.json", tiny, CLASSES)
    with pytest.raises(TrashsegError, match="not a valid regular expression"):
        image_groups(split, "(")
    with pytest.raises(TrashsegError, match=r"does not match file_name 'batch_01/0001.png'"):
        image_groups(split, r"^vid_\d+")
    with pytest.raises(TrashsegError, match="1 group"):
        make_folds(ClassStats(np.ones(4, np.int64), np.ones((2, 4), bool)), ["a", "a"], 2)


def test_split_cli_writes_fold_files(sample_data, tmp_path, capsys):
    out = tmp_path / "folds"
    code, text = run_cli(["split", sample_data, "--folds", "3", "--out", out, "--group-by", ""], capsys)
    assert code == 0, text
    assert "fold 2 val" in text
    ids = []
    for k in range(3):
        train = json.loads((out / f"fold{k}_train.json").read_text())
        val = json.loads((out / f"fold{k}_val.json").read_text())
        assert not {i["id"] for i in train["images"]} & {i["id"] for i in val["images"]}
        assert {a["image_id"] for a in val["annotations"]} <= {i["id"] for i in val["images"]}
        ids += [i["id"] for i in val["images"]]
    assert len(ids) == len(set(ids)) == 24


def test_images_all_in_one_folder_are_not_one_group(tmp_path):
    """A labelling tool's export keeps every image in one folder: grouping by folder would make one group."""
    make_coco(tmp_path)
    split = load_split(tmp_path / "train.json", tmp_path, CLASSES)
    groups, note = default_groups(split)
    assert groups == ["batch_01/0001.png", "batch_01/0002.png"]
    assert "in one folder, so images are not grouped" in note
