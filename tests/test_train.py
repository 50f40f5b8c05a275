"""Training: learns a deterministic pattern, is reproducible, stops early on patience with the best
weights restored, and resumes from a checkpoint exactly like an uninterrupted run."""

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import small_config
from safetensors.torch import load_file

from seqrec import PopularRecommender, SequentialRecommender, evaluate
from seqrec.optim import touched_rows


def _ndcg(model, heldout) -> float:
    return evaluate(model, heldout, metrics=("ndcg",)).means["ndcg@10"]


def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.parts.encoder.state_dict().items()}


def _assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.fixture(scope="module")
def popular_ndcg(pattern):
    dataset, split = pattern
    popular = PopularRecommender()
    popular.fit(dataset, split.train)
    return _ndcg(popular, split.test)


# measured on the pattern (300 users, 50 items, 40 epochs): esasrec 1.00, sasrec 1.00,
# bert4rec 0.74, hstu 1.00, fuxi_alpha 1.00, popularity 0.09; margins leave room for platform
# differences.
@pytest.mark.parametrize(("name", "margin"), [("esasrec", 0.8), ("sasrec", 0.7), ("bert4rec", 0.4),
                                             ("hstu", 0.8), ("fuxi_alpha", 0.8)])
def test_small_model_beats_popularity_by_a_wide_margin_on_a_deterministic_pattern(
        pattern, popular_ndcg, name, margin):
    dataset, split = pattern
    model = SequentialRecommender(small_config(name))
    model.fit(dataset, split.train)  # about 2 s on one idle CPU thread
    assert popular_ndcg < 0.2
    assert _ndcg(model, split.test) >= popular_ndcg + margin


@pytest.mark.parametrize("updates", ["sparse", "dense"])
def test_cosine_similarity_learns_the_pattern_with_either_item_update(pattern, popular_ndcg,
                                                                      updates):
    dataset, split = pattern
    model = SequentialRecommender(small_config("fuxi_alpha", similarity="cosine",
                                               item_updates=updates))
    model.fit(dataset, split.train)
    assert _ndcg(model, split.test) >= popular_ndcg + 0.8


@pytest.mark.parametrize(("name", "updates"), [("esasrec", "sparse"), ("esasrec", "dense"),
                                               ("esasrec", "cosine"), ("bert4rec", "dense")])
def test_scores_after_each_epoch_use_the_current_item_table(pattern, name, updates):
    """Validation after every epoch must rank with the weights of that epoch. The fused Adam
    kernel (dense item updates; bert4rec's full softmax) changes parameters without advancing
    their version counters, on which the recommender's cached item columns are keyed: before the
    fix, validation after epoch 2 onwards scored with epoch 1's item table."""
    dataset, split = pattern
    overrides = ({"similarity": "cosine"} if updates == "cosine" else {"item_updates": updates})
    model = SequentialRecommender(small_config(name, epochs=3, **overrides))
    checked = []

    def on_epoch(record):
        rows = np.arange(8)
        hidden = model.encode_histories(split.train.items, split.train.offsets, rows)
        expected = hidden @ model.parts.encoder.candidate_embeddings().detach().T
        expected[:, 0] = float("-inf")
        torch.testing.assert_close(model.score_items(hidden), expected, atol=1e-5, rtol=1e-5)
        checked.append(record.epoch)

    model.fit(dataset, split.train, validation=split.validation, on_epoch=on_epoch)
    assert checked == [1, 2, 3]


@pytest.fixture(scope="module")
def wide_pattern():
    """``(dataset, split, popularity NDCG@10)`` of the deterministic pattern over 300 items: room
    for the gsasrec preset's 256 negatives per target, so that most items are negatives of
    every target, as on dense data."""
    from conftest import pattern_interactions

    from seqrec import build_dataset, leave_one_out

    dataset = build_dataset(pattern_interactions(n_users=300, n_items=300))
    split = leave_one_out(dataset)
    popular = PopularRecommender()
    popular.fit(dataset, split.train)
    return dataset, split, _ndcg(popular, split.test)


