"""HTTP load on `seqrec serve`: requests/s and latency percentiles at increasing concurrency.

Starts the server (uvicorn, one process, in a subprocess on 127.0.0.1 and a free port) over a
MovieLens model, drives ``POST /recommend`` with wrk (``apt-get install -y wrk``) and a Lua
script that picks request bodies at random from a fixed list, and writes
``benchmarks/results/serve.md``.

    python benchmarks/serve_load.py                       # train a quick model, 60 s per level
    python benchmarks/serve_load.py --model DIR --duration 20 --concurrency 1,8,32,64

Traffic goes only to 127.0.0.1. Every loop is bounded in count and time.
"""

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local bodies = {}
for line in io.lines("%(bodies)s") do bodies[#bodies + 1] = line end
math.randomseed(%(seed)d)
request = function()
  return wrk.format(nil, "%(path)s", nil, bodies[math.random(#bodies)])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT {\\"requests\\": %%d, \\"duration_us\\": %%d, \\"p50\\": %%d, \\"p95\\": %%d, " ..
    "\\"p99\\": %%d, \\"connect\\": %%d, \\"read\\": %%d, \\"write\\": %%d, \\"status\\": %%d, " ..
    "\\"timeout\\": %%d}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_model(path: Path, epochs: int) -> None:
    import seqrec

    dataset = seqrec.load_movielens()
    split = seqrec.leave_one_out(dataset)
    model = seqrec.build_model("esasrec", dim=64, epochs=epochs, patience=0)
    model.fit(dataset, split.train)
    report = seqrec.evaluate(model, split.test, k=10, metrics=("ndcg",))
    seqrec.save_model(model, path, metrics=report.means)


def request_bodies(model_dir: Path, n: int, history_share: float, seed: int) -> list[str]:
    """Known users (k=10, seen filtered) and, for ``history_share`` of them, anonymous histories
    of 20 catalogue items."""
    ids = json.loads((model_dir / "ids.json").read_text())
    users, items = ids["users"]["ids"], ids["items"]["ids"]
    rng = np.random.default_rng(seed)
    bodies = []
    for _ in range(n):
        if rng.random() < history_share:
            history = [items[i] for i in rng.integers(0, len(items), 20)]
            bodies.append(json.dumps({"history": history, "k": 10}))
        else:
            bodies.append(json.dumps({"user_id": users[int(rng.integers(0, len(users)))], "k": 10}))
    return bodies


def start_server(model_dir: Path, port: int, micro_batch: bool, workers: int,
                 log: Path) -> subprocess.Popen:
    code = ("import sys; from seqrec.serve import serve; "
            f"serve({str(model_dir)!r}, port={port}, micro_batch={micro_batch}, "
            f"workers={workers}, log_level='warning')")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=log.open("w"),
                               stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as r:
                if r.status == 200:
                    return process
        except OSError:
            time.sleep(0.25)
    process.kill()
    raise RuntimeError("server did not become ready within 120 s")


def run_wrk(port: int, lua: Path, concurrency: int, duration: int, threads: int) -> dict:
    threads = max(1, min(threads, concurrency))
    cmd = ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{duration}s", "--timeout", "5s",
           "-s", str(lua), f"http://127.0.0.1:{port}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("RESULT "))
    raw = json.loads(line[len("RESULT "):])
    errors = sum(raw[k] for k in ("connect", "read", "write", "status", "timeout"))
    return {"concurrency": concurrency, "rps": raw["requests"] / (raw["duration_us"] / 1e6),
            "p50_ms": raw["p50"] / 1000, "p95_ms": raw["p95"] / 1000, "p99_ms": raw["p99"] / 1000,
            "errors": errors, "requests": raw["requests"]}


def table(rows: list[dict]) -> str:
    lines = ["| concurrency | requests/s | p50 ms | p95 ms | p99 ms | errors | requests |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['concurrency']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} "
                     f"| {r['p99_ms']:.2f} | {r['errors']} | {r['requests']} |")
    return "\n".join(lines)


def machine() -> str:
    cpu = "unknown"
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                   if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import fastapi
    import torch
    import uvicorn

    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    return (f"nproc {os.cpu_count()}, {cpu}; Python {platform.python_version()}, torch {torch.__version__}, "
            f"fastapi {fastapi.__version__}, uvicorn {uvicorn.__version__}, {wrk.strip()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="model directory (default: train a quick one)")
    parser.add_argument("--model-cache", type=Path,
                        default=Path(tempfile.gettempdir()) / "seqrec_serve_bench_model",
                        help="where the quick MovieLens model is trained once and reused")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--duration", type=int, default=60, help="seconds per concurrency level")
    parser.add_argument("--concurrency", default="1,8,32,64")
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--history-share", type=float, default=0.2)
    parser.add_argument("--no-micro-batch", action="store_true")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--label", default="", help="name of this run in the results file")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "serve.md")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install -y wrk")
    model_dir = args.model
    if model_dir is None:
        model_dir = args.model_cache
        if not (model_dir / "model.json").exists():
            print(f"training a quick MovieLens model into {model_dir} ...", flush=True)
            train_model(model_dir, args.epochs)
    meta = json.loads((model_dir / "model.json").read_text())
    work = Path(tempfile.mkdtemp(prefix="seqrec_serve_load_"))
    bodies = work / "bodies.jsonl"
    bodies.write_text("\n".join(request_bodies(model_dir, 2000, args.history_share, 0)) + "\n")
    lua = work / "post.lua"
    lua.write_text(LUA % {"bodies": bodies, "seed": 0, "path": "/recommend"})
    port = free_port()
    server = start_server(model_dir, port, not args.no_micro_batch, args.workers, work / "server.log")
    rows = []
    try:
        for concurrency in [int(c) for c in args.concurrency.split(",")]:
            row = run_wrk(port, lua, concurrency, args.duration, args.wrk_threads)
            rows.append(row)
            print(f"c={concurrency:>3}: {row['rps']:8.0f} req/s  p50 {row['p50_ms']:6.2f} ms  "
                  f"p95 {row['p95_ms']:6.2f} ms  p99 {row['p99_ms']:6.2f} ms  errors {row['errors']}",
                  flush=True)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    print(table(rows))
    if args.no_write:
        return
    command = "python " + " ".join([f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]])
    label = args.label or f"micro_batch={not args.no_micro_batch}, workers={args.workers}"
    section = "\n".join([
        f"### {label}", "",
        f"- date: {dt.datetime.now().isoformat(timespec='seconds')}",
        f"- command: `{command}`",
        f"- machine: {machine()}",
        f"- model: {meta.get('kind')} dim {meta.get('preset_config', {}).get('dim')}, "
        f"n_items {meta.get('n_items')}, n_users {meta.get('n_users')}, metrics {meta.get('metrics')}",
        f"- load: wrk, {args.wrk_threads} thread(s), {args.duration} s per level, POST /recommend, "
        f"{1 - args.history_share:.0%} known users / {args.history_share:.0%} 20-item histories, k=10",
        "", table(rows), ""])
    with args.out.open("a") as f:
        f.write(section + "\n")
    print(f"appended to {args.out}")


if __name__ == "__main__":
    main()
