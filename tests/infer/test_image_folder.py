"""predict --images: a folder of raw photos in, a prediction folder that overlay and crf use as they use any."""

import json
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from tests.helpers import write_two_faced_tiff
from trashseg.infer.folder import PredictionFolder
from trashseg.infer.image_folder import find_images


def _png_header_only(path: Path, w: int, h: int) -> None:
    """A PNG that declares w×h pixels and holds none: what an attacker or a broken camera can upload."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")
    )


def _photos(root: Path) -> dict[str, tuple[int, int]]:
    """Good photos of several kinds; returns {file_name: upright (height, width)}."""
    rng = np.random.default_rng(0)
    (root / "day2").mkdir(parents=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 48 wide × 32 high, shown turned a quarter: 32 wide × 48 high
    Image.fromarray(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)).save(root / "rotated.jpg", exif=exif)
    Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8), "L").save(root / "gray.png")
    Image.fromarray(rng.integers(0, 256, (24, 36, 4), dtype=np.uint8), "RGBA").save(root / "day2" / "rgba.PNG")
    cv2.imwrite(str(root / "day2" / "plain.jpeg"), rng.integers(0, 256, (30, 20, 3), dtype=np.uint8))
    return {"rotated.jpg": (48, 32), "gray.png": (40, 40), "day2/rgba.PNG": (24, 36), "day2/plain.jpeg": (30, 20)}


def _bad_files(root: Path) -> dict[str, str]:
    """{file_name: what the error says about it}"""
    good = cv2.imencode(".png", np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8))[1].tobytes()
    at = good.index(b"IDAT") + 14  # a good header, then pixel data with flipped bytes: fails only when decoded
    (root / "corrupt.png").write_bytes(good[:at] + bytes(b ^ 0xFF for b in good[at : at + 26]) + good[at + 26 :])
    (root / "notes.jpg").write_text("shopping list: milk, eggs\n")
    _png_header_only(root / "huge.png", 20_000, 20_000)
    (root / "readme.txt").write_text("not an image suffix: never looked at")
    write_two_faced_tiff(root / "two_faced.tif", 3000, 2000)  # Pillow's header: 8×8; OpenCV decodes 3000×2000
    return {
        "two_faced.tif": "decodes to 3000×2000; its header says 8×8",
        "corrupt.png": "cannot be decoded",
        "notes.jpg": "cannot be decoded: not an image",
        "huge.png": "the limit here is 40000000 (data.max_pixels)",
    }


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.startswith(".") or ".tmp" in p.name]


def test_folder_of_photos_predicts_the_good_ones_and_names_the_bad(trained_run, tmp_path, cli):
    photos, out = tmp_path / "photos", tmp_path / "pred"
    sizes, bad = _photos(photos), _bad_files(photos)
    code, text = cli(["predict", trained_run, "--images", photos, "--out", out, "--save-probs", "--workers", "0"])
    flat = " ".join(text.split())
    assert code == 2 and "4 of 8 image file(s) could not be used and were skipped (the other 4 are predicted" in flat
    for name, reason in bad.items():
        assert any(name in line and reason in line for line in text.splitlines()), (name, text)
    folder = PredictionFolder(out)
    assert folder.names() == sorted(sizes)
    for name, (h, w) in sizes.items():
        assert folder.mask(name).shape == (h, w) and folder.probs(name).shape[1:] == (h, w)  # upright, own size
    listed = json.loads((out / "images.json").read_text())
    assert [i["file_name"] for i in listed["images"]] == sorted(sizes) and "annotations" not in listed
    assert listed["info"]["orientation"] == "exif"
    assert not _leftovers(out) and not (out / "masks" / "corrupt.png.png").exists()

    code, text = cli(["overlay", out])  # finds the photos through meta.json and images.json
    assert code == 0, text
    panel = cv2.imread(str(out / "overlays" / "rotated.jpg"))
    assert panel.shape[1] == 32  # the photo upright, no ground-truth panel beside it
    assert sorted(p.relative_to(out / "overlays").as_posix() for p in (out / "overlays").rglob("*.jp*g")) == sorted(
        ["rotated.jpg", "gray.png.jpg", "day2/rgba.PNG.jpg", "day2/plain.jpeg"]
    )
    code, text = cli(["crf", out, "--out", tmp_path / "crf", "--set", "crf.iterations=1", "--set", "crf.workers=1"])
    assert code == 0 and PredictionFolder(tmp_path / "crf").names() == sorted(sizes), text
    assert PredictionFolder(tmp_path / "crf").mask("rotated.jpg").shape == (48, 32)

    # members predicted from the same photos vote image by image, although each holds its own images.json
    code, text = cli(
        [
            "predict",
            trained_run,
            "--images",
            photos,
            "--out",
            tmp_path / "flip",
            "--save-probs",
            "--hflip",
            "--workers",
            "0",
        ]
    )
    assert code == 2, text
    code, text = cli(["ensemble", out, tmp_path / "flip", "--out", tmp_path / "ens"])
    assert code == 0 and PredictionFolder(tmp_path / "ens").names() == sorted(sizes), text
    assert cli(["overlay", tmp_path / "ens"])[0] == 0 and (tmp_path / "ens" / "overlays" / "rotated.jpg").exists()

    # a rerun resumes: nothing predicted twice, the bad files named again
    code, text = cli(["predict", trained_run, "--images", photos, "--out", out, "--save-probs", "--workers", "0"])
    flat = "".join(text.split())
    assert code == 2 and "'predicted':0" in flat and "'skipped':4" in flat, text


def test_folder_without_images_is_named_and_nothing_is_written(trained_run, tmp_path, cli):
    empty, out = tmp_path / "empty", tmp_path / "pred"
    empty.mkdir()
    (empty / "readme.txt").write_text("no photos here")
    code, text = cli(["predict", trained_run, "--images", empty, "--out", out])
    assert code == 2 and "no image files found" in text and str(empty) in text.replace("\n", ""), text
    code, text = cli(["predict", trained_run, "--images", tmp_path / "nowhere", "--out", out])
    assert code == 2 and "no such folder" in text, text
    code, text = cli(["predict", trained_run, "--images", f"{empty}/*.jpg", "--out", out])
    assert code == 2 and "no image files found" in text, text
    assert not out.exists()


def test_folder_of_only_bad_files_leaves_no_prediction_folder(trained_run, tmp_path, cli):
    photos, out = tmp_path / "photos", tmp_path / "pred"
    photos.mkdir()
    bad = _bad_files(photos)
    code, text = cli(["predict", trained_run, "--images", photos, "--out", out, "--workers", "0"])
    flat = " ".join(text.split())
    assert code == 2 and "4 of 4 image file(s)" in flat and "no image could be predicted" in flat, text
    assert all(name in flat for name in bad)
    assert not out.exists()  # corrupt.png passed its header, failed decoding: the folder made for it is gone


def test_pattern_and_output_inside_the_photo_folder(trained_run, tmp_path, cli):
    photos = tmp_path / "photos"
    sizes = _photos(photos)
    root, files = find_images(f"{photos}/**/*.jp*g")
    assert root == photos and [f.relative_to(photos).as_posix() for f in files] == ["day2/plain.jpeg", "rotated.jpg"]
    out = photos / "preds"  # inside the folder of photos: its masks and overlays are never taken as photos
    args = ["predict", trained_run, "--images", photos, "--out", out, "--workers", "0"]
    assert cli(args)[0] == 0
    assert cli(["overlay", out])[0] == 0
    code, text = cli(args)
    assert code == 0 and "'skipped':4" in "".join(text.split()), text
    assert PredictionFolder(out).names() == sorted(sizes)


def test_images_and_a_dataset_split_never_share_a_folder(trained_run, sample_data, tmp_path, cli):
    photos, out = tmp_path / "photos", tmp_path / "pred"
    _photos(photos)
    args = ["predict", trained_run, "--data", sample_data, "--split", "val", "--out", out, "--workers", "0"]
    assert cli(args)[0] == 0
    code, text = cli(["predict", trained_run, "--images", photos, "--out", out])
    assert code == 2 and "already holds predictions of" in text and not (out / "images.json").exists(), text
    code, text = cli(["predict", trained_run, "--images", photos, "--data", sample_data, "--out", tmp_path / "x"])
    assert code == 2 and "not both" in text
