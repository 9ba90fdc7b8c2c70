import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trashseg.config import LossConfig, OptimConfig
from trashseg.errors import TrashsegError
from trashseg.train.losses import SegmentationLoss, class_weights_from_shares, logit_adjustment_bias
from trashseg.train.optim import build_optimizer, build_scheduler, lr_factor, step_progress


def test_class_weights_inverse_and_sqrt():
    shares = np.array([0.9, 0.09, 0.01, 0.0])
    inv = class_weights_from_shares(shares, "inverse")
    sq = class_weights_from_shares(shares, "sqrt_inverse")
    assert inv[3] == 0 and sq[3] == 0
    assert inv[:3].mean().item() == pytest.approx(1.0)
    assert inv[2] / inv[0] == pytest.approx(90.0)
    assert sq[2] / sq[0] == pytest.approx(90.0**0.5)
    assert class_weights_from_shares(shares, "none") is None


def test_logit_adjustment_takes_back_a_share_of_the_class_weights():
    weights = torch.tensor([0.25, 4.0, 0.0])
    assert logit_adjustment_bias(weights, 0.5) == pytest.approx([np.log(2), -np.log(2), 0.0], abs=1e-6)
    # share 1 turns a weighted posterior p·w back into p: a pixel the weights pushed to the rare class returns
    p = torch.tensor([0.7, 0.3, 0.0])
    tilted = (p * weights).clamp_min(1e-9).log()
    assert tilted.argmax() == 1
    assert (tilted + torch.tensor(logit_adjustment_bias(weights, 1.0))).argmax() == 0


@pytest.mark.parametrize("weighting", ["pixel", "margin"])
def test_either_weighting_learns_the_posterior_times_the_class_weights(weighting):
    """What logit_adjustment relies on: the trained logits' softmax is p·w (normalised), whichever way weights act."""
    p, weights = torch.tensor([0.7, 0.2, 0.1]), torch.tensor([0.5, 1.0, 2.0])
    target = torch.tensor([0] * 7 + [1] * 2 + [2]).view(1, 10, 1)  # ten pixels with one shared logit vector
    loss = SegmentationLoss(LossConfig(class_weights="inverse", weighting=weighting), 255, weights)
    logits = torch.zeros(3, requires_grad=True)
    start = loss(logits.view(1, 3, 1, 1).expand(1, 3, 10, 1), target)
    as_margins = F.cross_entropy(-weights.log().view(1, 3, 1, 1).expand(1, 3, 10, 1), target)  # each pixel alike
    assert (start.item() == pytest.approx(as_margins.item())) == (weighting == "margin")
    opt = torch.optim.Adam([logits], lr=0.05)
    for _ in range(600):
        opt.zero_grad()
        loss(logits.view(1, 3, 1, 1).expand(1, 3, 10, 1), target).backward()
        opt.step()
    expected = p * weights / (p * weights).sum()
    assert logits.softmax(0).detach() == pytest.approx(expected.tolist(), abs=0.01)


def test_margin_weighting_needs_class_weights():
    with pytest.raises(ValueError, match="weighting: margin turns class weights into margins"):
        LossConfig(weighting="margin")


TERMS = ["ce", "dice", "focal", "lovasz", "ohem"]


@pytest.mark.parametrize("term", TERMS)
def test_each_term_ignores_ignore_index_and_rewards_correct_logits(term):
    cfg = LossConfig(**{"ce": 0.0, term: 1.0})
    loss = SegmentationLoss(cfg, ignore_index=255)
    target = torch.randint(0, 3, (2, 8, 8))
    good = torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float() * 10
    bad = torch.roll(good, 1, dims=1)
    assert loss(good, target) < loss(bad, target)
    ignored = target.clone()
    ignored[:, :4] = 255
    scrambled = good.clone()
    scrambled[:, :, :4] = bad[:, :, :4]  # wrong only where ignored
    assert loss(scrambled, ignored).item() == pytest.approx(loss(good, ignored).item(), abs=1e-5)


@pytest.mark.parametrize("term", TERMS)
def test_each_term_takes_bf16_logits_under_autocast(term):
    """bf16-mixed training hands the loss bf16 logits; every term must give the float32 value it gives on fp32."""
    loss = SegmentationLoss(LossConfig(**{"ce": 0.0, term: 1.0}), ignore_index=255)
    target = torch.randint(0, 3, (2, 8, 8))
    logits = torch.randn(2, 3, 8, 8).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss(logits, target)
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(loss(logits.float(), target).item(), rel=1e-4)


