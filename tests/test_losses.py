"""RDD maps, re-weighted task losses and KD losses: golden values on hand-computed tensors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from rdd.losses import (
    AttentionTransfer,
    ChannelWiseDistillation,
    ce_loss,
    hard_pixel_mask,
    pixel_kd,
    rdd_stats,
    tfe_task_loss,
    tfe_weights,
    tse_mask,
    tse_task_loss,
)

LN2, LN3 = math.log(2.0), math.log(3.0)
# KL([3/4, 1/4] ‖ [1/2, 1/2]) = 3/4·ln(3/2) + 1/4·ln(1/2) ≈ 0.130812
KL_34_HALF = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)


def px(*pixels):
    """Logits 1×K×1×P from a list of per-pixel K-vectors."""
    return torch.tensor(pixels, dtype=torch.float32).t().reshape(1, len(pixels[0]), 1, len(pixels))


def q_logits(*qs):
    """K=2 logits whose class-0 probability is q: [ln(q/(1-q)), 0]."""
    return px(*[[math.log(q / (1 - q)), 0.0] for q in qs])


def lab(*ids):
    return torch.tensor(ids, dtype=torch.long).reshape(1, 1, len(ids))


# --------------------------------------------------------------------------- TFE weights
def test_tfe_weights_golden():
    # pixel 0: main [0,0] → p=[1/2,1/2]; aux [0,0] → same: d = 0, w = 1
    # pixel 1: main [0,0] → [1/2,1/2]; aux [ln3,0] → [3/4,1/4]: d = KL(aux‖main) ≈ 0.130812
    # pixel 2: main [ln3,0] → [3/4,1/4]; aux [0,0] → [1/2,1/2]:
    #          d = 1/2·ln((1/2)/(3/4)) + 1/2·ln((1/2)/(1/4)) = 1/2·ln(4/3), w = sqrt(3/4)
    main = px([0, 0], [0, 0], [LN3, 0])
    aux = px([0, 0], [LN3, 0], [0, 0])
    w = tfe_weights(main, aux)
    assert w.shape == (1, 1, 3) and w.dtype == torch.float32
    expected = torch.tensor([[[1.0, math.exp(-KL_34_HALF), math.sqrt(0.75)]]])
    torch.testing.assert_close(w, expected)
    assert not w.requires_grad


def test_tfe_weights_resizes_aux_to_main_and_detaches():
    main = torch.randn(2, 3, 4, 6, requires_grad=True)
    aux_small = torch.zeros(2, 3, 2, 3, requires_grad=True)  # constant logits → uniform p
    w = tfe_weights(main, aux_small)
    assert w.shape == (2, 4, 6) and not w.requires_grad
    # uniform aux: KL(u ‖ p_main) = -ln K - mean_c log p_main,c
    logp = F.log_softmax(main.detach(), 1)
    torch.testing.assert_close(w, torch.exp(-(-math.log(3) - logp.mean(1))))
    with pytest.raises(ValueError, match="N×K"):
        tfe_weights(main, torch.zeros(2, 4, 4, 6))
    with pytest.raises(ValueError, match="aux=True"):
        tfe_weights(main, None)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(2, 5), st.floats(0.1, 8.0))
def test_tfe_weights_property_range(seed, k, scale):
    g = torch.Generator().manual_seed(seed)
    main = torch.randn(2, k, 3, 4, generator=g) * scale
    aux = torch.randn(2, k, 3, 4, generator=g) * scale
    w = tfe_weights(main, aux)
    assert bool(((w > 0) & (w <= 1)).all())
    torch.testing.assert_close(tfe_weights(main, main), torch.ones(2, 3, 4))


# --------------------------------------------------------------------------- TFE task loss
def test_tfe_task_loss_golden_reductions_and_aux():
    # student main logits [0,0] everywhere → CE = ln2 per pixel; target [0, 1, ignore]
    s = px([0, 0], [0, 0], [0, 0]).requires_grad_()
    y = lab(0, 1, 255)
    w = torch.tensor([[[1.0, 0.5, 0.7]]])
    # valid: (1·ln2 + 0.5·ln2) / 2 valid pixels = 0.75 ln2;  all: 1.5 ln2 / 3 pixels = 0.5 ln2
    assert tfe_task_loss(s, y, w).item() == pytest.approx(0.75 * LN2, rel=1e-6)
    assert tfe_task_loss(s, y, w, reduction="all").item() == pytest.approx(0.5 * LN2, rel=1e-6)
    # aux logits [ln3, 0] → p = [3/4, 1/4]: CE(gt 0) = ln(4/3), CE(gt 1) = ln 4
    a = px([LN3, 0], [LN3, 0], [LN3, 0])
    aux_term = (1.0 * math.log(4 / 3) + 0.5 * math.log(4)) / 2
    got = tfe_task_loss({"out": s, "aux": a}, y, w).item()
    assert got == pytest.approx(0.75 * LN2 + 0.4 * aux_term, rel=1e-6)
    got = tfe_task_loss(s, y, w, student_aux=a, aux_weight=1.0).item()
    assert got == pytest.approx(0.75 * LN2 + aux_term, rel=1e-6)
    with pytest.raises(ValueError, match="reduction"):
        tfe_task_loss(s, y, w, reduction="mean")


def test_tfe_task_loss_unit_weights_equal_ce_and_grads_student_only():
    torch.manual_seed(0)
    s = torch.randn(2, 4, 5, 6, requires_grad=True)
    t_main = torch.randn(2, 4, 5, 6, requires_grad=True)
    t_aux = torch.randn(2, 4, 5, 6, requires_grad=True)
    y = torch.randint(0, 4, (2, 5, 6))
    y[0, :2] = 255
    ref = F.cross_entropy(s, y, ignore_index=255)
    torch.testing.assert_close(tfe_task_loss(s, y, torch.ones(2, 5, 6)), ref)
    torch.testing.assert_close(ce_loss(s, y), ref)
    loss = tfe_task_loss(s, y, tfe_weights(t_main, t_aux))
    loss.backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t_main.grad is None and t_aux.grad is None


def test_tfe_task_loss_resolution_mismatch():
    # student logits 1×1 constant, labels 2×2: resized logits are the same constant everywhere
    s = torch.tensor([0.0, LN3]).reshape(1, 2, 1, 1)  # p = [1/4, 3/4]
    y = torch.tensor([[[0, 1], [1, 255]]])
    w_small = torch.full((1, 1, 1), 0.5)  # weights 1×1 → 2×2, all 0.5
    # valid: 0.5·(ln4 + ln(4/3) + ln(4/3)) / 3
    exp = 0.5 * (math.log(4) + 2 * math.log(4 / 3)) / 3
    assert tfe_task_loss(s, y, w_small).item() == pytest.approx(exp, rel=1e-6)


def test_tfe_task_loss_all_ignored_is_zero_not_nan():
    s = torch.randn(1, 3, 2, 2, requires_grad=True)
    y = torch.full((1, 2, 2), 255)
    loss = tfe_task_loss(s, y, torch.ones(1, 2, 2))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(s.grad).all() and s.grad.abs().sum() == 0
    assert ce_loss(s, y).item() == 0.0


# --------------------------------------------------------------------------- hard pixel mask
def test_hard_pixel_mask_threshold_and_min_kept_raises_tau():
    # GT-class probabilities q: pixel0 0.9, pixel1 0.5, pixel2 0.75 (class 1 via [0, ln3]), pixel3 ignored
    logits = px([math.log(9), 0], [0, 0], [0, LN3], [0, 0])
    y = lab(0, 0, 1, 255)
    m = lambda mk: hard_pixel_mask(logits, y, 0.7, mk)[0, 0].tolist()  # noqa: E731
    assert m(0.0) == [False, True, False, False]  # q ≤ 0.7: only 0.5
    assert m(0.3) == [False, True, False, False]  # k = ceil(0.9) = 1 ≤ 1 hard: τ unchanged
    assert m(0.5) == [False, True, True, False]  # k = ceil(1.5) = 2 → τ = 2nd smallest q = 0.75
    assert m(1.0) == [True, True, True, False]  # k = 3 → τ = 0.9; ignored pixel never hard
    assert hard_pixel_mask(logits, y, threshold=0.95)[0, 0].tolist() == [True, True, True, False]
    with pytest.raises(ValueError, match="min_kept"):
        hard_pixel_mask(logits, y, 0.7, 2.0)


def test_hard_pixel_mask_per_batch_vs_per_image():
    # image 0: q = [0.9, 0.95] (easy); image 1: q = [0.2, 0.6] (hard); τ = 0.7, min_kept = 0.5
    logits = torch.cat([q_logits(0.9, 0.95), q_logits(0.2, 0.6)])
    y = torch.zeros(2, 1, 2, dtype=torch.long)
    # per batch: n_valid = 4, k = 2, already 2 hard (image 1) → τ stays 0.7
    assert hard_pixel_mask(logits, y, 0.7, 0.5).squeeze(1).tolist() == [[False, False], [True, True]]
    # per image: image 0 has k = 1 and none hard → τ = 0.9 there; image 1 unchanged
    got = hard_pixel_mask(logits, y, 0.7, 0.5, per_image=True).squeeze(1).tolist()
    assert got == [[True, False], [True, True]]


def test_hard_pixel_mask_resizes_logits_to_target():
    logits = q_logits(0.5).reshape(1, 2, 1, 1)  # 1×1 → every pixel of a 3×4 label
    y = torch.zeros(1, 3, 4, dtype=torch.long)
    y[0, 0, 0] = 255
    m = hard_pixel_mask(logits, y)
    assert m.shape == (1, 3, 4) and m.sum() == 11 and not m[0, 0, 0]


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_hard_pixel_mask_property_min_kept(seed, thr, min_kept):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 3, 4, 5, generator=g) * 3
    y = torch.randint(0, 3, (2, 4, 5), generator=g)
    y[torch.rand(2, 4, 5, generator=g) < 0.3] = 255
    valid = y != 255
    m = hard_pixel_mask(logits, y, thr, min_kept)
    assert not bool((m & ~valid).any())
    assert int(m.sum()) >= math.ceil(min_kept * int(valid.sum()))
    q = F.softmax(logits, 1).gather(1, y.clamp(max=2).unsqueeze(1)).squeeze(1)
    assert bool(m[valid & (q <= thr)].all())  # raising τ only ever adds pixels


# --------------------------------------------------------------------------- TSE mask + loss
HARD, EASY = [0.0, 2.0], [3.0, 0.0]  # with GT 0: q ≈ 0.12 (hard), q ≈ 0.95 (easy)


def test_tse_mask_truth_tables():
    # pixels (student, teacher): (easy, easy) (easy, hard) (hard, easy) (hard, hard) (ignored)
    s = px(EASY, EASY, HARD, HARD, HARD)
    t = px(EASY, HARD, EASY, HARD, HARD)
    y = lab(0, 0, 0, 0, 255)
    table = {
        "xor": [False, True, True, False, False],
        "or": [False, True, True, True, False],
        "and": [False, False, False, True, False],
        "student": [False, False, True, True, False],
    }
    for mode, exp in table.items():
        assert tse_mask(s, t, y, mode=mode)[0, 0].tolist() == exp, mode
    with pytest.raises(ValueError, match="mode"):
        tse_mask(s, t, y, mode="nand")


def test_tse_mask_teacher_at_other_resolution():
    s = torch.tensor(HARD).reshape(1, 2, 1, 1).expand(1, 2, 4, 4).contiguous()
    t = torch.tensor(EASY).reshape(1, 2, 1, 1).expand(1, 2, 2, 2).contiguous()
    y = torch.zeros(1, 4, 4, dtype=torch.long)
    assert tse_mask(s, t, y).all()  # student hard, teacher easy everywhere → XOR all


def test_tse_task_loss_golden_and_aux():
    # student: p0 [0,0] gt0 → ln2;  p1 [ln3,0] gt1 → ln4;  p2 [ln3,0] gt0 → ln(4/3)
    s = px([0, 0], [LN3, 0], [LN3, 0]).requires_grad_()
    y = lab(0, 1, 0)
    mask = torch.tensor([[[False, True, True]]])
    exp = (math.log(4) + math.log(4 / 3)) / 2
    assert tse_task_loss(s, y, mask).item() == pytest.approx(exp, rel=1e-6)
    # aux = zeros → CE ln2 on both selected pixels
    a = torch.zeros_like(s)
    got = tse_task_loss(s, y, mask, student_aux=a).item()
    assert got == pytest.approx(exp + 0.4 * LN2, rel=1e-6)
    with pytest.raises(ValueError, match="mask"):
        tse_task_loss(s, y, mask.float())


def test_tse_task_loss_empty_mask_zero_with_finite_zero_grads():
    s = torch.randn(2, 3, 4, 4, requires_grad=True)
    a = torch.randn(2, 3, 4, 4, requires_grad=True)
    y = torch.randint(0, 3, (2, 4, 4))
    loss = tse_task_loss(s, y, torch.zeros(2, 4, 4, dtype=torch.bool), student_aux=a)
    assert loss.requires_grad and loss.item() == 0.0
    loss.backward()
    for g in (s.grad, a.grad):
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() == 0


def test_tse_end_to_end_grads_student_only():
    s = torch.randn(2, 3, 4, 4, requires_grad=True)
    t = torch.randn(2, 3, 4, 4, requires_grad=True)
    y = torch.randint(0, 3, (2, 4, 4))
    m = tse_mask(s, t, y, min_kept=0.25)
    assert not m.requires_grad
    tse_task_loss(s, y, m).backward()
    assert t.grad is None and s.grad.abs().sum() > 0


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.05, 0.95), st.floats(0.0, 0.5))
def test_tse_mask_property_set_algebra(seed, thr, mk):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(2, 3, 3, 5, generator=g) * 2
    t = torch.randn(2, 3, 3, 5, generator=g) * 2
    y = torch.randint(0, 3, (2, 3, 5), generator=g)
    y[0, 0] = 255
    ms = {m: tse_mask(s, t, y, thr, mk, mode=m) for m in ("xor", "or", "and", "student")}
    assert torch.equal(ms["xor"], ms["or"] & ~ms["and"])
    assert torch.equal(ms["and"] & ms["student"], ms["and"])
    assert not ms["or"][0, 0].any()
    assert torch.isfinite(tse_task_loss(s, y, ms["xor"]))


# --------------------------------------------------------------------------- pixel KD
def test_pixel_kd_golden_and_temperature():
    # pixel 0: teacher [ln3,0] → [3/4,1/4], student [0,0] → [1/2,1/2]: KL ≈ 0.130812
    # pixel 1: identical logits → 0.   mean over N·H·W = 2 pixels
    s = px([0, 0], [1, 2]).requires_grad_()
    t = px([LN3, 0], [1, 2])
    assert pixel_kd(s, t).item() == pytest.approx(KL_34_HALF / 2, rel=1e-6)
    # T = 2: teacher [2 ln3, 0]/2 = [ln3, 0] → same p_t; student zeros stay uniform; × T² = 4
    s2, t2 = px([0, 0]), px([2 * LN3, 0])
    assert pixel_kd(s2, t2, temperature=2.0).item() == pytest.approx(4 * KL_34_HALF, rel=1e-6)
    t.requires_grad_()
    pixel_kd(s, t).backward()
    assert t.grad is None and s.grad is not None
    with pytest.raises(ValueError, match="temperature"):
        pixel_kd(s, t, temperature=0)


def test_pixel_kd_teacher_resized_to_student():
    s = torch.zeros(1, 2, 4, 6)
    t = torch.tensor([LN3, 0.0]).reshape(1, 2, 1, 1)  # constant → every student pixel
    assert pixel_kd(s, t).item() == pytest.approx(KL_34_HALF, rel=1e-6)
    assert pixel_kd(s, s).item() == 0.0
    with pytest.raises(ValueError, match="channel"):
        pixel_kd(s, torch.zeros(1, 3, 4, 6))


# --------------------------------------------------------------------------- CWD / AT
def test_cwd_golden():
    # N=1, C=2, H×W = 1×2. channel 0: teacher [2ln3, 0]/τ=2 → spatial softmax [3/4, 1/4],
    # student [0, 0] → [1/2, 1/2]: KL ≈ 0.130812. channel 1: identical → 0.
    # loss = τ² · (0.130812 + 0) / (N·C = 2)
    s = torch.tensor([[[[0.0, 0.0]], [[5.0, 1.0]]]], requires_grad=True)
    t = torch.tensor([[[[2 * LN3, 0.0]], [[5.0, 1.0]]]], requires_grad=True)
    loss = ChannelWiseDistillation(tau=2.0)(s, t)
    assert loss.item() == pytest.approx(4 * KL_34_HALF / 2, rel=1e-6)
    loss.backward()
    assert t.grad is None and s.grad.abs().sum() > 0
    assert ChannelWiseDistillation()(t.detach(), t.detach()).item() == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="channel"):
        ChannelWiseDistillation()(s, torch.zeros(1, 3, 1, 2))


def test_attention_transfer_golden_different_channels_and_sizes():
    # student C=1: F = [1, 0] → A = [1, 0] → Q = [1, 0]
    # teacher C=2: F = [[1, 1], [1, 1]] → A = Σ_c F² = [2, 2] → Q = [1/√2, 1/√2]
    # mean((Q_s − Q_t)²) = ((1 − 1/√2)² + 1/2) / 2 = 1 − √2/2
    s = torch.tensor([[[[1.0, 0.0]]]], requires_grad=True)
    t = torch.ones(1, 2, 1, 2, requires_grad=True)
    loss = AttentionTransfer()(s, t)
    assert loss.item() == pytest.approx(1 - math.sqrt(2) / 2, rel=1e-6)
    loss.backward()
    assert t.grad is None and s.grad is not None
    # teacher at 2×4 with a constant map resizes to the same constant map
    t_big = torch.ones(1, 5, 2, 4)
    assert AttentionTransfer()(s, t_big).item() == pytest.approx(1 - math.sqrt(2) / 2, rel=1e-6)
    # p = 1 uses |F|: a sign flip changes nothing
    f = torch.randn(2, 3, 4, 4)
    assert AttentionTransfer(p=1)(f, -f).item() == pytest.approx(0.0, abs=1e-7)


# --------------------------------------------------------------------------- one weighted CE
def test_weighted_ce_golden_weight_avg_factor_and_loss_weight():
    from rdd.losses import weighted_ce

    # p0 = 3/4 at every pixel: CE = ln(4/3) for label 0, ln 4 for label 1; pixel 3 ignored
    s = px([LN3, 0], [LN3, 0], [LN3, 0], [LN3, 0])
    y = lab(0, 1, 0, 255)
    ce = [math.log(4 / 3), math.log(4), math.log(4 / 3)]
    assert weighted_ce(s, y).item() == pytest.approx(sum(ce) / 3, rel=1e-6)  # D = labelled
    w = torch.tensor([[[1.0, 0.5, 0.0, 9.0]]])  # ignored: no effect
    got = weighted_ce(s, y, w, avg_factor=2.0, loss_weight=3.0).item()
    assert got == pytest.approx(3.0 * (ce[0] + 0.5 * ce[1]) / 2.0, rel=1e-6)
    assert weighted_ce(s, torch.full_like(y, 255)).item() == 0.0  # not NaN


def test_task_losses_are_the_weighted_ce_of_their_weight_producers():
    """ce_loss, tfe_task_loss and tse_task_loss are weighted_ce with weight 1, the TFE weights
    and the 0/1 TSE mask: bit for bit, main head only."""
    from rdd.losses import weighted_ce

    torch.manual_seed(3)
    s, t, a = torch.randn(2, 4, 5, 6), torch.randn(2, 4, 5, 6), torch.randn(2, 4, 3, 3)
    y = torch.randint(0, 4, (2, 5, 6))
    y[1, 0] = 255
    n_valid = (y != 255).sum().float()
    assert torch.equal(ce_loss(s, y), weighted_ce(s, y))
    w = tfe_weights(t, a)
    assert torch.equal(tfe_task_loss(s, y, w), weighted_ce(s, y, w, avg_factor=n_valid))
    assert torch.equal(
        tfe_task_loss(s, y, w, reduction="all"), weighted_ce(s, y, w, avg_factor=float(y.numel()))
    )
    m = tse_mask(s, t, y, 0.7, 0.2)
    sel = (m & (y != 255)).float()
    assert torch.equal(tse_task_loss(s, y, m), weighted_ce(s, y, sel, avg_factor=sel.sum()))


def test_combine_hard_masks_is_the_tse_combination_for_tensors_and_arrays():
    import numpy as np

    from rdd.losses import combine_hard_masks

    sh, th = [False, True, False, True], [False, False, True, True]
    expect = {
        "xor": [False, True, True, False],
        "or": [False, True, True, True],
        "and": [False, False, False, True],
        "student": sh,
    }
    for mode, e in expect.items():
        assert combine_hard_masks(torch.tensor(sh), torch.tensor(th), mode).tolist() == e
        assert combine_hard_masks(np.array(sh), np.array(th), mode).tolist() == e
    with pytest.raises(ValueError, match="mode must be one of"):
        combine_hard_masks(torch.tensor(sh), torch.tensor(th), "nand")


def test_extra_kd_table_is_the_configurations_choices():
    from rdd.engine.config import EXTRA_KD_TYPES
    from rdd.losses import EXTRA_KD

    assert tuple(EXTRA_KD) == EXTRA_KD_TYPES  # the torch-free choices name these modules
    assert EXTRA_KD["cwd"] is ChannelWiseDistillation and EXTRA_KD["at"] is AttentionTransfer


# --------------------------------------------------------------------------- misc
def test_rdd_stats():
    y = lab(0, 0, 0, 255)
    w = torch.tensor([[[1.0, 0.5, 0.0, 0.2]]])
    mask = torch.tensor([[[True, False, False, True]]])
    th = torch.tensor([[[True, True, False, False]]])
    st_ = torch.tensor([[[False, False, False, False]]])
    r = rdd_stats(target=y, weights=w, mask=mask, teacher_hard=th, student_hard=st_)
    assert r == pytest.approx(
        {
            "tfe_weight_mean": 0.5,
            "tfe_weight_min": 0.0,
            "tse_selected_frac": 1 / 3,
            "teacher_hard_frac": 2 / 3,
            "student_hard_frac": 0.0,
        }
    )
    assert rdd_stats(weights=w) == pytest.approx({"tfe_weight_mean": 0.425, "tfe_weight_min": 0.0})


def test_bad_inputs_have_clear_errors():
    s = torch.zeros(1, 3, 2, 2)
    with pytest.raises(ValueError, match="N×K×H×W"):
        ce_loss(torch.zeros(3, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="integer labels"):
        ce_loss(s, torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match="outside"):
        ce_loss(s, torch.full((1, 2, 2), 7))
    with pytest.raises(ValueError, match="'out'"):
        ce_loss({"aux": s}, torch.zeros(1, 2, 2, dtype=torch.long))


def test_low_precision_logits_are_computed_in_float32():
    s = torch.randn(1, 3, 4, 4).to(torch.bfloat16).requires_grad_()
    y = torch.randint(0, 3, (1, 4, 4))
    loss = tse_task_loss(s, y, torch.ones(1, 4, 4, dtype=torch.bool)) + pixel_kd(s, s.detach() * 2)
    assert loss.dtype == torch.float32
    loss.backward()
    assert s.grad.dtype == torch.bfloat16


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.5, 4.0))
def test_property_bounds_and_nonnegativity(seed, temp):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(2, 3, 4, 5, generator=g) * 3
    t = torch.randn(2, 3, 4, 5, generator=g) * 3
    aux = torch.randn(2, 3, 4, 5, generator=g) * 3
    y = torch.randint(0, 3, (2, 4, 5), generator=g)
    y[1, :, :2] = 255
    w = tfe_weights(t, aux)
    # w ≤ 1 → the re-weighted loss never exceeds plain CE; "all" ≤ "valid" (bigger denominator)
    tfe_v = tfe_task_loss(s, y, w).item()
    assert tfe_v <= ce_loss(s, y).item() + 1e-6
    assert tfe_task_loss(s, y, w, reduction="all").item() <= tfe_v + 1e-6
    assert pixel_kd(s, t, temp).item() >= -1e-6
    assert ChannelWiseDistillation(temp)(s, t).item() >= -1e-6
    # AT: non-negative unit vectors have ‖a − b‖² = 2 − 2a·b ≤ 2; the mean divides by N·HW = 2·20
    assert 0.0 <= AttentionTransfer()(s, t).item() <= 2 * 2 / 40 + 1e-6


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    s = torch.randn(2, 3, 8, 8)
    t = torch.randn(2, 3, 8, 8)
    a = torch.randn(2, 3, 4, 4)
    y = torch.randint(0, 3, (2, 8, 8))
    y[0, 0] = 255
    for fn in (
        lambda s, t, a, y: tfe_task_loss(s, y, tfe_weights(t, a)),
        lambda s, t, a, y: tse_task_loss(s, y, tse_mask(s, t, y, min_kept=0.3)),
        lambda s, t, a, y: pixel_kd(s, t, 2.0) + ChannelWiseDistillation()(s, t) + AttentionTransfer()(s, a),
    ):
        cpu = fn(s, t, a, y)
        gpu = fn(s.cuda(), t.cuda(), a.cuda(), y.cuda())
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-4, atol=1e-5)
