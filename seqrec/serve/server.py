"""Running the app: :func:`serve` with uvicorn (one or more worker processes)."""

from __future__ import annotations

import json
import logging
import os
import socket
from pathlib import Path

from fastapi import FastAPI

from seqrec.serve.app import UnknownUserPolicy, create_app

_SETTINGS_ENV = "SEQREC_SERVE_SETTINGS"


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


def serve(model_dir: str | Path, host: str = "127.0.0.1", port: int = 8000, *,
          unknown_user: UnknownUserPolicy = "error", max_batch: int = 256,
          max_body_bytes: int = 1_000_000, micro_batch: bool = True, workers: int = 1,
          torch_threads: int = 1, access_log: bool = False, log_level: str = "info") -> None:
    """Serve ``model_dir`` over HTTP with uvicorn until interrupted.

    Binds to 127.0.0.1 unless ``host`` says otherwise. ``kill -HUP <pid>`` or
    ``curl -X POST localhost:PORT/admin/reload`` reloads the model without dropping requests.

    Args:
        workers: uvicorn worker processes. With more than one, ``SIGHUP`` to the parent makes
            uvicorn restart the workers one by one (each loads the new model) and
            ``/admin/reload`` reaches only the worker that answers it.
        torch_threads: intra-op threads for torch per process (1 leaves the other cores to the
            HTTP loop and to other workers).
        access_log: uvicorn's per-request log line (off: it costs throughput).
        log_level: uvicorn's and seqrec's log level.
        Others: see :func:`seqrec.serve.create_app`.
    """
    import torch
    import uvicorn

    _log_to_stderr(log_level)
    settings = {"model_dir": str(model_dir), "unknown_user": unknown_user, "max_batch": max_batch,
                "max_body_bytes": max_body_bytes, "micro_batch": micro_batch,
                "torch_threads": torch_threads}
    if workers > 1:
        os.environ[_SETTINGS_ENV] = json.dumps(settings)
        uvicorn.run("seqrec.serve.server:app_from_env", factory=True, workers=workers, host=host,
                    port=port, access_log=access_log, log_level=log_level)
        return
    torch.set_num_threads(settings.pop("torch_threads"))
    app = create_app(settings.pop("model_dir"), **settings)
    uvicorn.run(app, host=host, port=port, access_log=access_log, log_level=log_level)


def app_from_env() -> FastAPI:
    """App factory for uvicorn worker processes: settings come from :func:`serve` via the env."""
    import torch

    settings = json.loads(os.environ[_SETTINGS_ENV])
    torch.set_num_threads(settings.pop("torch_threads"))
    return create_app(settings.pop("model_dir"), **settings)