def test_weighted_sum():
    target = torch.randint(0, 3, (1, 4, 4))
    logits = torch.randn(1, 3, 4, 4)
    ce = SegmentationLoss(LossConfig(ce=1.0), 255)(logits, target)
    dice = SegmentationLoss(LossConfig(ce=0.0, dice=1.0), 255)(logits, target)
    both = SegmentationLoss(LossConfig(ce=0.5, dice=2.0), 255)(logits, target)
    assert both.item() == pytest.approx(0.5 * ce.item() + 2.0 * dice.item(), rel=1e-5)


def test_ohem_averages_the_hard_pixels_only():
    """Pixels already right with p > thresh drop out of the mean; below min_kept the highest losses fill it up."""
    target = torch.zeros(1, 1, 10, dtype=torch.long)
    logits = torch.zeros(1, 2, 1, 10)
    logits[0, 0, 0, :8] = 5.0  # 8 easy pixels (p ≈ 0.99), 2 hard ones at p = 0.5
    per_pixel = torch.nn.functional.cross_entropy(logits, target, reduction="none").flatten()
    ohem = SegmentationLoss(LossConfig(ce=0.0, ohem=1.0, ohem_thresh=0.7, ohem_min_kept=0.1), 255)
    assert ohem(logits, target).item() == pytest.approx(per_pixel[8:].mean().item())
    wide = SegmentationLoss(LossConfig(ce=0.0, ohem=1.0, ohem_thresh=0.7, ohem_min_kept=0.5), 255)
    assert wide(logits, target).item() == pytest.approx(per_pixel.topk(5).values.mean().item())
    assert ohem(logits, target).item() > SegmentationLoss(LossConfig(ce=1.0), 255)(logits, target).item()


def test_all_zero_weights_rejected():
    with pytest.raises(TrashsegError, match="every term has weight 0; set at least one of loss.ce, loss.dice"):
        SegmentationLoss(LossConfig(ce=0.0), 255)


def test_warmup_then_cosine_to_min():
    cfg = OptimConfig(schedule="cosine", min_lr_ratio=0.1)
    by_step = step_progress(100, 10)
    assert lr_factor(cfg, 0, 10, by_step(0)) == pytest.approx(0.1)
    assert lr_factor(cfg, 9, 10, by_step(9)) == pytest.approx(1.0)
    assert lr_factor(cfg, 10, 10, by_step(10)) == pytest.approx(1.0)
    assert lr_factor(cfg, 100, 10, by_step(100)) == pytest.approx(0.1)
    assert lr_factor(cfg, 55, 10, by_step(55)) == pytest.approx(0.1 + 0.9 * 0.5)


def test_a_time_budget_ends_the_decay_when_it_runs_out_before_the_steps():
    """fit_schedule_to_time_limit: the decay follows the share of the budget spent once it is ahead of the steps,
    and reaches its floor when the budget is spent, whatever step the run is at."""
    cfg = OptimConfig(lr=1.0, schedule="cosine", min_lr_ratio=0.0, warmup_epochs=1)
    spent = [0.0]
    opt = build_optimizer(cfg, [torch.nn.Parameter(torch.zeros(1))])
    sched = build_scheduler(cfg, opt, total_steps=1000, steps_per_epoch=2, elapsed=lambda: spent[0])
    lrs = []
    for share in (0.0, 0.0, 0.0, 0.5, 1.0, 1.3):
        spent[0] = share
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[:3] == pytest.approx([1.0, 1.0, 1.0], abs=0.01)  # warmup done; by steps barely started
    assert lrs[3:] == pytest.approx([0.5, 0.0, 0.0], abs=1e-6)  # half the budget: half-way down the cosine


def test_poly_schedule_and_scheduler_steps_lr():
    cfg = OptimConfig(name="sgd", lr=0.1, schedule="poly", min_lr_ratio=0.0, poly_power=1.0)
    opt = build_optimizer(cfg, [torch.nn.Parameter(torch.zeros(1))])
    sched = build_scheduler(cfg, opt, total_steps=10, steps_per_epoch=5)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.1) and lrs[5] == pytest.approx(0.05)