# measured (300 users, 300 items, 20 epochs): popularity 0.01. Without the binary losses' prior
# logit, gsasrec reached 0.02 and BCE with 256 negatives 0.02 (all logits fell together to the
# constant -log 256 and the ranking stayed random); with it each is 1.00, as BCE with 1 negative.
def test_gsasrec_with_256_negatives_per_target_beats_popularity_by_a_wide_margin(wide_pattern):
    dataset, split, popular_ndcg = wide_pattern
    model = SequentialRecommender(small_config("gsasrec", n_negatives=256, epochs=20))
    model.fit(dataset, split.train)  # about 3 s on one idle CPU thread
    assert popular_ndcg < 0.1
    assert _ndcg(model, split.test) >= popular_ndcg + 0.7


def test_bce_does_not_get_worse_as_the_negatives_per_target_grow(wide_pattern):
    dataset, split, _ = wide_pattern
    ndcg = {}
    for n_negatives in (1, 16, 256):
        model = SequentialRecommender(small_config("sasrec", n_negatives=n_negatives, epochs=20))
        model.fit(dataset, split.train)
        ndcg[n_negatives] = _ndcg(model, split.test)
    assert ndcg[1] > 0.7, ndcg  # one negative learns the pattern: the comparison means something
    assert ndcg[16] >= ndcg[1] - 0.05, ndcg
    assert ndcg[256] >= ndcg[16] - 0.05, ndcg


def test_two_fits_with_the_same_seed_give_identical_losses_weights_and_metrics(pattern):
    dataset, split = pattern
    runs = []
    for global_seed in (1, 2):  # the global generator's state must not matter
        torch.manual_seed(global_seed)
        model = SequentialRecommender(small_config(epochs=3, sampler="mixed"))
        result = model.fit(dataset, split.train, validation=split.validation)
        runs.append((result, _weights(model), _ndcg(model, split.test)))
    (first, w1, m1), (second, w2, m2) = runs
    assert [h.loss for h in first.history] == [h.loss for h in second.history]
    assert [h.validation_ndcg for h in first.history] == [h.validation_ndcg for h in second.history]
    _assert_same_weights(w1, w2)
    assert m1 == m2


def test_different_seeds_give_different_runs(pattern):
    dataset, split = pattern
    losses = []
    for seed in (0, 1):
        result = SequentialRecommender(small_config(epochs=1, seed=seed)).fit(dataset, split.train)
        losses.append(result.history[0].loss)
    assert losses[0] != losses[1]


def test_early_stopping_respects_patience_and_restores_the_best_weights(pattern, tmp_path):
    dataset, split = pattern
    model = SequentialRecommender(small_config(epochs=60, patience=2))
    result = model.fit(dataset, split.train, validation=split.validation, checkpoint_dir=tmp_path)
    metrics = [h.validation_ndcg for h in result.history]
    assert result.stopped_early
    assert len(result.history) == result.best_epoch + 2 < 60
    assert result.best_metric == max(metrics) == metrics[result.best_epoch - 1]
    assert all(m <= result.best_metric for m in metrics[result.best_epoch :])
    # the final weights are the best epoch's, not the last epoch's
    checkpoint = tmp_path / "checkpoint"
    _assert_same_weights(_weights(model), load_file(checkpoint / "best.safetensors"))
    last = load_file(checkpoint / "weights.safetensors")
    assert any(not torch.equal(v, last[f"encoder.{k}"]) for k, v in _weights(model).items())
    assert _ndcg(model, split.validation) == pytest.approx(result.best_metric, abs=1e-9)


def test_patience_zero_never_stops_early(pattern):
    dataset, split = pattern
    result = SequentialRecommender(small_config(epochs=3, patience=0)).fit(
        dataset, split.train, validation=split.validation)
    assert len(result.history) == 3 and not result.stopped_early


