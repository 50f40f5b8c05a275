"""HTTP serving: a FastAPI app over a model directory (:func:`create_app`) and :func:`serve`.

:mod:`~seqrec.serve.loading` loads and validates the served model and reloads it;
:mod:`~seqrec.serve.ranking` turns requests into jobs ranked by the library's one ranking path
(micro-batched) and runs big requests off the event loop; :mod:`~seqrec.serve.value` answers
``/rank/value`` (value-aware ranking with a saved calibrator); :mod:`~seqrec.serve.schemas` holds
the request and response models; :mod:`~seqrec.serve.app` the routes; :mod:`~seqrec.serve.errors`
the one error format; :mod:`~seqrec.serve.limits` the per-request limits (concurrency, body
size, content type, cancellation when the client hangs up); :mod:`~seqrec.serve.connections`
the per-connection limits (header size, request timeout, open connections);
:mod:`~seqrec.serve.server` runs it all with uvicorn.
"""

from seqrec.serve.app import create_app
from seqrec.serve.connections import ConnectionLimits
from seqrec.serve.loading import LoadedModel, ModelHolder, load_for_serving
from seqrec.serve.ranking import Job, rank_jobs
from seqrec.serve.server import check_port, serve

__all__ = ["ConnectionLimits", "Job", "LoadedModel", "ModelHolder", "check_port", "create_app",
           "load_for_serving", "rank_jobs", "serve"]
