"""The Python API as a user calls it: the README's snippet verbatim, every input kind, results that add up."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import trashseg
from trashseg.config import InferConfig
from trashseg.infer.objects import find_objects
from trashseg.infer.predictor import Predictor

README = Path(__file__).resolve().parents[1] / "README.md"


def _photo(h: int = 40, w: int = 56, seed: int = 0) -> np.ndarray:
    """Bright blobs on a dark belt: something for the model to find."""
    rng = np.random.default_rng(seed)
    image = np.full((h, w, 3), 40, np.uint8)
    image[5:25, 8:30] = rng.integers(150, 255, 3, dtype=np.uint8)
    return image


@pytest.fixture(scope="module")
def model(trained_run: Path) -> trashseg.Model:
    return trashseg.load(trained_run, device="cpu", infer=InferConfig(engine="torch"))  # fp32: the reference


def test_readme_snippet_runs_verbatim(trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The block under "### Python API", as written, in a folder where its paths exist: runs/unet_r18 is the
    trained test run and photo.jpg a JPEG whose EXIF says "rotate 90°" (so the mask has the displayed size)."""
    snippet = re.search(r"## Python API\n\n```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)[1]
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "unet_r18").symlink_to(trained_run, target_is_directory=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: the stored 56×40 pixels are shown rotated, 40 wide and 56 high
    Image.fromarray(_photo()).save(tmp_path / "photo.jpg", exif=exif)
    monkeypatch.chdir(tmp_path)
    names: dict = {}
    exec(compile(snippet, str(README), "exec"), names)
    result = names["result"]
    assert isinstance(result, trashseg.Result) and result.mask.shape == (56, 40)
    assert result.overlay().size == (40, 56)


def test_path_pil_array_and_list_give_the_same_masks(model: trashseg.Model, tmp_path: Path) -> None:
    image = _photo()
    Image.fromarray(image).save(tmp_path / "photo.png")
    from_array = model.predict(image)
    assert from_array.mask.shape == (40, 56) and from_array.mask.dtype == np.uint8
    for source in (
        str(tmp_path / "photo.png"),
        tmp_path / "photo.png",
        Image.open(tmp_path / "photo.png"),
        np.dstack([image, np.full((40, 56), 255, np.uint8)]),
    ):  # RGBA: alpha dropped
        np.testing.assert_array_equal(model.predict(source).mask, from_array.mask)
    results = model.predict([image, _photo(64, 32, seed=1), image[:, :, 0]])
    assert [r.mask.shape for r in results] == [(40, 56), (64, 32), (40, 56)]
    np.testing.assert_array_equal(results[0].mask, from_array.mask)
    np.testing.assert_array_equal(results[2].image[:, :, 2], image[:, :, 0])  # gray → RGB


def test_shares_probs_objects_and_overlay_add_up(model: trashseg.Model) -> None:
    result = model.predict(_photo(), probs=True)
    assert list(result.shares) == model.classes and sum(result.shares.values()) == pytest.approx(1.0)
    for name, share in result.shares.items():
        assert share == pytest.approx((result.mask == model.classes.index(name)).mean())
    assert result.probs.shape == (len(model.classes), 40, 56)
    np.testing.assert_allclose(result.probs.sum(0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(result.probs.argmax(0), result.mask)
    assert result.objects == find_objects(result.mask, model.classes, result.probs)
    assert sum(o.area for o in result.objects) == int((result.mask > 0).sum())
    overlay = result.overlay()
    assert isinstance(overlay, Image.Image) and overlay.size == (56, 40) and overlay.mode == "RGB"
    assert model.predict(_photo()).probs is None  # kept only when asked for
    big = model.predict(_photo(), min_area=30).objects
    assert big == [o for o in result.objects if o.area >= 30]


def test_tta_and_scales_are_the_predictors(model: trashseg.Model) -> None:
    image = _photo()
    cfg = InferConfig(hflip=True, vflip=True, scales=[0.75, 1.0])
    expected = Predictor(model.network, model.network.image_size, cfg).predict([image])[0]
    got = model.predict(image, tta="hvflip", scales=(0.75, 1.0), probs=True).probs
    np.testing.assert_allclose(got, expected, atol=1e-6)
    with pytest.raises(trashseg.TrashsegError, match=r"tta='rotate': unknown; one of none, hflip, vflip, hvflip"):
        model.predict(image, tta="rotate")
    with pytest.warns(FutureWarning, match="'flip' is the horizontal flip"):  # the old spelling: now hflip
        old = model.predict(image, tta="flip", probs=True).probs
    np.testing.assert_allclose(old, model.predict(image, tta="hflip", probs=True).probs, atol=1e-6)


def test_missing_model_and_unreadable_images_are_named(model: trashseg.Model, tmp_path: Path) -> None:
    with pytest.raises(trashseg.ModelNotFoundError, match="nowhere: no such run folder"):
        trashseg.load(tmp_path / "nowhere")
    with pytest.raises(trashseg.ModelNotFoundError, match="nowhere.onnx: ONNX model not found"):
        trashseg.load(tmp_path / "nowhere.onnx")
    fake = tmp_path / "notes.jpg"
    fake.write_text("not a photo")
    with pytest.raises(trashseg.ImageError, match="notes.jpg: cannot be decoded"):
        model.predict(fake)
    with pytest.raises(trashseg.ImageError, match="missing.jpg: file not found"):
        model.predict([_photo(), tmp_path / "missing.jpg"])
    with pytest.raises(
        trashseg.ImageError,
        match=r"image 1: expected an H×W×3 uint8 RGB array, got shape \(4, 4\) "
        "and dtype float32",
    ):
        model.predict([_photo(), np.zeros((4, 4), np.float32)])
    truncated = tmp_path / "cut.jpg"
    Image.fromarray(_photo()).save(tmp_path / "whole.jpg")
    truncated.write_bytes((tmp_path / "whole.jpg").read_bytes()[:300])
    with pytest.raises(trashseg.ImageError, match="cut.jpg: cannot be decoded"):
        model.predict(truncated)


def test_an_exported_onnx_model_loads_through_the_api(trained_run: Path, model: trashseg.Model, tmp_path: Path) -> None:
    from trashseg.infer.export import export_run

    export_run(trained_run, tmp_path / "model.onnx")
    onnx = trashseg.load(tmp_path / "model.onnx", device="cpu")
    assert onnx.classes == model.classes and onnx.info["runtime"] == "onnxruntime"
    image = _photo()
    got, expected = onnx.predict(image, probs=True), model.predict(image, probs=True)
    np.testing.assert_allclose(got.probs, expected.probs, atol=1e-4)
    assert [o.area for o in got.objects] == [o.area for o in expected.objects]
