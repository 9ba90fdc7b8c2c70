import json

import cv2
import numpy as np
from PIL import Image

from tests.helpers import CLASSES, make_coco, run_cli, write_bomb, write_image, write_two_faced_tiff
from trashseg.config import DataConfig
from trashseg.data.check import check_dataset


def _problems(root, **data):
    return [str(p) for r in check_dataset(DataConfig(root=root, classes=CLASSES, **data)) for p in r.problems]


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
    """Pixels as stored: the JSON must describe the stored size; EXIF orientation is ignored (and said so)."""
    images = [
        {"id": 1, "file_name": "wrong.png", "height": 10, "width": 10},
        {"id": 2, "file_name": "rot.jpg", "height": 20, "width": 40},
        {"id": 3, "file_name": "rot_shown.jpg", "height": 20, "width": 40},
    ]
    make_coco(tmp_path, images=images, annotations=[], write_images=False)
    cv2.imwrite(str(tmp_path / "wrong.png"), np.zeros((12, 10, 3), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90°: a viewer shows stored 40 wide x 20 high as 20x40
    Image.new("RGB", (40, 20)).save(tmp_path / "rot.jpg", exif=exif)
    Image.new("RGB", (20, 40)).save(tmp_path / "rot_shown.jpg", exif=exif)
    problems = _problems(tmp_path)
    assert any("wrong.png image_id=1: JSON says 10x10, the image is 10x12" in p for p in problems)
    assert any("warning:" in p and "rot.jpg image_id=2: EXIF orientation 6 is ignored" in p for p in problems)
    assert any(
        "error:" in p and "rot_shown.jpg image_id=3" in p and "describes the EXIF-rotated view" in p for p in problems
    )


def test_grayscale_rgba_16bit_are_flagged(tmp_path):
    images = [
        {"id": i, "file_name": f"{n}.png", "height": 8, "width": 8}
        for i, n in enumerate(["gray", "rgba", "deep"], start=1)
    ]
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


def test_cli_report_path_that_cannot_be_written_fails_before_the_check(tiny, tmp_path, capsys):
    code, out = run_cli(["data", "check", tiny, "--set", f"data.classes={CLASSES}", "--report", tmp_path], capsys)
    assert code == 2 and f"cannot write {tmp_path}: it is a folder; give a file path" in out
    assert "data check:" not in out  # refused before checking the images, not after


def test_cli_unknown_category_is_a_clear_error(tmp_path, capsys):
    make_coco(
        tmp_path, categories=[{"id": 1, "name": "Paper"}, {"id": 2, "name": "Cigarette"}, {"id": 3, "name": "Battery"}]
    )
    code, out = run_cli(["data", "check", tmp_path, "--report", tmp_path / "r.json"], capsys)  # recycling classes
    assert code == 1
    assert "categories ['Cigarette'] are not in the configured class list" in out


def test_file_names_and_links_outside_the_root_are_listed(tmp_path):
    """Issue 16.2: '..', absolute names and symlinks out of the root are errors, never opened."""
    secret, root = tmp_path / "x" / "secret.png", tmp_path / "data"
    write_image(secret)
    images = [
        {"id": 1, "file_name": "../x/secret.png", "height": 32, "width": 48},
        {"id": 2, "file_name": str(secret), "height": 32, "width": 48},
        {"id": 3, "file_name": "link/secret.png", "height": 32, "width": 48},
    ]
    make_coco(root, images=images, annotations=[], write_images=False)
    (root / "link").symlink_to(secret.parent)
    problems = _problems(root)
    assert any("image_id=1: '../x/secret.png' is absolute or contains '..'" in p for p in problems)
    assert any(f"image_id=2: '{secret}' is absolute or contains '..'" in p for p in problems)
    assert any(
        "image_id=3: 'link/secret.png' leads through a symbolic link" in p and "data.allow_external_links=true" in p
        for p in problems
    )
    allowed = [p for p in _problems(root, allow_external_links=True) if p.startswith("error")]
    assert not any("image_id=3" in p for p in allowed) and len(allowed) == 2


def test_image_bombs_are_listed_and_the_report_written(tmp_path, capsys):
    """Issue 16.3: refused from the header, whether over our limit (49 MP) or over Pillow's (180 MP), and the run
    still writes its report."""
    images = [
        {"id": 1, "file_name": "bomb.png", "height": 7000, "width": 7000},
        {"id": 2, "file_name": "huge.png", "height": 12000, "width": 15000},
    ]
    write_bomb(tmp_path / "data" / "bomb.png")
    write_bomb(tmp_path / "data" / "huge.png", 15000, 12000)
    make_coco(tmp_path / "data", images=images, annotations=[], write_images=False)
    report = tmp_path / "report.json"
    code, out = run_cli(
        ["data", "check", tmp_path / "data", "--set", f"data.classes={CLASSES}", "--report", report], capsys
    )
    assert code == 1 and "bomb.png image_id=1: 7000×7000 is 49.0 MP, over the limit of 40.0 MP" in out, out
    assert "huge.png image_id=2: more than 178956970 pixels (Pillow's decompression-bomb limit)" in out
    assert json.loads(report.read_text())["splits"][0]["by_code"]["too_many_pixels"] == 2
    assert not any(
        p.startswith("error") and "image_id=1" in p for p in _problems(tmp_path / "data", max_pixels=50_000_000)
    )


def test_an_image_that_decodes_larger_than_its_header_is_too_many_pixels(tmp_path):
    """Issue 27.1: Pillow reads 8×8 from the header, the decoder training uses gives 3000×2000: listed as too many
    pixels (over the limit) or as a size mismatch (under it), not as a decoder error."""
    images = [{"id": 1, "file_name": "two_faced.tif", "height": 8, "width": 8}]
    write_two_faced_tiff(tmp_path / "two_faced.tif", 3000, 2000)
    make_coco(tmp_path, images=images, annotations=[], write_images=False)

    def errors(**data):
        reports = check_dataset(DataConfig(root=tmp_path, classes=CLASSES, **data))
        return [(p.code, str(p)) for r in reports for p in r.problems if p.severity == "error"]

    [(code, message)] = errors(max_pixels=1_000_000)
    assert code == "too_many_pixels", message
    assert "two_faced.tif image_id=1: decodes to 3000×2000, 6.0 MP, over the limit of 1.0 MP" in message
    [(code, message)] = errors()
    assert code == "size_mismatch" and "decodes to 3000×2000; its header says 8×8" in message


def test_rle_counts_that_do_not_add_up_are_listed(tmp_path):
    """Issue 16.4: short counts would leave uninitialised memory in the mask, long ones crash pycocotools."""
    anns = [
        {"id": 10, "image_id": 1, "category_id": 1, "segmentation": {"size": [32, 48], "counts": [100, 50]}},
        {"id": 11, "image_id": 2, "category_id": 1, "segmentation": {"size": [32, 48], "counts": "0`5"}},
        {"id": 12, "image_id": 2, "category_id": 2, "segmentation": {"size": [32, 48], "counts": [100, 50, 32 * 48]}},
    ]
    make_coco(tmp_path, annotations=anns)
    problems = _problems(tmp_path)
    assert any("image_id=1 ann_id=10: RLE counts cover 150 pixels, the 48x32 image has 1536" in p for p in problems)
    assert any("image_id=2 ann_id=11: RLE counts cover" in p for p in problems)
    assert any("image_id=2 ann_id=12: RLE counts cover 1686 pixels" in p for p in problems)


def test_negative_area_and_bbox_are_listed(tiny):
    """Issue 16.9."""
    data = json.loads((tiny / "train.json").read_text())
    data["annotations"][0].update(area=-5.0, bbox=[0, 0, -20, 16])
    data["annotations"][1]["bbox"] = [0, 0, 4]
    (tiny / "train.json").write_text(json.dumps(data))
    problems = "\n".join(_problems(tiny))
    assert "image_id=1 ann_id=10: area -5.0 is negative" in problems
    assert "image_id=1 ann_id=10: bbox [0, 0, -20, 16] has a negative width or height" in problems
    assert "image_id=1 ann_id=11: bbox [0, 0, 4] is not [x, y, width, height]" in problems


def test_configured_split_files_are_checked_too(tmp_path):
    """Issue 16.9: every image of the split that training reads is opened, whatever the split file is called."""
    make_coco(tmp_path, name="mine.json")
    (tmp_path / "batch_01/0002.png").write_bytes(b"not a png")
    assert any(
        "mine.json" not in p and "0002.png image_id=2: cannot be decoded" in p
        for p in _problems(tmp_path, train="mine.json")
    )


def test_report_that_is_a_folder_is_named(tiny, capsys):
    """Issue 16.8: --report naming a folder is a named error, not IsADirectoryError from the rename."""
    folder = tiny / "reports"
    folder.mkdir()
    code, text = run_cli(
        ["data", "check", tiny, "--report", folder, "--set", f"data.classes=[{','.join(CLASSES)}]"], capsys
    )
    assert code == 2 and f"cannot write {folder}: it is a folder; give a file path" in text, text
    assert "Traceback" not in text and list(folder.iterdir()) == []
