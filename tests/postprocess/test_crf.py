import numpy as np

from trashseg.config import CRFConfig
from trashseg.postprocess.crf import dense_crf, dense_crf_many


def _scene():
    """Left half dark, right half bright; probabilities only weakly and noisily favour the right labels."""
    rng = np.random.default_rng(0)
    image = np.zeros((48, 64, 3), np.uint8)
    image[:, 32:] = 220
    truth = np.zeros((48, 64), int)
    truth[:, 32:] = 1
    p1 = np.clip(np.where(truth == 1, 0.6, 0.4) + rng.normal(0, 0.15, truth.shape), 0.01, 0.99)
    return image, np.stack([1 - p1, p1]).astype(np.float32), truth


def test_crf_follows_image_edges_and_returns_distributions():
    image, probs, truth = _scene()
    before = (probs.argmax(0) == truth).mean()
    refined = dense_crf(image, probs, CRFConfig(iterations=5))
    assert refined.shape == probs.shape
    np.testing.assert_allclose(refined.sum(0), 1.0, atol=1e-4)
    assert (refined.argmax(0) == truth).mean() > max(0.97, before + 0.05)


def test_upscaled_crf_and_parallel_map_keep_size_and_order():
    image, probs, truth = _scene()
    up = dense_crf(image, probs, CRFConfig(iterations=2, upscale=2.0))
    assert up.shape == probs.shape and (up.argmax(0) == truth).mean() > 0.9
    flipped = (image[:, ::-1].copy(), probs[:, :, ::-1].copy())
    out = list(dense_crf_many([(image, probs), flipped], CRFConfig(iterations=2, workers=2)))
    assert (out[0].argmax(0) == truth).mean() > 0.9 and (out[1].argmax(0) == truth[:, ::-1]).mean() > 0.9


def test_parallel_crf_reads_ahead_only_a_few_images():
    image, probs, _ = _scene()
    loaded = []

    def pairs():
        for k in range(12):
            loaded.append(k)
            yield image, probs

    results = dense_crf_many(pairs(), CRFConfig(iterations=1, workers=2))
    next(results)
    assert len(loaded) <= 5  # two in flight per worker (+ the one being submitted), not the whole split
    assert len(list(results)) == 11
