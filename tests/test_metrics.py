import numpy as np
import pytest
import torch

from trashseg.metrics import ConfusionMeter, confusion_matrix, resize_nearest, scores_from_confusion


def reference_scores(pairs, n_class):
    """The competition's own formula (its utils.py), re-typed independently: _fast_hist + label_accuracy_score."""
    hist = np.zeros((n_class, n_class))
    for lt, lp in pairs:
        lt, lp = lt.flatten(), lp.flatten()
        mask = (lt >= 0) & (lt < n_class)
        hist += np.bincount(n_class * lt[mask].astype(int) + lp[mask], minlength=n_class**2).reshape(n_class, n_class)
    acc = np.diag(hist).sum() / hist.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        acc_cls = np.nanmean(np.diag(hist) / hist.sum(axis=1))
        iu = np.diag(hist) / (hist.sum(axis=1) + hist.sum(axis=0) - np.diag(hist))
    mean_iu = np.nanmean(iu)
    freq = hist.sum(axis=1) / hist.sum()
    fwavacc = (freq[freq > 0] * iu[freq > 0]).sum()
    return acc, acc_cls, mean_iu, fwavacc, iu


def test_hand_computed_two_classes():
    gt = np.array([[0, 0], [1, 1]])
    pr = np.array([[0, 1], [1, 1]])
    s = scores_from_confusion(confusion_matrix(pr, gt, 2))
    # class 0: tp 1, fn 1, fp 0 -> 1/2 ; class 1: tp 2, fp 1 -> 2/3
    assert s.iou == pytest.approx([0.5, 2 / 3])
    assert s.miou == pytest.approx((0.5 + 2 / 3) / 2)
    assert s.pixel_acc == pytest.approx(0.75)
    assert s.mean_class_acc == pytest.approx((0.5 + 1.0) / 2)
    assert s.fwiou == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)


def test_absent_class_is_nan_and_left_out_of_mean():
    gt = np.array([[0, 2]])
    pr = np.array([[0, 2]])
    s = scores_from_confusion(confusion_matrix(pr, gt, 3))
    assert np.isnan(s.iou[1])
    assert s.miou == 1.0


def test_class_only_predicted_counts_as_zero():
    gt = np.array([[0, 0]])
    pr = np.array([[0, 1]])
    s = scores_from_confusion(confusion_matrix(pr, gt, 2))
    assert s.iou == pytest.approx([0.5, 0.0])
    assert s.miou == pytest.approx(0.25)


def test_ignore_index_pixels_are_skipped():
    gt = np.array([[0, 255, 1]])
    pr = np.array([[0, 0, 1]])
    assert scores_from_confusion(confusion_matrix(pr, gt, 2)).miou == 1.0


def test_matches_reference_on_random_masks_over_a_split():
    rng = np.random.default_rng(0)
    n = 11
    pairs = [(rng.integers(0, n, (64, 80)), rng.integers(0, n, (64, 80))) for _ in range(7)]
    pairs.append((np.zeros((64, 80), int), np.zeros((64, 80), int)))
    # make one class absent from both sides everywhere
    pairs = [(np.where(g == 7, 3, g), np.where(p == 7, 3, p)) for g, p in pairs]
    meter = ConfusionMeter(n)
    for g, p in pairs:
        meter.update(torch.from_numpy(p), torch.from_numpy(g))
    s = meter.compute()
    acc, acc_cls, miou, fw, iu = reference_scores(pairs, n)
    assert abs(s.miou - miou) < 1e-9
    assert abs(s.pixel_acc - acc) < 1e-9
    assert abs(s.mean_class_acc - acc_cls) < 1e-9
    assert abs(s.fwiou - fw) < 1e-9
    np.testing.assert_allclose(s.iou, iu, atol=1e-12, equal_nan=True)
    assert np.isnan(s.iou[7])


def test_out_of_range_prediction_and_shape_mismatch_raise():
    with pytest.raises(ValueError, match="prediction has class ids outside"):
        confusion_matrix(np.array([5]), np.array([0]), 3)
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(np.zeros((2, 2)), np.zeros((2, 3)), 3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_gpu_matches_cpu():
    rng = np.random.default_rng(1)
    g, p = rng.integers(0, 5, (2, 32, 32)), rng.integers(0, 5, (2, 32, 32))
    cpu = confusion_matrix(p, g, 5)
    gpu = confusion_matrix(torch.from_numpy(p).cuda(), torch.from_numpy(g).cuda(), 5)
    assert torch.equal(cpu, gpu.cpu())


def test_resize_nearest_keeps_labels():
    m = np.zeros((512, 512), np.uint8)
    m[:256, :256] = 3
    r = resize_nearest(m)
    assert r.shape == (256, 256)
    assert set(np.unique(r)) == {0, 3}
    assert (r[:128, :128] == 3).all() and (r[128:, 128:] == 0).all()
