"""Negative samplers (contract over every NegativeSampler): never PAD or MASK, shapes, log_q."""

import math

import pytest
import torch

from seqrec.negatives import InBatchSampler, MixedSampler, UniformSampler

N_ITEMS = 30
SAMPLERS = {
    "uniform": lambda n: UniformSampler(N_ITEMS, n),
    "in_batch": lambda n: InBatchSampler(N_ITEMS, n),
    "mixed": lambda n: MixedSampler(N_ITEMS, n, uniform_share=0.5),
    "mixed_mostly_uniform": lambda n: MixedSampler(N_ITEMS, n, uniform_share=0.9),
}


def _targets(generator: torch.Generator) -> torch.Tensor:
    """Skewed real targets in 1..N_ITEMS (never PAD)."""
    return torch.randint(1, N_ITEMS + 1, (40,), generator=generator) // 3 + 1


@pytest.mark.parametrize("layout", ["per_batch", "per_target", "per_sequence"])
@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_never_samples_pad_or_mask_over_many_draws(name, layout):
    sampler = SAMPLERS[name](16)
    generator = torch.Generator().manual_seed(0)
    seen = torch.zeros(N_ITEMS + 2, dtype=torch.bool)
    leading = {"per_batch": (), "per_target": (40,), "per_sequence": (7,)}[layout]
    expected = (*leading, 16)
    for _ in range(300):
        targets = _targets(generator)
        ids = sampler.sample(targets, leading, generator).ids
        assert ids.dtype == torch.int64
        assert ids.shape == expected
        assert ids.min() >= 1 and ids.max() <= N_ITEMS  # MASK would be N_ITEMS + 1
        seen[ids.reshape(-1)] = True
    if name.startswith("uniform") or name.startswith("mixed"):
        assert seen[1 : N_ITEMS + 1].all()  # the whole catalogue is reachable


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_log_q_only_for_non_uniform_proposals_and_it_is_a_distribution(name):
    sampler = SAMPLERS[name](8)
    targets = torch.tensor([1, 1, 1, 2, 5])
    negatives = sampler.sample(targets, (), torch.Generator().manual_seed(0))
    if name == "uniform":
        assert negatives.log_q is None
        return
    log_q = negatives.log_q
    assert log_q is not None and log_q.shape == (N_ITEMS + 1,)
    assert math.isclose(float(log_q[1:].exp().sum()), 1.0, abs_tol=1e-6)


def test_in_batch_log_q_written_out():
    log_q = InBatchSampler(5, 4).sample(torch.tensor([1, 1, 1, 2]), (),
                                        torch.Generator().manual_seed(0)).log_q
    expected = torch.log(torch.tensor([0.0, 0.75, 0.25, 0.0, 0.0, 0.0]))
    torch.testing.assert_close(log_q[1:], expected[1:])


def test_mixed_log_q_written_out():
    # 4 negatives, half uniform over 5 items, half in-batch over targets [1, 1, 1, 2]
    log_q = MixedSampler(5, 4, uniform_share=0.5).sample(
        torch.tensor([1, 1, 1, 2]), (), torch.Generator().manual_seed(0)).log_q
    q = [0.5 / 5 + 0.5 * share for share in (0.75, 0.25, 0.0, 0.0, 0.0)]
    torch.testing.assert_close(log_q[1:], torch.log(torch.tensor(q)), atol=1e-6, rtol=0)


def test_in_batch_negatives_come_from_the_batch_targets():
    targets = torch.tensor([4, 4, 9])
    ids = InBatchSampler(N_ITEMS, 64).sample(targets, (3,), torch.Generator().manual_seed(0)).ids
    assert set(ids.unique().tolist()) <= {4, 9}


def test_same_generator_seed_gives_the_same_draws():
    targets = torch.tensor([3, 4, 5, 6])
    for name in SAMPLERS:
        first = SAMPLERS[name](8).sample(targets, (4,), torch.Generator().manual_seed(7)).ids
        again = SAMPLERS[name](8).sample(targets, (4,), torch.Generator().manual_seed(7)).ids
        assert torch.equal(first, again), name
