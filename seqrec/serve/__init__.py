"""HTTP serving: a FastAPI app over a model directory (:func:`create_app`) and :func:`serve`.

:mod:`~seqrec.serve.loading` loads and validates the served model and reloads it;
:mod:`~seqrec.serve.ranking` turns requests into jobs ranked by the library's one ranking path
(micro-batched); :mod:`~seqrec.serve.schemas` holds the request and response models;
:mod:`~seqrec.serve.app` the routes and the error format; :mod:`~seqrec.serve.limits` the body
and content-type limits; :mod:`~seqrec.serve.server` runs it with uvicorn.
"""

from seqrec.serve.app import create_app
from seqrec.serve.loading import LoadedModel, ModelHolder, load_for_serving
from seqrec.serve.ranking import Job, rank_jobs
from seqrec.serve.server import check_port, serve

__all__ = ["Job", "LoadedModel", "ModelHolder", "check_port", "create_app", "load_for_serving",
           "rank_jobs", "serve"]
