"""Data-parallel training for real: two CPU processes (DDP, gloo) through a caller-launched Fabric.

The script below runs in a subprocess; Fabric's launcher starts the second rank by re-running it.
Each rank records the training rows it stepped on (by wrapping ``seqrec.train.shard`` and
``seqrec.train.train_step`` inside the script; the library stays untouched) and a digest of its
final weights; rank 0 saves the model.

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
    import hashlib, json, sys
    from pathlib import Path

    sys.path.insert(0, sys.argv[2])
    import torch
    from lightning_fabric import Fabric

    import seqrec.train
    from conftest import small_config
    from seqrec import SequentialRecommender

    out, epochs = Path(sys.argv[1]), int(sys.argv[3])
    fabric = Fabric(accelerator="cpu", devices=2, strategy="ddp")
    fabric.launch()

    steps = []  # per epoch: the rows of every batch this rank trained on
    shard, train_step = seqrec.train.shard, seqrec.train.train_step

    def recording_shard(batches, rank, world_size):
        steps.append([])
        return shard(batches, rank, world_size)

    def recording_step(module, parts, rows, *args):
        steps[-1].append(rows.tolist())
        return train_step(module, parts, rows, *args)

    seqrec.train.shard, seqrec.train.train_step = recording_shard, recording_step

    from conftest import pattern_interactions
    from seqrec import build_dataset, leave_one_out
    dataset = build_dataset(pattern_interactions())
    split = leave_one_out(dataset)
    model = SequentialRecommender(small_config(devices=2, epochs=epochs))
    result = model.fit(dataset, split.train, validation=None, fabric=fabric)
    digest = hashlib.sha256()
    for name, tensor in sorted(model.parts.encoder.state_dict().items()):
        digest.update(name.encode() + tensor.detach().cpu().numpy().tobytes())
    rank = fabric.global_rank
    (out / f"rank{rank}.json").write_text(json.dumps({
        "world_size": fabric.world_size, "steps": steps,
        "losses": [h.loss for h in result.history], "digest": digest.hexdigest()}))
    if rank == 0:
        model.save(out / "model")
    fabric.barrier()
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
        assert record["world_size"] == 2
        assert len(record["losses"]) == EPOCHS and np.isfinite(record["losses"]).all()
        assert record["losses"][-1] < record["losses"][0]


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


def test_ddp_ranks_end_with_identical_weights(ddp_run):
    _, ranks = ddp_run
    assert ranks[0]["digest"] == ranks[1]["digest"]


def test_ddp_model_loads_and_matches_a_single_process_run_within_tolerance(ddp_run, pattern):
    out, _ = ddp_run
    dataset, split = pattern
    ddp_model = load_model(out / "model")
    single = SequentialRecommender(small_config(epochs=EPOCHS, batch_size=2 * small_config().batch_size))
    single.fit(dataset, split.train)
    ndcg_ddp = evaluate(ddp_model, split.test, metrics=("ndcg",)).means["ndcg@10"]
    ndcg_single = evaluate(single, split.test, metrics=("ndcg",)).means["ndcg@10"]
    assert ndcg_ddp >= 0.9 and ndcg_single >= 0.9
    assert abs(ndcg_ddp - ndcg_single) <= 0.05
    users = dataset.user_index.ids[:200]
    top1_ddp = ddp_model.recommend(users, k=1).set_index("user_id")["item_id"]
    top1_single = single.recommend(users, k=1).set_index("user_id")["item_id"]
    assert (top1_ddp == top1_single).mean() >= 0.9
