import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from trashseg.analysis.shift import energy, greedy_subset, imagenet_extractor, write_shift
from trashseg.config import load_config
from trashseg.data.coco import load_named_split


def _darkened_copy(root: Path, split: str = "val", name: str = "val_dark.json") -> str:
    """The split's images at 35% brightness under dark/, listed in a COCO file of their own."""
    data = json.loads((root / f"{split}.json").read_text())
    for img in data["images"]:
        target = root / "dark" / img["file_name"]
        target.parent.mkdir(parents=True, exist_ok=True)
        pixels = cv2.imread(str(root / img["file_name"]))
        cv2.imwrite(str(target), (pixels * 0.35).astype(np.uint8))
        img["file_name"] = f"dark/{img['file_name']}"
    (root / name).write_text(json.dumps(data))
    return name


@pytest.fixture(scope="module")
def shift_numbers(sample_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """train vs val (one generator: no shift) and train vs a darkened val, in one run of the command's core."""
    dark = _darkened_copy(sample_data)
    cfg = load_config(None, [f"data.root={sample_data}"])
    splits = {n: load_named_split(cfg.data, n) for n in ("train", "val", dark)}
    out = tmp_path_factory.mktemp("shift")
    numbers = write_shift(splits, out, imagenet_extractor("cpu"), size=128, rounds=200)
    return {"numbers": numbers, "out": out, "dark": dark}


def test_same_distribution_sits_at_its_baseline_and_a_darkened_copy_far_above(shift_numbers):
    pairs, dark = shift_numbers["numbers"]["distances"], shift_numbers["dark"]
    same = pairs["train vs val"]
    assert same["distance"] < same["shuffled_images"]["p95"]  # indistinguishable from a random relabelling
    assert same["shuffled_images"]["p_value"] > 0.05
    shifted = pairs[f"train vs {dark}"]
    assert shifted["distance"] > 1.5 * shifted["shuffled_images"]["p95"]
    assert shifted["shuffled_images"]["p_value"] < 0.01


def test_report_files_and_proposed_validation_set_are_usable_by_train(shift_numbers, sample_data: Path):
    out, numbers = shift_numbers["out"], shift_numbers["numbers"]
    html = (out / "index.html").read_text()
    assert "Distance between splits" in html and html.count("data:image/") >= 3  # baselines, map, thumbnails
    assert json.loads((out / "shift.json").read_text())["distances"].keys() == numbers["distances"].keys()
    prop = numbers["proposed_val"]
    cfg = load_config(
        None, [f"data.root={sample_data}", f"data.val={prop['files']['val']}", f"data.train={prop['files']['train']}"]
    )
    val, train = load_named_split(cfg.data, "val", True), load_named_split(cfg.data, "train", True)
    assert len(val.images) == prop["images"] >= 1
    assert {i["id"] for i in val.images}.isdisjoint(i["id"] for i in train.images)
    assert len(val.images) + len(train.images) == 24
    assert len(numbers["farthest_from_target"]) == 24


def test_energy_distance_is_zero_for_equal_sets_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    y = np.concatenate([x, x + [4, 0, 0]])
    d = np.linalg.norm(y[:, None] - y[None], axis=-1)
    a = np.arange(80) < 40
    assert energy(d, a, a)[0] == pytest.approx(0)
    assert energy(d, a, ~a)[0] > 3


def test_greedy_subset_picks_the_groups_that_look_like_the_target():
    # pool: groups g0..g3 at 0, 10, 0.2, 20 on a line; target at 0.1: g0 and g2 are the close ones
    pool_pts = np.repeat([0.0, 10.0, 0.2, 20.0], 3)
    pts = np.concatenate([pool_pts, np.full(4, 0.1)])[:, None]
    d = np.abs(pts - pts.T)
    groups = [f"g{k}" for k in range(4) for _ in range(3)]
    chosen = greedy_subset(d, np.arange(12), np.arange(12, 16), groups, size=6)
    assert sorted({groups[i] for i in chosen}) == ["g0", "g2"]


def test_cli_shift_prints_the_table_and_refuses_a_single_split(cli, sample_data: Path, tmp_path: Path):
    code, text = cli(["shift", sample_data, "--splits", "train", "--out", tmp_path / "s"])
    assert code == 2 and "at least two splits" in text
    code, text = cli(
        [
            "shift",
            sample_data,
            "--splits",
            "train,test",
            "--size",
            "64",
            "--permutations",
            "20",
            "--out",
            tmp_path / "s",
        ]
    )
    assert code == 0, text
    assert "train vs test" in text and "data.val=" in text and (tmp_path / "s" / "index.html").is_file()
