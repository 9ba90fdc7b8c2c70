import json

import pytest

from tests.helpers import CLASSES, make_coco
from trashseg.config import DataConfig
from trashseg.data.coco import default_source, find_split, load_named_split, load_split, parse_split
from trashseg.errors import TrashsegError


def test_categories_mapped_by_name_not_id(tmp_path):
    cats = [{"id": 7, "name": "Battery"}, {"id": 3, "name": "Paper"}, {"id": 5, "name": "Metal"}]
    path = make_coco(tmp_path, categories=cats, annotations=[])
    split = load_split(path, tmp_path, CLASSES)
    assert split.cat_to_class == {7: 3, 3: 1, 5: 2}


def test_unknown_category_names_them(tmp_path):
    path = make_coco(tmp_path, categories=[{"id": 1, "name": "Paper"}, {"id": 2, "name": "Cigarette"}], annotations=[])
    with pytest.raises(TrashsegError, match=r"Cigarette.*not in the configured class list"):
        load_split(path, tmp_path, CLASSES)


def test_bad_json_names_the_file(tmp_path):
    (tmp_path / "train.json").write_text("{not json")
    with pytest.raises(TrashsegError, match=r"train\.json: not valid JSON"):
        load_split(tmp_path / "train.json", tmp_path, CLASSES)


def test_schema_errors_name_the_field(tmp_path):
    images = [{"id": 1, "file_name": "a.png", "height": 0, "width": 4}]
    path = make_coco(tmp_path, images=images, annotations=[], write_images=False)
    with pytest.raises(TrashsegError, match=r"images\[0\]\.height missing or invalid"):
        load_split(path, tmp_path, CLASSES)


def test_missing_annotations_key_only_required_when_asked(tmp_path):
    path = tmp_path / "test.json"
    path.write_text(json.dumps({"images": [], "categories": []}))
    assert not load_split(path, tmp_path, CLASSES).has_annotations
    with pytest.raises(TrashsegError, match="missing top-level key 'annotations'"):
        load_split(path, tmp_path, CLASSES, require_annotations=True)


def test_duplicates_and_dangling_references_are_named(tmp_path):
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "area": 4, "segmentation": [[0, 0, 2, 0, 2, 2]]},
        {"id": 1, "image_id": 1, "category_id": 1, "area": 4, "segmentation": [[0, 0, 2, 0, 2, 2]]},
        {"id": 2, "image_id": 99, "category_id": 1, "area": 4, "segmentation": [[0, 0, 2, 0, 2, 2]]},
        {"id": 3, "image_id": 1, "category_id": 42, "area": 4, "segmentation": [[0, 0, 2, 0, 2, 2]]},
    ]
    path = make_coco(tmp_path, annotations=anns)
    messages = [str(p) for p in parse_split(path, tmp_path, CLASSES).problems]
    assert any("duplicate annotation id 1" in m and "ann_id=1" in m for m in messages)
    assert any("image_id=99 ann_id=2" in m and "image id not in 'images'" in m for m in messages)
    assert any("ann_id=3" in m and "category id 42" in m for m in messages)
    with pytest.raises(TrashsegError, match="3 error"):
        load_split(path, tmp_path, CLASSES)


def _data(root, **keys) -> DataConfig:
    return DataConfig(root=root, classes=CLASSES, **keys)


def test_a_split_name_finds_its_json_and_a_wrong_one_lists_the_files(tmp_path):
    make_coco(tmp_path, name="holdout.json")
    (tmp_path / "folds").mkdir()
    make_coco(tmp_path, name="folds/fold0_val.json", write_images=False)
    assert find_split(_data(tmp_path), "holdout") == tmp_path / "holdout.json"
    assert find_split(_data(tmp_path), "holdout.json") == tmp_path / "holdout.json"
    assert len(load_named_split(_data(tmp_path), "holdout").images) == 2
    with pytest.raises(
        TrashsegError, match=r"split 'holdot': .* not found; COCO files under .*: folds/fold0_val.json, holdout.json"
    ):
        find_split(_data(tmp_path), "holdot")
    with pytest.raises(TrashsegError, match=r"split 'train': .*train.json not found; COCO files under"):
        load_named_split(_data(tmp_path), "train")


def test_split_divides_the_one_coco_file_there_is_or_names_the_candidates(tmp_path):
    make_coco(tmp_path, name="train_all.json")
    assert default_source(_data(tmp_path)) == "train_all.json"
    make_coco(tmp_path, name="extra.json", write_images=False)
    with pytest.raises(
        TrashsegError, match=r"holds 2 COCO files at its top level \(extra.json, train_all.json\); .*--source"
    ):
        default_source(_data(tmp_path))
    make_coco(tmp_path, name="train.json", write_images=False)
    assert default_source(_data(tmp_path)) == "train"
