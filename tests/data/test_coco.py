import json

import pytest

from tests.helpers import CLASSES, make_coco
from trashseg.data.coco import load_split, parse_split
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
