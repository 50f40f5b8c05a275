"""HTTP load and abuse on `seqrec serve`: requests/s, latency percentiles and CPU seconds.

Starts the server (uvicorn, one process, in a subprocess on 127.0.0.1 and a free port) over a
MovieLens model and drives ``POST /recommend`` with wrk (``apt-get install -y wrk``) and a Lua
script that picks request bodies at random from a fixed list. Two kinds of run:

- ``load``: one wrk run per concurrency level.
- ``abuse``: normal clients (wrk, ``--abuse-concurrency`` connections) alone and beside each
  abuse in turn, in alternating slices (``--slices``) so that other load on the machine hits both
  alike: clients streaming a 100 MB header, 20,000 idle connections, bursts of 1,000
  batch requests whose clients hang up before the answer, and clients sending heavy valid batch
  requests (256 histories x 800 items) back to back. Between phases the script waits for the
  server to go idle, and it reports how long the server stayed busy after each burst.

Each run replaces its own section (``## load`` or ``## abuse``) of ``benchmarks/results/serve.md``:

    python benchmarks/serve_load.py                            # load: 60 s per level
    python benchmarks/serve_load.py --duration 10 --concurrency 16,64
    python benchmarks/serve_load.py --abuse --duration 10

Traffic goes only to 127.0.0.1. Every loop is bounded in count and time.
"""

import argparse
import datetime as dt
import http.client
import json
import multiprocessing
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import cpu_model, locked  # noqa: E402

from seqrec.files import write_atomic  # noqa: E402

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
HEAVY_BATCH, HEAVY_HISTORY = 256, 800


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


def heavy_body(model_dir: Path, seed: int) -> bytes:
    """A valid batch request at the default limits: 256 histories of 800 items (204,800 ids),
    with the shortest ids so that it stays under the 1 MB body limit."""
    items = json.loads((model_dir / "ids.json").read_text())["items"]["ids"]
    short = sorted(items, key=lambda i: len(json.dumps(i)))[:800]
    rng = np.random.default_rng(seed)
    requests = [{"history": [short[i] for i in rng.integers(0, len(short), HEAVY_HISTORY)],
                 "k": 10} for _ in range(HEAVY_BATCH)]
    return json.dumps({"requests": requests}, separators=(",", ":")).encode()


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


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_idle(pid: int, cap_s: float = 60.0) -> float:
    """Seconds until the process uses < 10 ms CPU in a 200 ms window (at most ``cap_s``)."""
    start = time.monotonic()
    while time.monotonic() - start < cap_s:
        before = cpu_seconds(pid)
        time.sleep(0.2)
        if cpu_seconds(pid) - before < 0.01:
            return time.monotonic() - start - 0.2
    return cap_s


def merge(rows: list[dict]) -> dict:
    """wrk runs taken together: summed counts, mean p50, worst p95 and p99."""
    out = {k: sum(r[k] for r in rows) for k in ("requests", "errors", "wall_s", "server_cpu_s",
                                                "wrk_cpu_s")}
    out.update(concurrency=rows[0]["concurrency"], rps=out["requests"] / out["wall_s"],
               p50_ms=float(np.mean([r["p50_ms"] for r in rows])),
               p95_ms=max(r["p95_ms"] for r in rows), p99_ms=max(r["p99_ms"] for r in rows))
    return out


def run_wrk(port: int, lua: Path, concurrency: int, duration: int, threads: int,
            server_pid: int) -> dict:
    threads = max(1, min(threads, concurrency))
    cmd = ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{duration}s", "--timeout", "5s",
           "-s", str(lua), f"http://127.0.0.1:{port}"]
    server_cpu, children = cpu_seconds(server_pid), resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, check=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next(ln for ln in out.splitlines() if ln.startswith("RESULT "))
    raw = json.loads(line[len("RESULT "):])
    errors = sum(raw[k] for k in ("connect", "read", "write", "status", "timeout"))
    return {"concurrency": concurrency, "rps": raw["requests"] / (raw["duration_us"] / 1e6),
            "p50_ms": raw["p50"] / 1000, "p95_ms": raw["p95"] / 1000, "p99_ms": raw["p99"] / 1000,
            "errors": errors, "requests": raw["requests"], "wall_s": raw["duration_us"] / 1e6,
            "server_cpu_s": cpu_seconds(server_pid) - server_cpu,
            "wrk_cpu_s": after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime}