def test_resume_after_an_interruption_equals_the_uninterrupted_run(pattern, tmp_path):
    dataset, split = pattern
    full = SequentialRecommender(small_config(epochs=4))
    full_result = full.fit(dataset, split.train, validation=split.validation,
                           checkpoint_dir=tmp_path / "full")
    first = SequentialRecommender(small_config(epochs=2))
    first.fit(dataset, split.train, validation=split.validation, checkpoint_dir=tmp_path / "cut")
    resumed = SequentialRecommender(small_config(epochs=4))
    resumed_result = resumed.fit(dataset, split.train, validation=split.validation,
                                 checkpoint_dir=tmp_path / "cut", resume=True)
    assert [h.loss for h in resumed_result.history] == [h.loss for h in full_result.history]
    assert [h.validation_ndcg for h in resumed_result.history] == [
        h.validation_ndcg for h in full_result.history]
    assert (resumed_result.best_epoch, resumed_result.best_metric) == (
        full_result.best_epoch, full_result.best_metric)
    _assert_same_weights(_weights(resumed), _weights(full))


def test_resume_without_a_checkpoint_starts_from_scratch(pattern, tmp_path):
    dataset, split = pattern
    a = SequentialRecommender(small_config(epochs=2))
    a.fit(dataset, split.train, checkpoint_dir=tmp_path / "empty", resume=True)
    b = SequentialRecommender(small_config(epochs=2))
    b.fit(dataset, split.train)
    _assert_same_weights(_weights(a), _weights(b))


@pytest.mark.parametrize("leftover", ["half_written_stage", "between_fallback_renames",
                                      "stale_old_copy"])
def test_resume_survives_a_kill_at_any_point_of_the_checkpoint_swap(pattern, tmp_path, leftover):
    """A checkpoint is built in .checkpoint.tmp-<pid>-<x> and swapped in (seqrec.files); without
    RENAME_EXCHANGE the swap is two renames through .checkpoint.old-<pid>-<x>. A kill may leave
    any of these states behind (pid 99999999: a process that no longer runs)."""
    dataset, split = pattern
    full = SequentialRecommender(small_config(epochs=3))
    full.fit(dataset, split.train)
    first = SequentialRecommender(small_config(epochs=2)).fit(dataset, split.train,
                                                              checkpoint_dir=tmp_path)
    checkpoint = tmp_path / "checkpoint"
    staged = tmp_path / ".checkpoint.tmp-99999999-0a0b"
    staged.mkdir()
    (staged / "weights.safetensors").write_bytes(b"half written")
    if leftover == "between_fallback_renames":  # the old one moved aside, the new one not in
        checkpoint.rename(tmp_path / ".checkpoint.old-99999999-0a0b")
    elif leftover == "stale_old_copy":  # the clean-up of the old copy was cut short
        (tmp_path / ".checkpoint.old-99999999-0c0d").mkdir()
        (tmp_path / ".checkpoint.old-99999999-0c0d" / "state.json").write_text("{")
    resumed = SequentialRecommender(small_config(epochs=3))
    result = resumed.fit(dataset, split.train, checkpoint_dir=tmp_path, resume=True)
    assert result.history[:2] == first.history  # read back (timings too), not retrained
    _assert_same_weights(_weights(resumed), _weights(full))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


KILLED_SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    from conftest import pattern_interactions, small_config  # also sets one torch thread
    from seqrec import SequentialRecommender, build_dataset, leave_one_out
    dataset = build_dataset(pattern_interactions())
    split = leave_one_out(dataset)
    SequentialRecommender(small_config(epochs=int(sys.argv[3]))).fit(
        dataset, split.train, checkpoint_dir=sys.argv[2])
