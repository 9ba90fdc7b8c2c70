"""Decoding policy: the pixel limit is read from the header before any decoder runs (issue 16.3)."""

import os
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
from PIL import Image

import trashseg
from tests.helpers import write_bomb, write_two_faced_tiff
from trashseg.data.images import (
    ImageError,
    ImageSizeMismatch,
    ImageTooLarge,
    check_pixels,
    decode_image,
    read_image,
)


def test_formats_whose_size_cannot_be_checked_are_refused(tmp_path):
    """OpenCV decodes Radiance HDR, Pillow cannot read its header: an 8000² HDR would pass unchecked."""
    path = tmp_path / "x.hdr"
    cv2.imwrite(str(path), np.ones((8, 8, 3), np.float32))
    assert cv2.imread(str(path)) is not None
    with pytest.raises(
        ImageError,
        match=r"x.hdr: cannot be decoded: not an image, or a format whose size cannot "
        r"be checked",
    ):
        read_image(path)


def test_bytes_are_checked_before_decoding(tmp_path, monkeypatch):
    data = write_bomb(tmp_path / "bomb.png").read_bytes()
    assert len(data) < 10_000
    monkeypatch.setattr(cv2, "imdecode", lambda *a: pytest.fail("decoded a bomb"))
    with pytest.raises(ImageTooLarge, match="upload.png: 7000×7000 is 49.0 MP"):
        decode_image(data, "upload.png")
    assert check_pixels(data, "upload.png", max_pixels=7000 * 7000) == (7000, 7000)


def test_the_decoded_size_is_checked_against_the_header_and_the_limit(tmp_path):
    """Issue 27.1: Pillow's header check reads 8×8; libtiff, inside OpenCV, decodes 3000×2000."""
    path = write_two_faced_tiff(tmp_path / "two_faced.tif", 3000, 2000)
    assert path.stat().st_size < 2000 and check_pixels(path, "x", max_pixels=100) == (8, 8)
    with pytest.raises(ImageSizeMismatch, match=r"two_faced.tif: decodes to 3000×2000; its header says 8×8"):
        read_image(path)
    with pytest.raises(ImageTooLarge, match=r"decodes to 3000×2000, 6.0 MP, over the limit of 1.0 MP"):
        read_image(path, max_pixels=1_000_000)
    with pytest.raises(ImageTooLarge, match=r"upload.tif: decodes to 3000×2000, 6.0 MP, over the limit"):
        decode_image(path.read_bytes(), "upload.tif", max_pixels=1_000_000, exif=True)


def test_opencvs_own_decoder_is_capped_before_it_allocates(tmp_path):
    """Issue 27.1: a 4 kB TIFF that decodes to 20000×20000 (1.2 GB as BGR) is refused by OpenCV's pixel cap, which
    trashseg sets before cv2 loads (OpenCV reads it only then); peak memory stays far below the image."""
    path = write_two_faced_tiff(tmp_path / "huge.tif", 20_000, 20_000)
    assert path.stat().st_size < 5000 and trashseg.OPENCV_MAX_PIXELS == 2 * Image.MAX_IMAGE_PIXELS
    script = f"""
        import re, trashseg.data.images as images
        try:
            images.read_image({str(path)!r})
        except images.ImageTooLarge as exc:
            print(exc)
        status = open("/proc/self/status").read()  # VmHWM: this process's own peak (ru_maxrss counts the fork's)
        print(int(re.search(r"VmHWM:\\s*(\\d+) kB", status)[1]) // 1024)
    """
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_IO_MAX_IMAGE_PIXELS"}
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, env=env)
    message, peak_mb = run.stdout.splitlines()
    assert "huge.tif: its pixel data is larger than its header's 8×8 and over OpenCV's cap of 178956970" in message
    assert int(peak_mb) < 400, f"peak {peak_mb} MB: the image was decoded"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_pillow_does_only_when_asked(tmp_path, orientation):
    """Raw photos (predict --images, uploads) are read upright; a dataset's pixels stay as stored."""
    from PIL import Image, ImageOps

    stored = np.random.default_rng(orientation).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "photo.png"
    Image.fromarray(stored).save(path, exif=exif)
    upright = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    assert np.array_equal(read_image(path, exif=True), upright)
    assert np.array_equal(read_image(path), stored)
    data = path.read_bytes()
    assert np.array_equal(decode_image(data, "upload.png", exif=True), upright)
    assert np.array_equal(decode_image(data, "upload.png"), stored)
    from trashseg.data.images import upright_size

    assert upright_size(path) == (upright.shape[1], upright.shape[0])
