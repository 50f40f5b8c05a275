"""Data-parallel training for real: two CPU processes (DDP, gloo) launched by the library.

The script below runs in a subprocess and calls ``seqrec.train_and_save`` with
``Runtime(devices=2)``: Fabric's public launcher starts the second rank by re-running the script.
Each rank records the training rows it stepped on (through ``on_batch``); rank 0 publishes the
model directory.

Tolerance against a single process: two ranks each stepping on half of the batches of size B,
gradients averaged, is one optimiser step per pair of batches — close to, but not the same
trajectory as, one process with batch size 2B (the pairs differ from the 2B buckets, each rank's
loss is a mean over its own targets, and both ranks draw the same negatives). So we do not ask for
equal weights. On the deterministic pattern both runs converge to the rule "next item follows the
last one"; we require both test NDCG@10 >= 0.9, within 0.05 of each other, and the same top-1
item for >= 90% of users.
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import small_config

from seqrec import SequentialRecommender, evaluate, load_model

# about 5 s of CPU, but two fresh interpreters importing torch + Lightning one after the other
# take 20-25 s of wall time on a busy 2-core machine
pytestmark = pytest.mark.slow

EPOCHS = 30
SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path

    sys.path.insert(0, sys.argv[2])
    import torch.distributed

    from conftest import pattern_interactions, small_config
    from seqrec import Runtime, build_dataset, leave_one_out, train_and_save

    out, epochs = Path(sys.argv[1]), int(sys.argv[3])
    steps = {}  # epoch -> the rows of every batch this rank trained on

    def record(batch):
        steps.setdefault(batch.epoch, []).append(batch.rows.tolist())

    dataset = build_dataset(pattern_interactions())
    split = leave_one_out(dataset)
    result = train_and_save(out / "model", dataset, small_config(epochs=epochs), split=split,
                            runtime=Runtime(devices=2), on_batch=record)
    rank = torch.distributed.get_rank()
    world = torch.distributed.get_world_size()
    assert (result is None) == (rank != 0)
    losses = None if result is None else [h.loss for h in result.fit_result.history]
    (out / f"rank{rank}.json").write_text(json.dumps({
        "world_size": world, "steps": [steps[e] for e in sorted(steps)], "losses": losses}))
""")


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    script = out / "ddp_fit.py"
    script.write_text(SCRIPT)
    tests_dir = str(Path(__file__).parent)
    done = subprocess.run([sys.executable, str(script), str(out), tests_dir, str(EPOCHS)],
                          capture_output=True, text=True, timeout=240, cwd=out)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    return out, ranks


def test_ddp_ran_two_ranks_for_every_epoch_with_finite_losses(ddp_run):
    _, ranks = ddp_run
    for record in ranks:
        assert record["world_size"] == 2 and len(record["steps"]) == EPOCHS
    losses = ranks[0]["losses"]
    assert len(losses) == EPOCHS and np.isfinite(losses).all() and losses[-1] < losses[0]


def test_ddp_ranks_train_on_disjoint_equal_shards_covering_the_epoch(ddp_run, pattern):
    _, ranks = ddp_run
    _, split = pattern
    trainable = set(np.flatnonzero(split.train.lengths >= 2).tolist())
    batch_size = small_config().batch_size
    for epoch in range(EPOCHS):
        zero, one = (ranks[r]["steps"][epoch] for r in (0, 1))
        assert len(zero) == len(one) > 0  # same number of all-reduces on both ranks
        rows = [set(x for batch in shard_rows for x in batch) for shard_rows in (zero, one)]
        assert not rows[0] & rows[1]
        union = rows[0] | rows[1]
        assert union <= trainable
        assert len(trainable - union) < batch_size  # at most the one surplus batch is dropped


def test_ddp_model_loads_and_matches_a_single_process_run_within_tolerance(ddp_run, pattern):
    out, _ = ddp_run
    dataset, split = pattern
    ddp_model = load_model(out / "model")
    single = SequentialRecommender(small_config(epochs=EPOCHS, batch_size=2 * small_config().batch_size))
    single.fit(dataset, split.train)
    ndcg_ddp = evaluate(ddp_model, split.test, metrics=("ndcg",)).means["ndcg@10"]
    ndcg_single = evaluate(single, split.test, metrics=("ndcg",)).means["ndcg@10"]
    single.set_histories(dataset.sequences)  # as train_and_save publishes a model
    assert ndcg_ddp >= 0.9 and ndcg_single >= 0.9
    assert abs(ndcg_ddp - ndcg_single) <= 0.05
    users = dataset.user_index.ids[:200]
    top1_ddp = ddp_model.recommend(users, k=1).set_index("user_id")["item_id"]
    top1_single = single.recommend(users, k=1).set_index("user_id")["item_id"]
    assert (top1_ddp == top1_single).mean() >= 0.9
