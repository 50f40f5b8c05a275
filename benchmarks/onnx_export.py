"""ONNX Runtime vs PyTorch for the inference encoder (seqrec.export), one thread each.

For each model size an untrained model is built (timing does not depend on the weights),
exported with ``seqrec.export.export_onnx`` (which checks ONNX Runtime against PyTorch on random
windows before writing), then both run the same full windows (``seq_len = max_seq_len``, no
padding: the most work per row) at batch 1 and 256: PyTorch as ``encode_histories`` runs it
(``encoder.encode(..., last_only=True)`` under ``torch.inference_mode``), ONNX Runtime with
``intra_op_num_threads = inter_op_num_threads = 1``. Median wall and CPU milliseconds per call.

    python benchmarks/onnx_export.py                 # writes benchmarks/results/onnx.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import torch
from _common import busiest_processes, cpu_model  # noqa: E402  (benchmarks/ helper)

import seqrec
from seqrec.build import build_parts
from seqrec.config import preset
from seqrec.export import export_onnx
from seqrec.files import write_atomic
from seqrec.recommender import SequentialRecommender

N_ITEMS = 10_000
SIZES = {  # name: preset overrides
    "eSASRec default (dim 64, 1 layer, 1 head, max_seq_len 50)": dict(),
    "eSASRec dim 256, 2 layers, 4 heads, max_seq_len 200": dict(dim=256, n_layers=2, n_heads=4,
                                                                 max_seq_len=200),
}


def median_ms(run, repeats: int) -> tuple[float, float]:  # noqa: ANN001
    for _ in range(3):  # warm-up
        run()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return 1000 * statistics.median(walls), 1000 * statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "onnx.md"), help="'-': stdout only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_before, others = os.getloadavg(), busiest_processes()
    rows = []
    for name, overrides in SIZES.items():
        config = preset("esasrec", **overrides)
        model = SequentialRecommender(config)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model.parts = build_parts(config, N_ITEMS)
        encoder, causal = model.parts.encoder.eval(), model.parts.objective.causal
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            done = export_onnx(model, Path(tmp) / "encoder.onnx")
            export_s = time.perf_counter() - start
            size_mib = done.path.stat().st_size / 2**20
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = options.inter_op_num_threads = 1
            session = onnxruntime.InferenceSession(str(done.path), options,
                                                   providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        for batch, repeats in ((1, 200), (256, 10)):
            inputs = rng.integers(1, N_ITEMS + 1, size=(batch, config.max_seq_len))
            tensor = torch.from_numpy(inputs)

            def run_torch(x: torch.Tensor = tensor, encoder: torch.nn.Module = encoder,
                          causal: bool = causal) -> np.ndarray:
                with torch.inference_mode():
                    return encoder.encode(x, causal=causal, last_only=True).numpy()

            def run_onnx(x: np.ndarray = inputs, session: object = session) -> np.ndarray:
                return session.run(None, {"inputs": x})[0]  # type: ignore[attr-defined]

            diff = float(np.abs(run_onnx() - run_torch()).max())
            torch_ms, torch_cpu = median_ms(run_torch, repeats)
            onnx_ms, onnx_cpu = median_ms(run_onnx, repeats)
            rows.append((name, batch, torch_ms, torch_cpu, onnx_ms, onnx_cpu, diff,
                         done.max_abs_diff, export_s, size_mib, done.opset))
    load_after = os.getloadavg()
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    lines = [
        "### ONNX Runtime vs PyTorch: the inference encoder, 1 thread",
        "",
        f"Command: `python benchmarks/onnx_export.py {' '.join(sys.argv[1:])}`  ",
        f"Commit: {head} (with the working tree of this change); date: "
        f"{time.strftime('%Y-%m-%d %H:%M')}; machine: {os.cpu_count()} cores, {cpu_model()}; "
        f"seqrec {seqrec.__version__}, torch {torch.__version__}, onnxruntime "
        f"{onnxruntime.__version__}  ",
        f"Also running on the same 2 cores (at the start): {others} (load average "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after): wall times are "
        "noisy, CPU ms less so.  ",
        f"Untrained models over {N_ITEMS:,} items; full windows (seq_len = max_seq_len); median "
        "of 200 calls (batch 1) or 10 (batch 256) after 3 warm-up calls. Max abs diff: on these "
        "inputs / on export_onnx's check windows (padded, all lengths).",
        "",
        "| model | batch | torch ms | torch CPU ms | onnxruntime ms | onnxruntime CPU ms | "
        "speed-up | max abs diff | export s | file MiB | opset |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, batch, t_ms, t_cpu, o_ms, o_cpu, diff, check, export_s, size, opset in rows:
        lines.append(f"| {name} | {batch} | {t_ms:.2f} | {t_cpu:.2f} | {o_ms:.2f} | {o_cpu:.2f} "
                     f"| {t_ms / o_ms:.2f}× | {diff:.1e} / {check:.1e} | {export_s:.1f} | "
                     f"{size:.1f} | {opset} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out != "-":
        write_atomic(args.out, text)


if __name__ == "__main__":
    main()
