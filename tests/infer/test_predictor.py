import numpy as np
import pytest
import torch

from trashseg.config import InferConfig
from trashseg.infer.predictor import Predictor


def ramp_model(batch: torch.Tensor) -> torch.Tensor:
    """Ignores the image: class-1 logit grows left → right, so only a correct un-flip makes hflip TTA symmetric."""
    b, h, w, _ = batch.shape
    ramp = torch.linspace(-4, 4, w).expand(b, h, w)
    return torch.stack([torch.zeros_like(ramp), ramp], dim=1)


def colour_model(batch: torch.Tensor) -> torch.Tensor:
    """Class 1 where the red channel is bright: flip-equivariant, so TTA must not change its answer."""
    red = batch[..., 0].float() / 255.0
    return torch.stack([torch.zeros_like(red), (red - 0.5) * 20], dim=1)


def test_probabilities_at_each_images_own_size():
    p = Predictor(colour_model, 64, InferConfig())
    out = p.predict([np.zeros((50, 70, 3), np.uint8), np.zeros((30, 30, 3), np.uint8)])
    assert out[0].shape == (2, 50, 70) and out[1].shape == (2, 30, 30)
    np.testing.assert_allclose(out[0].sum(0), 1.0, atol=1e-5)


def test_hflip_tta_is_undone_before_averaging():
    image = np.zeros((32, 64, 3), np.uint8)
    plain = Predictor(ramp_model, 64, InferConfig()).predict([image])[0]
    tta = Predictor(ramp_model, 64, InferConfig(hflip=True)).predict([image])[0]
    assert plain[1, 5, -1] > plain[1, 5, 0] + 0.5
    np.testing.assert_allclose(tta[1], tta[1][:, ::-1], atol=1e-4)  # average of ramp and its mirror


@pytest.mark.parametrize(
    "cfg",
    [
        InferConfig(hflip=True, vflip=True),
        InferConfig(scales=[0.5, 1.0, 1.5]),
        InferConfig(mode="slide", overlap=0.5, scales=[1.0, 0.75]),
    ],
)
def test_tta_and_sliding_keep_a_content_driven_answer(cfg):
    image = np.zeros((96, 160, 3), np.uint8)
    image[20:70, 30:100, 0] = 255
    probs = Predictor(colour_model, 64, cfg).predict([image])[0]
    mask = probs.argmax(0)
    assert mask[45, 60] == 1 and mask[5, 5] == 0 and mask[90, 150] == 0
    assert abs(int((mask == 1).sum()) - 50 * 70) < 0.08 * 50 * 70


@pytest.mark.parametrize(
    "cfg", [InferConfig(), InferConfig(hflip=True, scales=[0.75, 1.0]), InferConfig(mode="slide", scales=[1.0, 0.75])]
)
def test_masks_only_path_gives_the_argmax_of_the_probabilities(cfg):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in ((48, 80, 3), (48, 80, 3), (30, 50, 3))]
    predictor = Predictor(colour_model, 64, cfg)

    masks = predictor.predict_masks(images)

    for mask, probs in zip(masks, predictor.predict(images), strict=True):
        assert mask.dtype == np.uint8 and mask.shape == probs.shape[1:]
        np.testing.assert_array_equal(mask, probs.argmax(0))
    assert 0 < masks[0].mean() < 1  # both classes occur: the comparison above is not vacuous


@pytest.mark.parametrize("mode", ["resize", "slide"])
def test_a_height_and_width_size_feeds_the_network_that_shape(mode):
    """A model trained at [H, W] sees H×W inputs (×scale, in multiples of 32) and answers at the image's size."""
    seen = []

    def model(batch: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(batch.shape[1:3]))
        return colour_model(batch)

    image = np.zeros((90, 200, 3), np.uint8)
    image[:, 100:, 0] = 255
    cfg = InferConfig(mode=mode, scales=[1.0, 1.5], batch_size=64)
    mask = Predictor(model, (32, 64), cfg).predict_masks([image])[0]
    assert mask.shape == (90, 200) and (mask[:, 110:] == 1).all() and (mask[:, :90] == 0).all()
    assert set(seen) == {(32, 64)} if mode == "slide" else seen == [(32, 64), (64, 96)]


def test_slide_pads_images_smaller_than_the_window():
    image = np.zeros((20, 40, 3), np.uint8)
    image[:, 20:, 0] = 255
    probs = Predictor(colour_model, 64, InferConfig(mode="slide")).predict([image])[0]
    assert probs.shape == (2, 20, 40) and probs.argmax(0)[10, 30] == 1 and probs.argmax(0)[10, 5] == 0


def test_slide_windows_in_uneven_batches_each_get_their_own_output():
    # 3 × 4 = 12 windows of 64 at batch 5: chunks of 5, 5, 2; every window must land where its crop came from
    image = np.zeros((128, 160, 3), np.uint8)
    image[:, 96:, 0] = 255
    probs = Predictor(colour_model, 64, InferConfig(mode="slide", overlap=0.5, batch_size=5)).predict([image])[0]

    assert np.isfinite(probs).all()
    mask = probs.argmax(0)
    assert (mask[:, 100:] == 1).all() and (mask[:, :90] == 0).all()


def test_bf16_autocasts_on_cpu_and_fp16_does_not():
    """bf16 halves CPU inference time on CPUs with AVX512-BF16; fp16 autocast on CPU would only be slow."""
    seen = []

    def model(batch: torch.Tensor) -> torch.Tensor:
        seen.append(torch.is_autocast_enabled("cpu"))
        return colour_model(batch)

    image = np.zeros((32, 32, 3), np.uint8)
    image[:, :16, 0] = 255
    for precision in ("bf16", "16", "32"):
        mask = Predictor(model, 32, InferConfig(precision=precision)).predict([image])[0].argmax(0)
        assert (mask[:, :16] == 1).all() and (mask[:, 16:] == 0).all()
    assert seen == [True, False, False]


def test_scales_that_round_to_the_same_input_size_are_reported(caplog):
    """Inputs are multiples of 32, so at 64² scales 0.75/1/1.25 all give 64²: TTA that does nothing is named."""
    Predictor(colour_model, 64, InferConfig(scales=[0.75, 1.0, 1.25]))
    assert "round to input sizes 64×64, 64×64, 64×64" in caplog.text
    caplog.clear()
    Predictor(colour_model, 512, InferConfig(scales=[0.75, 1.0, 1.25]))
    assert caplog.text == ""
