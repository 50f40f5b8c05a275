"""Losses and candidate scoring: zero gradient off target, parity with full softmax, gBCE, logQ."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seqrec.build import build_parts
from seqrec.config import preset
from seqrec.losses import (
    BCELoss,
    GBCELoss,
    SampledSoftmaxLoss,
    SoftmaxLoss,
    candidate_logits,
    picked_logits,
    prior_logit,
)
from seqrec.train import TrainingModule

ATOL = 1e-5
N_ITEMS = 12

# every loss, with every sampler where the loss samples; (preset, overrides)
TRAINING_SETUPS = [
    ("esasrec", {"sampler": "uniform"}), ("esasrec", {"sampler": "in_batch"}),
    ("esasrec", {"sampler": "mixed"}), ("sasrec", {}), ("gsasrec", {"sampler": "in_batch"}),
    ("gsasrec", {"sampler": "uniform"}), ("bert4rec", {}),
    ("bert4rec", {"loss": "sampled_softmax", "n_negatives": 5}),
    ("esasrec", {"loss": "softmax"}),
]  # fmt: skip


@pytest.mark.parametrize(("name", "overrides"), TRAINING_SETUPS,
                         ids=[f"{n}-{'-'.join(map(str, o.values()))}" for n, o in TRAINING_SETUPS])
def test_loss_gradient_is_exactly_zero_at_non_target_positions(name, overrides):
    config = preset(name, **{"dim": 8, "max_seq_len": 6, "n_negatives": 5, "dropout": 0.0,
                             "mask_prob": 0.4, **overrides})
    torch.manual_seed(0)
    parts = build_parts(config, N_ITEMS)
    items = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 3, 5, 7], dtype=np.int64)
    offsets = np.array([0, 8, 10, 15], dtype=np.int64)  # left padding in rows 1 and 2
    batch = parts.objective.training_batch(items, offsets, np.arange(3), np.random.default_rng(0))
    assert (~batch.is_target).any() and batch.is_target.any()
    negative_ids = log_q = None
    if parts.sampler is not None:
        targets = batch.targets[batch.is_target]
        leading = {"per_batch": (), "per_sequence": (3,), "per_target": (len(targets),)}
        negatives = parts.sampler.sample(targets, leading[parts.layout],
                                         torch.Generator().manual_seed(0))
        negative_ids, log_q = negatives.ids, negatives.log_q
    captured = {}

    def keep_hidden(_module, _inputs, output):
        output.retain_grad()
        captured["hidden"] = output

    parts.encoder.final_norm.register_forward_hook(keep_hidden)
    loss = TrainingModule(parts)(batch.inputs, batch.targets, batch.is_target, negative_ids, log_q)
    loss.backward()
    grad = captured["hidden"].grad  # (batch, seq_len, dim)
    assert torch.isfinite(loss)
    assert torch.equal(grad[~batch.is_target], torch.zeros_like(grad[~batch.is_target]))
    assert (grad[batch.is_target].abs().sum(dim=1) > 0).all()


def _random_case(n_targets=7, dim=5, seed=0):
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n_targets, dim, generator=generator)
    embeddings = torch.randn(N_ITEMS + 1, dim, generator=generator)
    targets = torch.randint(1, N_ITEMS + 1, (n_targets,), generator=generator)
    return hidden, embeddings, targets


def test_sampled_softmax_over_the_whole_catalogue_equals_full_softmax():
    hidden, embeddings, targets = _random_case()
    everything = torch.arange(1, N_ITEMS + 1)  # the target is among them: an accidental hit
    logits, labels = candidate_logits(hidden, targets, embeddings, "per_batch", everything, None)
    sampled = SampledSoftmaxLoss()(logits, labels)
    full_logits, full_labels = candidate_logits(hidden, targets, embeddings, "catalogue", None, None)
    full = SoftmaxLoss()(full_logits, full_labels)
    reference = F.cross_entropy(hidden @ embeddings[1:].T, targets - 1)
    assert math.isclose(float(sampled), float(full), abs_tol=ATOL)
    assert math.isclose(float(full), float(reference), abs_tol=ATOL)


def test_accidental_hits_get_minus_inf_shared_and_per_target():
    hidden, embeddings, _ = _random_case(n_targets=2)
    targets = torch.tensor([3, 4])
    shared, _ = candidate_logits(hidden, targets, embeddings, "per_batch",
                                 torch.tensor([3, 4, 5]), None)
    assert torch.isneginf(shared[0, 1]) and torch.isneginf(shared[1, 2])
    assert torch.isfinite(shared[:, 0]).all() and torch.isfinite(shared[:, 3]).all()
    per_target, labels = candidate_logits(hidden, targets, embeddings, "per_target",
                                          torch.tensor([[3, 1], [1, 2]]), None)
    assert torch.isneginf(per_target[0, 1]) and torch.isfinite(per_target[1]).all()
    assert labels.tolist() == [0, 0]


def test_gbce_with_t_zero_equals_bce():
    logits = torch.randn(9, 6, generator=torch.Generator().manual_seed(1))
    labels = torch.zeros(9, dtype=torch.int64)
    gbce = GBCELoss(n_items=1000, n_negatives=5, t=0.0)
    assert math.isclose(gbce.beta, 1.0, abs_tol=1e-12)
    assert math.isclose(float(gbce(logits, labels)), float(BCELoss()(logits, labels)), abs_tol=ATOL)


def test_gbce_beta_and_value_hand_computed():
    # alpha = 10 / (101 - 1) = 0.1; beta = 0.1 * (0.5 * (1 - 10) + 10) = 0.55
    gbce = GBCELoss(n_items=101, n_negatives=10, t=0.5)
    assert math.isclose(gbce.beta, 0.55, abs_tol=1e-12)
    # prior logit b = log(0.55 / 10): sigma(b) = 0.055 / 1.055; logits 0 score b:
    # -0.55 log(0.055 / 1.055) - log(1 / 1.055)
    value = gbce(torch.zeros(1, 2), torch.zeros(1, dtype=torch.int64))
    expected = 0.55 * math.log(1.055 / 0.055) + math.log(1.055)
    assert math.isclose(float(value), expected, abs_tol=ATOL)
    assert math.isclose(GBCELoss(101, 10, t=1.0).beta, 0.1, abs_tol=1e-12)  # beta = alpha at t = 1


def test_bce_hand_computed():
    # two negatives: prior logit -ln 2, added to every logit
    # -log σ(2 - ln 2) - log(1 - σ(-1 - ln 2)) - log(1 - σ(0.5 - ln 2))
    value = BCELoss()(torch.tensor([[2.0, -1.0, 0.5]]), torch.zeros(1, dtype=torch.int64))
    softplus = lambda x: math.log1p(math.exp(x))  # noqa: E731
    b = -math.log(2)
    expected = softplus(-(2 + b)) + softplus(-1 + b) + softplus(0.5 + b)
    assert math.isclose(float(value), expected, abs_tol=ATOL)


def test_bce_with_one_negative_is_sasrecs_plain_binary_loss():
    logits = torch.tensor([[1.5, -0.5], [0.0, 2.0]])
    expected = (-F.logsigmoid(logits[:, 0]) - F.logsigmoid(-logits[:, 1])).mean()
    assert prior_logit(1.0, 1) == 0.0
    assert math.isclose(float(BCELoss()(logits, torch.zeros(2, dtype=torch.int64))), float(expected),
                        abs_tol=ATOL)


@pytest.mark.parametrize(("loss", "n_negatives"), [
    (BCELoss(), 1), (BCELoss(), 16), (BCELoss(), 256), (GBCELoss(1682, 256, t=0.75), 256),
    (GBCELoss(300, 16, t=0.75), 16), (GBCELoss(1000, 5, t=0.0), 5)])
def test_a_model_scoring_every_candidate_alike_sits_at_the_binary_losses_optimum(loss, n_negatives):
    # Logits near 0 are what a freshly initialised model gives. Were the loss's gradient along a
    # shift shared by all candidates not 0 there, the first steps would spend themselves moving
    # every item alike (with 256 negatives that push outweighed the target's term 53x to 240x in
    # the item rows' gradients, and gSASRec stayed at "the same logit for every item").
    shift = torch.zeros(1, requires_grad=True)
    logits = torch.zeros(3, 1 + n_negatives) + shift
    value = loss(logits, torch.zeros(3, dtype=torch.int64))
    (grad,) = torch.autograd.grad(value, shift)
    assert abs(float(grad)) < 1e-5
    beta = getattr(loss, "beta", 1.0)
    assert math.isclose(prior_logit(beta, n_negatives), math.log(beta / n_negatives), abs_tol=1e-12)


@pytest.mark.parametrize("loss", [BCELoss(), GBCELoss(10, 2)])
def test_binary_losses_reject_a_positive_outside_column_zero(loss):
    with pytest.raises(ValueError, match="column 0"):
        loss(torch.zeros(2, 3), torch.tensor([0, 1]))


def test_logq_correction_shifts_logits_by_minus_log_q_hand_checked():
    hidden = torch.tensor([[1.0, 0.0]])
    embeddings = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [2.0, 0.0]])  # PAD, 1, 2, 3
    q = torch.tensor([1.0, 0.5, 0.25, 0.25])
    logits, _ = candidate_logits(hidden, torch.tensor([1]), embeddings, "per_batch",
                                 torch.tensor([2, 3, 1]), torch.log(q))
    # raw scores: target 1 -> 1, negatives 2 -> 0, 3 -> 2, 1 -> accidental hit
    expected = [1 - math.log(0.5), 0 - math.log(0.25), 2 - math.log(0.25), -math.inf]
    assert logits[0].tolist() == pytest.approx(expected, abs=ATOL)
    per_target, _ = candidate_logits(hidden, torch.tensor([1]), embeddings, "per_target",
                                     torch.tensor([[3, 2]]), torch.log(q))
    assert per_target[0].tolist() == pytest.approx(expected[:1] + expected[2:0:-1], abs=ATOL)


def test_negatives_per_sequence_match_a_per_target_gather():
    generator = torch.Generator().manual_seed(3)
    batch, seq_len, dim, n_items, n_neg = 3, 4, 8, 20, 5
    sequence_hidden = torch.randn(batch, seq_len, dim, generator=generator)
    is_target = torch.tensor([[0, 1, 1, 1], [0, 0, 0, 1], [1, 1, 1, 1]], dtype=torch.bool)
    targets = torch.randint(1, n_items + 1, (int(is_target.sum()),), generator=generator)
    embeddings = torch.randn(n_items + 1, dim, generator=generator)
    ids = torch.randint(1, n_items + 1, (batch, n_neg), generator=generator)
    ids[0, 0] = targets[0]  # an accidental hit must be masked
    hidden = sequence_hidden[is_target]
    logits, labels = candidate_logits(hidden, targets, embeddings, "per_sequence", ids, None,
                                      sequence_hidden=sequence_hidden, is_target=is_target)
    per_target_ids = ids[is_target.nonzero()[:, 0]]  # (n_targets, n_neg)
    expected = torch.einsum("td,tnd->tn", hidden, embeddings[per_target_ids])
    expected = expected.masked_fill(per_target_ids == targets[:, None], float("-inf"))
    assert torch.isneginf(logits[0, 1])
    torch.testing.assert_close(logits[:, 1:], expected, atol=ATOL, rtol=0)
    torch.testing.assert_close(logits[:, 0], (hidden * embeddings[targets]).sum(-1), atol=ATOL, rtol=0)
    assert labels.eq(0).all()


def test_negatives_per_sequence_need_the_padded_hidden_states():
    with pytest.raises(ValueError, match="sequence_hidden"):
        candidate_logits(torch.randn(2, 4), torch.tensor([1, 2]), torch.randn(6, 4),
                         "per_sequence", torch.randint(1, 6, (2, 3)), None)


def test_sampled_softmax_with_negatives_per_target_scores_each_target_against_its_own_draw():
    generator = torch.Generator().manual_seed(5)
    hidden, embeddings = torch.randn(4, 6, generator=generator), torch.randn(11, 6, generator=generator)
    targets = torch.tensor([1, 2, 3, 4])
    ids = torch.randint(1, 11, (4, 3), generator=generator)
    ids[2, 1] = 3  # accidental hit of target 3
    logits, labels = candidate_logits(hidden, targets, embeddings, "per_target", ids, None)
    expected = torch.einsum("td,tnd->tn", hidden, embeddings[ids]).masked_fill(ids == targets[:, None],
                                                                             float("-inf"))
    torch.testing.assert_close(logits[:, 1:], expected, atol=ATOL, rtol=0)
    assert torch.isneginf(logits[2, 2]) and labels.eq(0).all()


@pytest.mark.parametrize(("n_negatives", "dim", "n_rows"), [
    (3, 6, 11),  # rows <= n_negatives * dim: one matmul over the rows, then a pick
    (2, 3, 11),  # rows > n_negatives * dim: a gather of the drawn rows
    (40, 4, 30)])  # more draws than rows, with repeats
def test_negatives_per_target_match_a_loop_in_values_and_gradients(n_negatives, dim, n_rows):
    generator = torch.Generator().manual_seed(7)
    hidden = torch.randn(5, dim, generator=generator, requires_grad=True)
    embeddings = torch.randn(n_rows, dim, generator=generator, requires_grad=True)
    targets = torch.randint(1, n_rows, (5,), generator=generator)
    ids = torch.randint(1, n_rows, (5, n_negatives), generator=generator)
    ids[0, 0] = targets[0]  # an accidental hit
    logits, _ = candidate_logits(hidden, targets, embeddings, "per_target", ids, None)
    expected = torch.stack([torch.stack([hidden[t] @ embeddings[targets[t]]] + [
        hidden[t] @ embeddings[ids[t, n]] if ids[t, n] != targets[t] else torch.tensor(-math.inf)
        for n in range(n_negatives)]) for t in range(5)])
    torch.testing.assert_close(logits, expected, atol=ATOL, rtol=0)
    weights = torch.randn(logits.shape, generator=generator)
    finite = torch.isfinite(expected)
    grads = torch.autograd.grad((logits[finite] * weights[finite]).sum(), (hidden, embeddings))
    expected_grads = torch.autograd.grad((expected[finite] * weights[finite]).sum(), (hidden, embeddings))
    for got, want in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=0)


@pytest.mark.parametrize("block_bytes", [4 * 11 * 2, 4 * 11 * 3, 4 << 20])  # 2 rows, 3, all
def test_picked_logits_in_blocks_equal_the_full_matmul_and_gather(monkeypatch, block_bytes):
    monkeypatch.setattr("seqrec.losses.PICK_BLOCK_BYTES", block_bytes)
    generator = torch.Generator().manual_seed(3)
    hidden = torch.randn(7, 5, generator=generator, requires_grad=True)  # 7 rows: a short block
    embeddings = torch.randn(11, 5, generator=generator, requires_grad=True)
    ids = torch.randint(0, 11, (7, 9), generator=generator)  # repeats within a row
    weights = torch.randn(7, 9, generator=generator)
    got = picked_logits(hidden, embeddings, ids)
    want = (hidden @ embeddings.T).gather(1, ids)
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)
    grads = torch.autograd.grad((got * weights).sum(), (hidden, embeddings))
    want_grads = torch.autograd.grad((want * weights).sum(), (hidden, embeddings))
    for g, w in zip(grads, want_grads, strict=True):
        torch.testing.assert_close(g, w, atol=1e-4, rtol=0)


@pytest.mark.parametrize("frozen", ["hidden", "embeddings"])
def test_picked_logits_differentiate_only_what_needs_a_gradient(frozen):
    generator = torch.Generator().manual_seed(4)
    hidden = torch.randn(6, 5, generator=generator, requires_grad=frozen != "hidden")
    embeddings = torch.randn(11, 5, generator=generator, requires_grad=frozen != "embeddings")
    ids = torch.randint(0, 11, (6, 4), generator=generator)
    weights = torch.randn(6, 4, generator=generator)
    (picked_logits(hidden, embeddings, ids) * weights).sum().backward()
    live, dead = (embeddings, hidden) if frozen == "hidden" else (hidden, embeddings)
    want_live = live.detach().clone().requires_grad_()
    pair = (hidden.detach(), want_live) if frozen == "hidden" else (want_live, embeddings.detach())
    ((pair[0] @ pair[1].T).gather(1, ids) * weights).sum().backward()
    assert dead.grad is None
    torch.testing.assert_close(live.grad, want_live.grad, atol=1e-5, rtol=0)


def test_picked_logits_of_no_targets_are_empty():
    hidden = torch.zeros(0, 4, requires_grad=True)
    logits = picked_logits(hidden, torch.randn(6, 4), torch.zeros(0, 3, dtype=torch.int64))
    assert logits.shape == (0, 3)


def test_negatives_of_the_wrong_shape_for_the_layout_are_refused():
    hidden, embeddings, targets = _random_case(n_targets=2)
    with pytest.raises(ValueError, match="per_target"):
        candidate_logits(hidden, targets, embeddings, "per_target", torch.tensor([1, 2]), None)


@pytest.mark.parametrize(("settings", "layout"), [
    ({"loss": "softmax"}, "catalogue"), ({"loss": "bce"}, "per_target"),
    ({"loss": "gbce", "negative_sharing": "sequence"}, "per_target"),
    ({"negative_sharing": "batch"}, "per_batch"), ({"negative_sharing": "sequence"}, "per_sequence"),
    ({"negative_sharing": "target"}, "per_target")])
def test_the_candidate_layout_is_decided_once_from_the_config(settings, layout):
    assert build_parts(preset("esasrec", **settings), N_ITEMS).layout == layout
