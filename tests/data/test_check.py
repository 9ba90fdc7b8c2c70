import json

import cv2
import numpy as np
from PIL import Image

from tests.conftest import CLASSES, make_coco, run_cli
from trashseg.data.check import check_dataset


def _problems(root):
    return [str(p) for r in check_dataset(root, CLASSES) for p in r.problems]


def test_clean_dataset_has_no_problem(tiny):
    assert _problems(tiny) == []


def test_missing_and_corrupt_images_named(tiny):
    (tiny / "batch_01/0001.png").unlink()
    (tiny / "batch_01/0002.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    problems = _problems(tiny)
    assert any("batch_01/0001.png image_id=1: image file not found" in p for p in problems)
    assert any("batch_01/0002.png image_id=2: cannot be decoded" in p for p in problems)


def test_truncated_jpeg_is_unreadable(tmp_path):
    images = [{"id": 1, "file_name": "a.jpg", "height": 64, "width": 64}]
    make_coco(tmp_path, images=images, annotations=[], write_images=False)
    ok, buf = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    (tmp_path / "a.jpg").write_bytes(buf.tobytes()[: len(buf) // 2])
    assert any("a.jpg image_id=1: cannot be decoded" in p for p in _problems(tmp_path))


def test_size_mismatch_and_exif_rotation(tmp_path):
    images = [{"id": 1, "file_name": "wrong.png", "height": 10, "width": 10},
              {"id": 2, "file_name": "rot.jpg", "height": 20, "width": 40},
              {"id": 3, "file_name": "rot_raw.jpg", "height": 20, "width": 40}]
    make_coco(tmp_path, images=images, annotations=[], write_images=False)
    cv2.imwrite(str(tmp_path / "wrong.png"), np.zeros((12, 10, 3), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90°: stored 20 wide x 40 high shows as 40x20
    Image.new("RGB", (20, 40)).save(tmp_path / "rot.jpg", exif=exif)
    Image.new("RGB", (40, 20)).save(tmp_path / "rot_raw.jpg", exif=exif)
    problems = _problems(tmp_path)
    assert any("wrong.png image_id=1: JSON says 10x10, the image is 10x12" in p for p in problems)
    assert any("rot.jpg image_id=2: EXIF orientation 6 is applied" in p for p in problems)
    assert any("rot_raw.jpg image_id=3" in p and "strip the EXIF orientation tag" in p for p in problems)


def test_grayscale_rgba_16bit_are_flagged(tmp_path):
    images = [{"id": i, "file_name": f"{n}.png", "height": 8, "width": 8} for i, n in
              enumerate(["gray", "rgba", "deep"], start=1)]
    make_coco(tmp_path, images=images, annotations=[], write_images=False)
    cv2.imwrite(str(tmp_path / "gray.png"), np.zeros((8, 8), np.uint8))
    cv2.imwrite(str(tmp_path / "rgba.png"), np.zeros((8, 8, 4), np.uint8))
    cv2.imwrite(str(tmp_path / "deep.png"), np.zeros((8, 8), np.uint16))
    problems = "\n".join(_problems(tmp_path))
    assert "gray.png image_id=1: grayscale image is converted" in problems
    assert "rgba.png image_id=2: RGBA image is converted" in problems
    assert "deep.png image_id=3: 16-bit image is converted" in problems


def test_images_without_annotations_warned(tiny):
    data = json.loads((tiny / "train.json").read_text())
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != 2]
    (tiny / "train.json").write_text(json.dumps(data))
    assert any("image_id=2: image has no annotations" in p for p in _problems(tiny))


def test_cli_exit_codes_and_report(tiny, tmp_path, capsys):
    report = tmp_path / "report.json"
    code, out = run_cli(["data", "check", tiny, "--set", f"data.classes={CLASSES}", "--report", report], capsys)
    assert code == 0, out
    assert json.loads(report.read_text())["ok"] is True
    data = json.loads((tiny / "train.json").read_text())
    data["annotations"][0]["segmentation"] = [[1, 1, 2, 2]]
    (tiny / "train.json").write_text(json.dumps(data))
    code, out = run_cli(["data", "check", tiny, "--set", f"data.classes={CLASSES}", "--report", report], capsys)
    assert code == 1
    assert "image_id=1 ann_id=10: polygon part 0 has 2 point(s)" in out
    assert json.loads(report.read_text())["splits"][0]["by_code"]["degenerate"] == 2


def test_cli_unknown_category_is_a_clear_error(tmp_path, capsys):
    make_coco(tmp_path, categories=[{"id": 1, "name": "Paper"}, {"id": 2, "name": "Cigarette"},
                                    {"id": 3, "name": "Battery"}])
    code, out = run_cli(["data", "check", tmp_path, "--report", tmp_path / "r.json"], capsys)  # recycling classes
    assert code == 1
    assert "categories ['Cigarette'] are not in the configured class list" in out
