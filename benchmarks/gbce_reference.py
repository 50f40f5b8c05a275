"""seqrec's gBCE step against the gSASRec reference, on one MovieLens-100K batch.

The reference is the authors' PyTorch code (github.com/asash/gSASRec-pytorch, ``train_gsasrec.py``),
written out here from its equations: the positive logit is replaced by ``z`` with
``σ(z) = σ(s)^β`` (float64, clamped), BCE-with-logits is averaged over the ``1 + k`` columns and
over real positions. On the same hidden states and the same negatives this prints: what the
sampler draws (PAD, accidental hits), which positions count, β, the loss and gradient ratio
to the reference, the logits' scale at initialisation, how much of each item row's gradient the
negatives make up with and without the prior logit, and the cost of scoring negatives per
target by a gather or by one matmul.

    python benchmarks/gbce_reference.py
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from seqrec.build import build_parts
from seqrec.config import preset
from seqrec.data import load_dataset, time_split
from seqrec.files import write_atomic
from seqrec.losses import candidate_logits, picked_logits, prior_logit

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).parent / "results"


def reference_loss(logits: torch.Tensor, beta: float) -> torch.Tensor:
    """gSASRec-pytorch's loss of ``(n_targets, 1 + k)`` logits (positive in column 0)."""
    eps, big = 1e-10, torch.finfo(torch.float64).max
    p = torch.clamp(torch.sigmoid(logits[:, :1].double()), eps, 1 - eps)
    z = torch.clamp(1.0 / (torch.clamp(p.pow(-beta), 1 + eps, big) - 1), eps, big).log()
    z = torch.cat([z, logits[:, 1:].double()], 1)
    labels = torch.zeros_like(z)
    labels[:, 0] = 1
    return F.binary_cross_entropy_with_logits(z, labels, reduction="none").mean(-1).mean()


def row_gradients(hidden, table, targets, negatives, beta, offset):
    """Gradients of the positive and of the negative terms on each item row ``(n_items, dim)``."""
    table = table.detach().clone().requires_grad_()
    pos = (hidden * table[targets]).sum(-1) + offset
    neg = torch.einsum("td,tnd->tn", hidden, table[negatives]) + offset
    neg = neg.masked_fill(negatives == targets[:, None], float("-inf"))
    g_pos = torch.autograd.grad((-beta * F.logsigmoid(pos)).sum(), table)[0]
    g_neg = torch.autograd.grad((-F.logsigmoid(-neg)).sum(), table)[0]
    return g_pos[1:], g_neg[1:]


