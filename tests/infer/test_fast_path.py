"""The fast path of predict (issue 29): ``Predictor.segment`` gives the masks the probability path gives, the
label-resize path differs only next to class borders, and writes in threads keep the loop's promises."""

import threading

import cv2
import numpy as np
import pytest
import torch

from trashseg.config import InferConfig
from trashseg.infer.objects import find_objects
from trashseg.infer.predictor import Predictor
from trashseg.progress import for_each_pending

WEIGHTS = torch.tensor([[2.0, -1.0, 0.5, -2.0], [-1.5, 2.0, 0.0, 1.0], [0.5, -0.5, -2.0, 1.5]])


def texture_model(batch: torch.Tensor) -> torch.Tensor:
    """4 classes from a fixed per-pixel mix of the colours: many class borders on a textured image, and
    flip-equivariant, so every TTA view agrees where it should."""
    return torch.einsum("bhwc,ck->bkhw", batch.float() / 64.0 - 2.0, WEIGHTS)


def blobs(shape: tuple[int, int], seed: int) -> np.ndarray:
    """Smooth random colour blobs (noise blurred), uint8 RGB: class regions a few pixels to tens of pixels wide."""
    noise = np.random.default_rng(seed).random((*shape, 3)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 4)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return (smooth * 255).astype(np.uint8)


IMAGES = [blobs((96, 160), 0), blobs((96, 160), 1), blobs((50, 70), 2)]


@pytest.mark.parametrize(
    "cfg",
    [
        InferConfig(),
        InferConfig(hflip=True),
        InferConfig(hflip=True, vflip=True, scales=[0.75, 1.0]),
        InferConfig(mode="slide", scales=[1.0, 0.75]),
        # labels asked for, but probabilities wanted or more than one scale: the probability path, exactly
        InferConfig(mask_resize="labels", scales=[1.0, 1.5]),
    ],
)
def test_segment_gives_the_probability_paths_masks_probabilities_and_scores(cfg):
    predictor = Predictor(texture_model, 64, cfg)
    previous = predictor.predict(IMAGES)

    with_probs = predictor.segment(IMAGES, probs=True, scores=True)
    masks_only = predictor.segment(IMAGES) if cfg.mask_resize == "probs" else with_probs

    for probs, full, fast in zip(previous, with_probs, masks_only, strict=True):
        np.testing.assert_array_equal(full.mask, probs.argmax(0))
        np.testing.assert_array_equal(fast.mask, probs.argmax(0))
        np.testing.assert_array_equal(full.probs, probs)
        np.testing.assert_array_equal(full.scores, probs.max(0))
        assert fast.mask.dtype == np.uint8
    assert len(np.unique(previous[0].argmax(0))) >= 3  # many borders: the comparison is not vacuous


@pytest.mark.parametrize("hflip", [False, True])
def test_label_resize_is_exact_when_the_image_has_the_networks_size(hflip):
    images = [blobs((64, 64), 3), blobs((64, 64), 4)]
    probs_path = Predictor(texture_model, 64, InferConfig(hflip=hflip)).segment(images, scores=True)
    labels_path = Predictor(texture_model, 64, InferConfig(hflip=hflip, mask_resize="labels")).segment(
        images, scores=True
    )
    for a, b in zip(probs_path, labels_path, strict=True):
        np.testing.assert_array_equal(a.mask, b.mask)
        np.testing.assert_array_equal(a.scores, b.scores)


def test_label_resize_differs_only_next_to_class_borders():
    """At 96×160 from a 64² network (one network pixel covers 1.5 × 2.5 image pixels), resizing class ids instead
    of probabilities only moves borders, by about a network pixel: every differing pixel lies on a class border
    (3×3) of one of the two masks, never inside a region of both, and they are a small share of the image."""
    exact = Predictor(texture_model, 64, InferConfig()).segment(IMAGES)
    fast = Predictor(texture_model, 64, InferConfig(mask_resize="labels")).segment(IMAGES)
    kernel = np.ones((3, 3), np.uint8)
    differing = total = 0
    for a, b in zip(exact, fast, strict=True):
        assert b.mask.shape == a.mask.shape and b.mask.dtype == np.uint8
        border = (cv2.dilate(a.mask, kernel) != cv2.erode(a.mask, kernel)) | (
            cv2.dilate(b.mask, kernel) != cv2.erode(b.mask, kernel)
        )
        moved = a.mask != b.mask
        assert not (moved & ~border).any()
        differing += int(moved.sum())
        total += a.mask.size
    assert 0 < differing < 0.1 * total  # the borders did move a little (these blobs are mostly borders)


def test_objects_from_own_class_scores_match_objects_from_probabilities():
    """--objects without --save-probs uses each pixel's own-class probability: the same confidences."""
    classes = ["background", "a", "b", "c"]
    found = Predictor(texture_model, 64, InferConfig(hflip=True)).segment(IMAGES[:1], probs=True, scores=True)[0]
    from_probs = find_objects(found.mask, classes, found.probs)
    from_scores = find_objects(found.mask, classes, scores=found.scores)
    assert from_probs == from_scores and len(from_probs) > 3


def test_threaded_writes_write_everything_off_the_main_thread():
    written: dict[int, int] = {}
    threads = set()

    def write(item: int, result: int) -> None:
        threads.add(threading.current_thread().name)
        written[item] = result

    stats = for_each_pending(
        list(range(40)),
        label="t",
        finished=lambda item: item < 5,  # already done by an earlier run
        compute=lambda todo: (item * 2 for item in todo),
        write=write,
        writers=3,
    )
    assert written == {item: item * 2 for item in range(5, 40)}
    assert (stats.done, stats.skipped) == (35, 5)
    assert threads and all(name.startswith("write") for name in threads)


def test_a_failed_threaded_write_stops_the_loop_with_its_error():
    computed = []

    def compute(todo):
        for item in todo:
            computed.append(item)
            yield item

    def write(item: int, result: int) -> None:
        if item == 3:
            raise OSError("disk full writing item 3")

    with pytest.raises(OSError, match="disk full writing item 3"):
        for_each_pending(
            list(range(1000)), label="t", finished=lambda _: False, compute=compute, write=write, writers=2
        )
    assert len(computed) < 1000  # queued results are bounded: compute did not run to the end