""")


def test_resume_after_a_kill_mid_training_equals_the_uninterrupted_run(pattern, tmp_path):
    dataset, split = pattern
    epochs = 20
    script = tmp_path / "train.py"
    script.write_text(KILLED_SCRIPT)
    process = subprocess.Popen([sys.executable, str(script), str(Path(__file__).parent),
                                str(tmp_path / "run"), str(epochs)])
    state = tmp_path / "run" / "checkpoint" / "state.json"
    deadline = time.monotonic() + 120
    while not state.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.kill()  # SIGKILL: no cleanup, possibly in the middle of an epoch or a checkpoint write
    process.wait(timeout=30)
    assert state.exists()
    done = json.loads(state.read_text())["state"]["epoch"]
    resumed = SequentialRecommender(small_config(epochs=epochs))
    result = resumed.fit(dataset, split.train, checkpoint_dir=tmp_path / "run", resume=True)
    full = SequentialRecommender(small_config(epochs=epochs))
    full_result = full.fit(dataset, split.train)
    assert 1 <= done < epochs  # killed before the end
    assert [h.loss for h in result.history] == [h.loss for h in full_result.history]
    _assert_same_weights(_weights(resumed), _weights(full))


def test_fit_refuses_sequences_too_short_to_train_on():
    from conftest import csr

    from seqrec.build import build_parts
    from seqrec.train import fit

    config = small_config(epochs=1)
    items, offsets = csr([[1], [2], [3]])
    with pytest.raises(ValueError, match=">= 2 items"):
        fit(build_parts(config, 3), config, items, offsets)
    assert np.diff(offsets).max() == 1


@pytest.mark.parametrize(("updates", "method"), [("dense", "item_table"), ("sparse", "item_rows")])
def test_a_training_step_draws_one_item_dropout_mask_for_inputs_and_candidates(
        pattern, monkeypatch, updates, method):
    from seqrec.model import SequenceEncoder

    calls = []
    original = getattr(SequenceEncoder, method)

    def counted(self, *args):
        calls.append(self.training)
        return original(self, *args)

    monkeypatch.setattr(SequenceEncoder, method, counted)
    dataset, split = pattern
    model = SequentialRecommender(small_config(epochs=1, item_dropout=0.3, item_updates=updates))
    model.fit(dataset, split.train)
    n_steps = -(-int((np.diff(split.train.offsets) >= 2).sum()) // model.config.batch_size)
    assert calls.count(True) == n_steps  # one table per training step, used for both lookups


def _two_steps(config, split, n_items):
    """Parameters after each of two training steps from the same initial weights."""
    from lightning_fabric import Fabric

    from seqrec.build import build_parts
    from seqrec.train import TrainingModule, make_optimizers, train_step

    torch.manual_seed(0)
    parts = build_parts(config, n_items)
    module = TrainingModule(parts)
    optimizers = make_optimizers(module, config)
    fabric = Fabric(accelerator="cpu", devices=1)
    generator = torch.Generator().manual_seed(0)
    snapshots = []
    for rows in (np.arange(0, 16), np.arange(16, 32)):
        train_step(module, parts, rows, split.train.items, split.train.offsets, optimizers,
                   fabric, np.random.default_rng(0), generator)
        snapshots.append({k: v.detach().clone() for k, v in module.state_dict().items()})
    return snapshots


@pytest.mark.parametrize("similarity", ["dot", "cosine"])
def test_sparse_item_updates_agree_with_dense_adam_on_every_row_a_step_touches(similarity):
    """Lazy Adam (sparse) and Adam (dense) take the same first step; afterwards they differ
    exactly on rows a step does not touch, which dense Adam keeps moving with its momentum.
    Under cosine similarity both paths score L2-normalised candidates."""
    from conftest import pattern_interactions

    from seqrec import build_dataset, leave_one_out

    dataset = build_dataset(pattern_interactions(n_users=100, n_items=400))
    split = leave_one_out(dataset)
    config = small_config(dropout=0.0, item_dropout=0.0, n_negatives=4, similarity=similarity)
    dense = _two_steps(config.replace(item_updates="dense"), split, dataset.n_items)
    sparse = _two_steps(config.replace(item_updates="sparse"), split, dataset.n_items)
    key = "encoder.item_embedding.weight"
    for name in dense[0]:
        torch.testing.assert_close(sparse[0][name], dense[0][name], atol=1e-6, rtol=1e-5)
    for name in dense[1]:
        # the key part of qkv.bias has a mathematically zero gradient (softmax is invariant to a
        # shift of all keys); Adam normalises its rounding noise into steps of up to lr, so
        # that parameter agrees only to about lr / 10 between two summation orders
        atol = 1e-3 if name.endswith("qkv.bias") else 1e-5
        if name != key:
            torch.testing.assert_close(sparse[1][name], dense[1][name], atol=atol, rtol=1e-4)
    moved_dense = (dense[1][key] != dense[0][key]).any(dim=1)
    moved_sparse = (sparse[1][key] != sparse[0][key]).any(dim=1)
    assert moved_sparse.sum() < moved_dense.sum()  # dense Adam also moves rows touched earlier
    rows = torch.nonzero(moved_sparse).flatten()  # the rows the second step touched
    torch.testing.assert_close(sparse[1][key][rows], dense[1][key][rows], atol=1e-5, rtol=1e-4)


def test_uniform_target_weighting_scales_the_step_by_targets_over_the_expected_count(pattern):
    from lightning_fabric import Fabric

    from seqrec.build import build_parts
    from seqrec.train import TrainingModule, train_step

    dataset, split = pattern
    config = small_config(dropout=0.0, item_dropout=0.0)
    rows = np.arange(8)
    deltas = {}
    for scale in (None, "double"):
        torch.manual_seed(0)  # the same initial weights for both steps
        parts = build_parts(config, dataset.n_items)
        module = TrainingModule(parts)
        optimizer = torch.optim.SGD(module.parameters(), lr=1.0)  # update = -gradient
        before = [p.detach().clone() for p in module.parameters()]
        fabric = Fabric(accelerator="cpu", devices=1)
        n_targets = int(np.minimum(np.diff(split.train.offsets)[rows] - 1, config.max_seq_len).sum())
        per_batch = None if scale is None else 2.0 * n_targets
        _, counted = train_step(module, parts, rows, split.train.items, split.train.offsets,
                                [optimizer], fabric, np.random.default_rng(0),
                                torch.Generator().manual_seed(0), per_batch)
        assert counted == n_targets
        deltas[scale] = [p.detach() - b for p, b in zip(module.parameters(), before, strict=True)]
    for plain, halved in zip(deltas[None], deltas["double"], strict=True):
        torch.testing.assert_close(halved, plain / 2, atol=1e-6, rtol=1e-5)


def test_bf16_mixed_precision_trains_on_cpu(pattern, popular_ndcg):
    from seqrec import Runtime

    dataset, split = pattern
    model = SequentialRecommender(small_config(epochs=15), runtime=Runtime(precision="bf16-mixed"))
    result = model.fit(dataset, split.train)
    assert all(np.isfinite(h.loss) for h in result.history)
    assert _ndcg(model, split.test) > popular_ndcg + 0.3


@pytest.mark.slow
def test_torch_compile_trains_and_checkpoints_like_eager(pattern, tmp_path):
    from seqrec import Runtime

    dataset, split = pattern
    eager = SequentialRecommender(small_config(epochs=2, dropout=0.0, item_dropout=0.0))
    eager_result = eager.fit(dataset, split.train)
    compiled = SequentialRecommender(small_config(epochs=2, dropout=0.0, item_dropout=0.0),
                                     runtime=Runtime(compile=True))
    compiled_result = compiled.fit(dataset, split.train, checkpoint_dir=tmp_path)
    assert np.allclose([h.loss for h in compiled_result.history],
                       [h.loss for h in eager_result.history], rtol=1e-3)
    assert load_file(tmp_path / "checkpoint" / "weights.safetensors").keys() == {
        f"encoder.{k}" for k in eager.parts.encoder.state_dict()}


@pytest.mark.parametrize("n, n_rows", [(5, 1000), (400, 1000), (3000, 50)])
def test_touched_rows_equals_unique_with_pad_first(n: int, n_rows: int) -> None:
    """Both branches (sort for few ids, presence mask for many) give torch.unique's answer."""
    flat = torch.randint(1, n_rows, (n,), generator=torch.Generator().manual_seed(n))
    touched, inverse = touched_rows(flat, n_rows)
    expected, expected_inverse = torch.unique(torch.cat([torch.zeros(1, dtype=torch.int64), flat]),
                                              return_inverse=True)
    assert torch.equal(touched, expected) and touched[0] == 0
    assert torch.equal(inverse, expected_inverse[1:])
    assert torch.equal(touched[inverse], flat)