def milliseconds(fn, repeat: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * sorted(times)[repeat // 2]


def main() -> None:
    torch.set_num_threads(1)
    dataset = load_dataset(SHARED / "ml-100k", "recbole")
    train = time_split(dataset, last_days=28, filter_already_seen=True).train
    n, config = dataset.n_items, preset("gsasrec")
    k = config.n_negatives
    torch.manual_seed(0)
    parts = build_parts(config, n)
    encoder = parts.encoder.eval()  # no dropout: one deterministic comparison
    batch = parts.objective.training_batch(train.items, train.offsets, np.arange(128),
                                           np.random.default_rng(0))
    targets = batch.targets[batch.is_target]
    negatives = parts.sampler.sample(targets, (len(targets),), torch.Generator().manual_seed(0)).ids
    hits = negatives == targets[:, None]
    with torch.no_grad():
        hidden = encoder.encode(batch.inputs, causal=True)[batch.is_target]
    table = encoder.candidate_embeddings().detach()
    beta = parts.loss.beta
    alpha = k / (n - 1)
    b = prior_logit(beta, k)
    out = [f"Batch: the first 128 training sequences, {len(targets)} targets; gsasrec preset "
           f"(k = {k}), seed 0, weights at initialisation, dropout off.", ""]
    out.append(f"- Negatives: ids {int(negatives.min())}..{int(negatives.max())} (PAD = 0 never; "
               f"the reference draws 1..n_items too). Equal to their own target: {int(hits.sum())} "
               f"of {negatives.numel()} ({hits.float().mean():.4%}, 1/n_items = {1 / n:.4%}); "
               f"targets with at least one: {hits.any(1).float().mean():.1%}. seqrec scores them "
               f"-inf (no term), the reference keeps them as negatives.")
    out.append(f"- Positions: {int((batch.inputs != 0).sum())} with a real input (the reference's "
               f"mask), {int(batch.is_target.sum())} in is_target.")
    reference_beta = alpha * ((1 - 1 / alpha) * config.gbce_t + 1 / alpha)
    out.append(f"- β: seqrec {beta:.6f}, reference {reference_beta:.6f} (α = {alpha:.4f}); prior "
               f"logit log(β/k) = {b:.3f}.")
    hidden_grad = hidden.clone().requires_grad_()
    logits, labels = candidate_logits(hidden_grad, targets, table, "per_target", negatives, None)
    clean = ~hits.any(1)
    ours = parts.loss(logits[clean], labels[clean])
    ref = reference_loss(logits[clean] + b, beta)
    g_ours = torch.autograd.grad(ours, hidden_grad, retain_graph=True)[0]
    g_ref = torch.autograd.grad(ref, hidden_grad)[0].float()
    cosine = F.cosine_similarity(g_ours.flatten(), g_ref.flatten(), 0)
    out.append(f"- Loss on the {int(clean.sum())} targets without an accidental hit: seqrec "
               f"{float(ours.detach()):.4f} = {float(ours.detach() / ref.detach()):.3f} × reference at logits + b "
               f"({float(ref.detach()):.6f}); gradient on the hidden states: cosine {float(cosine):.6f}, "
               f"norm ratio {float(g_ours.norm() / g_ref.norm()):.2f}. The 1 + k = {k + 1} factor "
               f"(sum over negatives vs mean) is a constant scale, which Adam's update divides out.")
    raw = logits[:, 1:][~hits].detach()
    out.append(f"- Logits at initialisation: std {float(raw.std()):.3f}, mean σ of the negatives "
               f"{float(torch.sigmoid(raw).mean()):.3f}; the reference's N(0, 1) output table on "
               f"the same hidden states gives std "
               f"{float((hidden @ torch.randn(n + 2, config.dim).T).std()):.2f}. The loss at a "
               f"constant logit is smallest at log(β/k) = {b:.2f}: "
               f"{float(-beta * F.logsigmoid(torch.tensor(b)) - k * F.logsigmoid(torch.tensor(-b))):.2f} "
               f"per target, against {float(-beta * F.logsigmoid(torch.tensor(0.0)) + k * math.log(2)):.1f} at 0.")
    popularity = torch.bincount(torch.as_tensor(train.items), minlength=n + 1)[1:]
    top = int(popularity.argmax())
    for name, offset in (("without the prior logit (before; the reference)", 0.0),
                         ("with the prior logit (now)", b)):
        g_pos, g_neg = row_gradients(hidden, table, targets, negatives, beta, offset)
        seen = g_pos.norm(dim=1) > 0
        ratio = g_neg.norm(dim=1)[seen] / g_pos.norm(dim=1)[seen]
        total = g_pos + g_neg
        alike = F.cosine_similarity(total, total.mean(0, keepdim=True), dim=1).mean()
        out.append(f"- Item-row gradients {name}: |negative terms| / |target terms| median "
                   f"{float(ratio.median()):.1f}, most popular item "
                   f"{float(g_neg[top].norm() / g_pos[top].norm()):.2f}; rows pushed mostly by "
                   f"negatives {float((ratio > 1).float().mean()):.0%}; mean cosine of a row's "
                   f"gradient with the mean row gradient {float(alike):.3f}.")
    embeddings = table.clone().requires_grad_()
    hidden_leaf = hidden.clone().requires_grad_()

    def gather():
        torch.einsum("td,tnd->tn", hidden_leaf, embeddings[negatives]).sum().backward()

    def matmul():
        (hidden_leaf @ embeddings.T).gather(1, negatives).sum().backward()

    def blocked():
        picked_logits(hidden_leaf, embeddings, negatives).sum().backward()

    out.append(f"- Scoring {len(targets)} × {k} negatives per target, forward + backward, 1 "
               f"thread: gather of the drawn rows {milliseconds(gather):.0f} ms, one matmul over "
               f"the {n + 1} rows then a pick {milliseconds(matmul):.0f} ms, the same in "
               f"cache-sized blocks of targets (`seqrec.losses.picked_logits`, what training "
               f"runs) {milliseconds(blocked):.0f} ms.")
    load = " ".join(f"{x:.2f}" for x in __import__("os").getloadavg())
    text = ("### gBCE: seqrec against the gSASRec reference, one MovieLens-100K batch\n\n"
            f"Command: `python benchmarks/gbce_reference.py`; {time.strftime('%Y-%m-%d %H:%M')}; "
            f"load average {load}\n\n" + "\n".join(out) + "\n")
    RESULTS.mkdir(exist_ok=True)
    write_atomic(RESULTS / "gbce_reference_ml100k.md", text)
    print(text)


if __name__ == "__main__":
    main()
