"""Decoding policy: the pixel limit is read from the header before any decoder runs (issue 16.3)."""

import cv2
import numpy as np
import pytest

from tests.helpers import write_bomb
from trashseg.data.images import ImageError, ImageTooLarge, check_pixels, decode_image, read_image


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
