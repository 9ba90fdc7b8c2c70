import json
from pathlib import Path

from tests.helpers import CLASSES
from trashseg.analysis.eda import object_rows, size_bucket, write_eda
from trashseg.config import load_config
from trashseg.data.coco import load_named_split
from trashseg.data.masks import MaskCache


def _tiny_split(tiny: Path):
    cfg = load_config(None, [f"data.root={tiny}", f"data.classes={CLASSES}"])
    return load_named_split(cfg.data, "train", True)


def test_numbers_of_a_known_dataset(tiny: Path, tmp_path: Path):
    split = _tiny_split(tiny)
    numbers = write_eda(split, tmp_path / "eda", MaskCache(split, tmp_path / "cache"))
    pc = numbers["per_class"]
    assert (pc["Paper"]["objects"], pc["Metal"]["objects"], pc["Battery"]["objects"]) == (1, 1, 1)
    # Paper 320 px less the 16 px Metal drawn over it; Battery 2×16 px; of 2 × 32×48 pixels
    assert pc["Paper"]["pixel_share"] == (320 - 16) / 3072
    assert pc["Battery"]["pixel_share"] == 32 / 3072
    assert pc["Battery"]["thin"] == 1  # two 4×4 squares 10 px apart fill 32 / (14×14) of their box
    assert pc["Paper"]["thin"] == 0
    assert numbers["cooccurrence"]["images"][1][2] == 1 and numbers["cooccurrence"]["images"][1][3] == 0
    assert numbers["objects_per_image"]["histogram"] == [0, 1, 1]
    assert numbers["image_sizes"] == {"48x32": 2}
    assert numbers["brightness"]["mean"] == 128.0  # conftest images are flat grey 128
    assert json.loads((tmp_path / "eda" / "eda.json").read_text()) == numbers


def test_page_embeds_every_figure_and_an_example_row_per_class(sample_data: Path, tmp_path: Path):
    cfg = load_config(None, [f"data.root={sample_data}"])
    split = load_named_split(cfg.data, "train", True)
    write_eda(split, tmp_path / "eda", MaskCache(split, tmp_path / "cache"))
    html = (tmp_path / "eda" / "index.html").read_text()
    present = sum(1 for c in range(1, len(split.classes)) if any(o.cls == c for o in object_rows(split)))
    assert html.count('src="data:image/png') == 5  # classes, sizes, thin, co-occurrence, images: nothing beside it
    assert html.count('src="data:image/jpeg') == present  # one example row per class that has objects
    assert 'src="http' not in html and "<script>" in html


def test_size_buckets_follow_coco():
    assert [size_bucket(a) for a in (10, 32**2, 96**2 - 1, 96**2)] == [
        "small <32²",
        "medium <96²",
        "medium <96²",
        "large",
    ]


def test_cli_eda_refuses_an_unlabelled_split(cli, sample_data: Path, tmp_path: Path):
    code, text = cli(["eda", sample_data, "--split", "test", "--out", tmp_path / "e"])
    assert code == 2 and "annotations" in text and "test.json" in text
    code, text = cli(["eda", sample_data, "--split", "val", "--out", tmp_path / "e", "--examples", "2"])
    assert code == 0, text
    assert (tmp_path / "e" / "index.html").is_file() and "8 images" in text
