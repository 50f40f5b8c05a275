"""Running the app: :func:`serve` with uvicorn (one or more worker processes), with the
connection limits of :mod:`~seqrec.serve.connections`."""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
from pathlib import Path

from fastapi import FastAPI

from seqrec.serve.app import UnknownUserPolicy, create_app
from seqrec.serve.connections import ConnectionLimits, GuardedHttpToolsProtocol, OpenConnections

log = logging.getLogger(__name__)

_SETTINGS_ENV = "SEQREC_SERVE_SETTINGS"
_SPARE_FILES = 64  # file descriptors beyond the connections: listener, logs, torch, reloads


def check_port(host: str, port: int) -> None:
    """Raise ``OSError`` when ``host:port`` cannot be listened on (e.g. already in use)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))


def _log_to_stderr(level: str) -> None:
    """seqrec's own log lines (reloads, failures) beside uvicorn's."""
    logger = logging.getLogger("seqrec")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level.upper())


def fit_open_files(max_connections: int) -> int:
    """Raise this process's soft limit on open files (up to the hard limit) so that
    ``max_connections`` fit; returns the connections that fit (fewer, with a warning, when the
    hard limit is too low)."""
    try:
        import resource
    except ImportError:  # not on POSIX: leave it to the OS
        return max_connections
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max_connections + _SPARE_FILES
    if soft != resource.RLIM_INFINITY and soft < want:
        soft = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if soft != resource.RLIM_INFINITY and soft < want:
        fitted = max(soft - _SPARE_FILES, 1)
        log.warning("max_connections=%d does not fit the open-file limit %d; using %d",
                    max_connections, soft, fitted)
        return fitted
    return max_connections


def serve(model_dir: str | Path, host: str = "127.0.0.1", port: int = 8000, *,
          unknown_user: UnknownUserPolicy = "error", max_batch: int = 256,
          max_ids: int = 250_000, max_body_bytes: int = 1_000_000, max_concurrency: int = 256,
          max_connections: int = 1024, busy_requests: int = 64, max_header_bytes: int = 16_384,
          timeout_request_s: float = 10.0, timeout_keep_alive_s: float = 5.0,
          micro_batch: bool = True, workers: int = 1, torch_threads: int = 1,
          access_log: bool = False, log_level: str = "info",
          value_calibrator: str | Path | None = None) -> None:
    """Serve ``model_dir`` over HTTP with uvicorn until interrupted.

    Binds to 127.0.0.1 unless ``host`` says otherwise (beyond this machine, put a reverse proxy
    with TLS and authentication in front: see docs/serve.md). ``kill -HUP <pid>`` or
    ``curl -X POST localhost:PORT/admin/reload`` reloads the model without dropping requests.

    Args:
        max_concurrency: requests handled at once per process; beyond, 503 + ``Retry-After``.
        max_connections: open connections per process; at the cap the one waiting longest with
            no request in progress is closed to make room (see :mod:`~seqrec.serve.connections`).
            The soft open-file limit is raised to fit them.
        busy_requests: while this many requests are in progress, the first request of a new
            connection waits (read, not started) until one finishes; established connections
            keep being served.
        max_header_bytes: request line + headers (beyond: 431).
        timeout_request_s: a whole request must arrive within this of the connection opening
            (or of its first byte on a kept-alive connection); beyond: 408.
        timeout_keep_alive_s: an idle kept-alive connection is closed after this.
        workers: uvicorn worker processes. With more than one, ``SIGHUP`` to the parent makes
            uvicorn restart the workers one by one (each loads the new model) and
            ``/admin/reload`` reaches only the worker that answers it. Limits are per process.
        torch_threads: intra-op threads for torch per process (1 leaves the other cores to the
            HTTP loop and to other workers).
        access_log: uvicorn's per-request log line (off: it costs throughput).
        log_level: uvicorn's and seqrec's log level.
        value_calibrator: a calibrator file fitted for the model: enables ``POST /rank/value``.
        Others: see :func:`seqrec.serve.create_app`.

    Raises:
        ValueError: a bad limit.
    """
    import torch
    import uvicorn

    _log_to_stderr(log_level)
    limits = ConnectionLimits(max_header_bytes, float(timeout_request_s),
                              fit_open_files(max_connections), busy_requests)
    protocol = functools.partial(GuardedHttpToolsProtocol, connections=OpenConnections(limits))
    server = {"host": host, "port": port, "access_log": access_log, "log_level": log_level,
              "http": protocol, "timeout_keep_alive": timeout_keep_alive_s, "ws": "none"}
    settings = {"model_dir": str(model_dir), "unknown_user": unknown_user, "max_batch": max_batch,
                "max_ids": max_ids, "max_body_bytes": max_body_bytes,
                "max_concurrency": max_concurrency, "micro_batch": micro_batch,
                "torch_threads": torch_threads,
                "value_calibrator": None if value_calibrator is None else str(value_calibrator)}
    if workers > 1:
        os.environ[_SETTINGS_ENV] = json.dumps(settings)
        uvicorn.run("seqrec.serve.server:app_from_env", factory=True, workers=workers, **server)
        return
    torch.set_num_threads(settings.pop("torch_threads"))
    app = create_app(settings.pop("model_dir"), **settings)
    uvicorn.run(app, **server)


def app_from_env() -> FastAPI:
    """App factory for uvicorn worker processes: settings come from :func:`serve` via the env."""
    import torch

    settings = json.loads(os.environ[_SETTINGS_ENV])
    torch.set_num_threads(settings.pop("torch_threads"))
    return create_app(settings.pop("model_dir"), **settings)