# ---- abuse clients (each stops when `stop` is set; notes go into `notes`) ------------------------
def read_status(sock: socket.socket) -> str:
    try:
        data = sock.recv(200)
    except OSError as error:
        return type(error).__name__
    return data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/") else "closed"


def huge_headers(port: int, stop: threading.Event, notes: list[str], size: int = 100_000_000) -> None:
    """Stream a request whose one header is ``size`` bytes, note what the server answered, and
    start again 0.1 s later."""
    chunk = b"a" * (1 << 20)
    while not stop.is_set():
        start, sent = time.monotonic(), 0
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            try:
                s.sendall(b"POST /recommend HTTP/1.1\r\nHost: x\r\nX-Big: ")
                while sent < size and not stop.is_set():
                    s.sendall(chunk)
                    sent += len(chunk)
                s.sendall(b"\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
                status = read_status(s)
            except OSError as error:
                status = type(error).__name__
        notes.append(f"{status} after {sent / 1e6:.0f} MB sent in {time.monotonic() - start:.2f} s")
        stop.wait(0.1)


def _hold_idle(port: int, n: int, hold_s: float, out: "multiprocessing.Queue") -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    socks, failed = [], 0
    for _ in range(n):
        s = socket.socket()
        s.settimeout(2)
        try:
            s.connect(("127.0.0.1", port))
            socks.append(s)
        except OSError:
            s.close()
            failed += 1
            if failed > 50:
                break
    out.put(("opened", len(socks)))
    time.sleep(hold_s)
    closed = 0
    for s in socks:
        s.setblocking(False)
        try:
            s.recv(1)  # an answer (408) or the end: the server has closed it
            closed += 1
        except BlockingIOError:  # still open
            pass
        except OSError:
            closed += 1
        s.close()
    out.put(("closed", closed))


def idle_connections(port: int, n: int, hold_s: float) -> tuple[list, "multiprocessing.Queue"]:
    """Open ``n`` connections that send nothing (two processes: file descriptors are per process)."""
    queue = multiprocessing.get_context("fork").Queue()
    procs = [multiprocessing.get_context("fork").Process(
        target=_hold_idle, args=(port, n // 2, hold_s, queue), daemon=True) for _ in range(2)]
    for p in procs:
        p.start()
    return procs, queue


def abandon_burst(port: int, body: bytes, n: int) -> float:
    """Send ``n`` batch requests on ``n`` connections, then hang up on all of them."""
    head = (f"POST /recommend/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    start, socks = time.monotonic(), []
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(head + body)
            socks.append(s)
        time.sleep(0.05)  # the server has read them all
    finally:
        for s in socks:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()
    return time.monotonic() - start


def abandon_loop(port: int, body: bytes, n: int, every_s: float, stop: threading.Event,
                 notes: list[str]) -> None:
    while not stop.is_set():
        abandon_burst(port, body, n)
        notes.append("burst")
        stop.wait(every_s)


def heavy_client(port: int, body: bytes, stop: threading.Event, notes: list[str]) -> None:
    """Back-to-back heavy batch requests on one keep-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    while not stop.is_set():
        start = time.monotonic()
        conn.request("POST", "/recommend/batch", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        notes.append(f"{response.status} {time.monotonic() - start:.3f}")
    conn.close()


def run_abuse(args, port: int, lua: Path, server_pid: int, model_dir: Path) -> list[dict]:
    """Each abuse phase: normal clients alone and beside the abuse, in alternating slices."""
    c, d = args.abuse_concurrency, args.duration
    heavy = heavy_body(model_dir, 1)
    users = json.loads((model_dir / "ids.json").read_text())["users"]["ids"]
    abandoned = json.dumps({"requests": [{"user_id": u, "k": 10} for u in users[:64]]}).encode()
    rows = []

    def beside(client, client_args: tuple, n_clients: int, seconds: int) -> tuple[dict, list, float]:
        """Normal clients for ``seconds`` while the abuse runs; the abuse clients' CPU."""
        stop, notes = threading.Event(), []
        threads = [threading.Thread(target=client, args=(port, *client_args, stop, notes), daemon=True)
                   for _ in range(n_clients)] if client else []
        for t in threads:
            t.start()
        time.sleep(0.5 if client else 0)
        own = resource.getrusage(resource.RUSAGE_SELF)
        row = run_wrk(port, lua, c, seconds, args.wrk_threads, server_pid)
        stop.set()
        for t in threads:
            t.join(timeout=120)
        after = resource.getrusage(resource.RUSAGE_SELF)
        return row, notes, after.ru_utime + after.ru_stime - own.ru_utime - own.ru_stime

    def phase(name: str, detail: str, client=None, *client_args, n_clients: int = 2,
              slices: int = args.slices, prepare=None) -> dict:
        """Alone and beside the abuse in alternating slices, so that load from other processes
        on the machine, which drifts, hits both alike (``prepare`` starts an abuse that lasts:
        one slice each)."""
        alone_rows, beside_rows, notes, abuse_cpu = [], [], [], 0.0
        seconds = d if prepare else max(d // slices, 1)
        for _ in range(1 if prepare else slices):
            wait_idle(server_pid)
            alone_rows.append(run_wrk(port, lua, c, seconds, args.wrk_threads, server_pid))
            if prepare:
                prepare()
            wait_idle(server_pid)
            row, slice_notes, cpu = beside(client, client_args, n_clients, seconds)
            beside_rows.append(row)
            notes += slice_notes
            abuse_cpu += cpu
        alone, row = merge(alone_rows), merge(beside_rows)
        row.update(name=name, detail=detail, notes=notes, alone=alone, abuse_cpu_s=abuse_cpu)
        rows.append(row)
        print(f"{name:>18}: {row['rps']:6.0f} req/s ({100 * row['rps'] / max(alone['rps'], 1):.0f} % of "
              f"{alone['rps']:.0f} alone)  p99 {row['p99_ms']:7.2f} ms (alone {alone['p99_ms']:.2f})"
              f"  errors {row['errors']}  notes {summarise(notes)}", flush=True)
        return row

    if "headers" in args.phases:
        phase("huge headers", "2 clients streaming a 100 MB header, again 0.1 s after each "
              "answer", huge_headers)
    if "idle" in args.phases:
        held: list = []

        def open_idle() -> None:
            procs, queue = idle_connections(port, args.idle_connections, d + 40)
            held.extend([procs, queue, sum(queue.get(timeout=120)[1] for _ in procs)])

        row = phase("idle connections", f"{args.idle_connections:,} connections that send "
                    "nothing, opened before the normal clients start", prepare=open_idle)
        procs, queue, opened = held
        for p in procs:
            p.join(timeout=d + 60)
        closed = sum(v for k, v in (queue.get(timeout=5) for _ in procs) if k == "closed")
        row["notes"] = [f"{opened:,} opened; {closed:,} of them closed by the server within "
                        f"{d + 40} s"]
    if "abandoned" in args.phases:
        # one burst alone: how long does the server stay busy for clients that are gone?
        wait_idle(server_pid)
        cpu0 = cpu_seconds(server_pid)
        abandon_burst(port, abandoned, args.abandon)
        busy = wait_idle(server_pid, 120)
        rows.append({"name": "abandoned burst, nothing else", "detail": f"{args.abandon} batch "
                     "requests of 64 users on as many connections, then all hang up",
                     "server_cpu_s": cpu_seconds(server_pid) - cpu0,
                     "notes": [f"server busy {busy:.2f} s after the last hang-up"]})
        print(f"abandoned burst alone: busy {busy:.2f} s, server cpu "
              f"{rows[-1]['server_cpu_s']:.2f} s", flush=True)
        phase("abandoned requests", f"a burst like that every {args.abandon_every:g} s",
              abandon_loop, abandoned, args.abandon, args.abandon_every, n_clients=1)
    if "heavy" in args.phases:
        phase("heavy requests", f"2 connections, back-to-back batch requests of {HEAVY_BATCH} x "
              f"{HEAVY_HISTORY}-item histories ({len(heavy) / 1e6:.2f} MB)", heavy_client, heavy)
    return rows


def summarise(notes: list[str]) -> str:
    if not notes:
        return ""
    if all(n == "burst" for n in notes):
        return f"{len(notes)} bursts"
    if all(n.split()[0].isdigit() and len(n.split()) == 2 for n in notes):  # heavy: status seconds
        statuses = sorted({n.split()[0] for n in notes})
        seconds = [float(n.split()[1]) for n in notes]
        return (f"{len(notes)} answered ({'/'.join(statuses)}), mean {np.mean(seconds):.2f} s, "
                f"max {max(seconds):.2f} s")
    return "; ".join(notes[:3]) + (f"; ... ({len(notes)} in all)" if len(notes) > 3 else "")


# ---- recording -----------------------------------------------------------------------------------
def load_table(rows: list[dict]) -> str:
    lines = ["| concurrency | requests/s | p50 ms | p95 ms | p99 ms | errors | requests | "
             "wall s | server CPU s | wrk CPU s |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['concurrency']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} "
                     f"| {r['p99_ms']:.2f} | {r['errors']} | {r['requests']} | {r['wall_s']:.1f} "
                     f"| {r['server_cpu_s']:.1f} | {r['wrk_cpu_s']:.1f} |")
    return "\n".join(lines)


def abuse_table(rows: list[dict]) -> str:
    lines = ["| abuse beside the normal clients | normal req/s alone | normal req/s beside | % of "
             "alone | p99 ms alone (worst slice) | p99 ms beside (worst slice) | errors beside | "
             "server CPU s beside | abuse clients' CPU s | what the abuse got |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        if "rps" not in r:
            lines.append(f"| {r['name']}: {r['detail']} | | | | | | | {r['server_cpu_s']:.1f} | | "
                         f"{summarise(r['notes'])} |")
            continue
        a = r["alone"]
        lines.append(f"| {r['name']}: {r['detail']} | {a['rps']:.0f} | {r['rps']:.0f} | "
                     f"{100 * r['rps'] / max(a['rps'], 1):.0f} % | {a['p99_ms']:.2f} | "
                     f"{r['p99_ms']:.2f} | "
                     f"{r['errors']} | {r['server_cpu_s']:.1f} | {r['abuse_cpu_s']:.1f} | "
                     f"{summarise(r['notes'])} |")
    return "\n".join(lines)


def machine() -> str:
    import fastapi
    import torch
    import uvicorn

    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    return (f"nproc {os.cpu_count()}, {cpu_model()}; Python {platform.python_version()}, "
            f"torch {torch.__version__}, fastapi {fastapi.__version__}, uvicorn {uvicorn.__version__}, "
            f"{wrk.split(' Copyright')[0].strip()}")


def also_running() -> str:
    """Load average and the busiest other processes, as the run starts."""
    ps = subprocess.run(["ps", "-eo", "pcpu,comm", "--sort=-pcpu"], capture_output=True,
                        text=True).stdout.splitlines()[1:6]
    busy = ", ".join(" ".join(line.split()[::-1]) + " %" for line in ps if float(line.split()[0]) >= 1)
    return f"load average {os.getloadavg()[0]:.2f}; busiest processes: {busy or 'none over 1 % CPU'}"


def commit() -> str:
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], capture_output=True, text=True, cwd=HERE).stdout.strip()

    dirty = git("status", "--porcelain", "--untracked-files=no")
    return git("rev-parse", "--short", "HEAD") + (" with uncommitted changes" if dirty else "")


def write_section(out: Path, kind: str, text: str) -> None:
    """Replace the ``## kind`` section of ``out`` (other sections stay; a load run and an abuse
    run finishing together take turns through ``<out>.lock``)."""
    title = "# HTTP serving: load and abuse (`benchmarks/serve_load.py`)\n"
    with locked(out):
        old = out.read_text() if out.exists() else title
        parts = old.split("\n## ")
        head, sections = parts[0], {p.split("\n", 1)[0].strip(): p for p in parts[1:]}
        sections[kind] = f"{kind}\n\n{text.strip()}\n"
        order = ["load", "abuse"] + [k for k in sections if k not in ("load", "abuse")]
        body = "\n## ".join([head.rstrip() + "\n"] + [sections[k].rstrip() + "\n"
                                                      for k in order if k in sections])
        write_atomic(out, body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="model directory (default: train a quick one)")
    parser.add_argument("--model-cache", type=Path,
                        default=Path(tempfile.gettempdir()) / "seqrec_serve_bench_model",
                        help="where the quick MovieLens model is trained once and reused")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--duration", type=int, default=60, help="seconds per level / phase")
    parser.add_argument("--concurrency", default="1,8,16,32,64")
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--history-share", type=float, default=0.2)
    parser.add_argument("--no-micro-batch", action="store_true")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--abuse", action="store_true", help="the abuse run instead of the load run")
    parser.add_argument("--abuse-concurrency", type=int, default=16)
    parser.add_argument("--idle-connections", type=int, default=20_000)
    parser.add_argument("--abandon", type=int, default=1000)
    parser.add_argument("--abandon-every", type=float, default=2.0, help="seconds between bursts")
    parser.add_argument("--slices", type=int, default=4,
                        help="alternate alone / beside the abuse this many times per phase")
    parser.add_argument("--phases", default="headers,idle,abandoned,heavy",
                        help="abuse phases to run (each after its own normal-clients-alone run)")
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
    context = also_running()
    work = Path(tempfile.mkdtemp(prefix="seqrec_serve_load_"))
    bodies = work / "bodies.jsonl"
    bodies.write_text("\n".join(request_bodies(model_dir, 2000, args.history_share, 0)) + "\n")
    lua = work / "post.lua"
    lua.write_text(LUA % {"bodies": bodies, "seed": 0, "path": "/recommend"})
    port = free_port()
    started = time.monotonic()
    server = start_server(model_dir, port, not args.no_micro_batch, args.workers, work / "server.log")
    try:
        if args.abuse:
            table = abuse_table(run_abuse(args, port, lua, server.pid, model_dir))
        else:
            rows = []
            for concurrency in [int(c) for c in args.concurrency.split(",")]:
                row = run_wrk(port, lua, concurrency, args.duration, args.wrk_threads, server.pid)
                rows.append(row)
                print(f"c={concurrency:>3}: {row['rps']:8.0f} req/s  p50 {row['p50_ms']:6.2f} ms  "
                      f"p95 {row['p95_ms']:6.2f} ms  p99 {row['p99_ms']:6.2f} ms  errors "
                      f"{row['errors']}  server cpu {row['server_cpu_s']:.1f} s", flush=True)
            table = load_table(rows)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    print(table)
    if args.no_write:
        return
    command = "python " + " ".join([f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]])
    load = (f"wrk, {args.wrk_threads} thread(s), {args.duration} s per "
            f"{'phase' if args.abuse else 'level'}, POST /recommend, {1 - args.history_share:.0%} "
            f"known users / {args.history_share:.0%} 20-item histories, k=10")
    if args.abuse:
        load += f"; normal clients: {args.abuse_concurrency} connections"
    text = "\n".join([
        f"- command: `{command}`",
        f"- commit: {commit()}",
        f"- date: {dt.datetime.now().isoformat(timespec='seconds')}, "
        f"{time.monotonic() - started:.0f} s wall in all",
        f"- machine: {machine()}",
        f"- also running as the run started: {context}; wrk and the abuse clients share the "
        "machine's cores with the server",
        f"- model: {meta.get('kind')} dim {meta.get('preset_config', {}).get('dim')}, "
        f"n_items {meta.get('n_items')}, n_users {meta.get('n_users')}",
        f"- server: `serve()` defaults (micro_batch={not args.no_micro_batch}, "
        f"workers={args.workers}); load: {load}",
        "", table])
    write_section(args.out, "abuse" if args.abuse else "load", text)
    print(f"wrote the {'abuse' if args.abuse else 'load'} section of {args.out}")


if __name__ == "__main__":
    main()
