"""A fitted calibrator saved as a small JSON file (no pickle), tied to the model it was fitted for.

A calibrator maps the recommender's next-item log-probability to ``P(answer | shown)``
(:func:`seqrec.value.model_scores.fit_model_calibrator`). It is right only for the scores of the
model it was fitted on, and for one normalisation of them, so the file records both, and
:func:`load_calibrator` refuses it for another model version. The file (``format_version`` 1)::

    {"format": "seqrec-value-calibrator", "format_version": 1,
     "method": "platt",                  # or "temperature", "isotonic"
     "parameters": {"slope": 1.3, "intercept": 0.8},
                   # temperature: {"temperature"}; isotonic: {"thresholds": [...], "probabilities": [...]}
     "normalise": "catalogue",           # or "eligible" (see seqrec.value.model_scores)
     "model_version": "2026-...+1a2b3c4d5e6f",   # seqrec.load_model(dir).metadata["model_version"]
     "saved_at": "2026-...",
     "report": {"holdout": "time", "n_train_rows": 420, "n_test_rows": 180,
                "before": {"log_loss", "brier", "ece", "ece_mass", "n"}, "after": {...}}}

``report`` is null when a bare calibrator was saved. Floats are written with Python's shortest
round-tripping repr, so a loaded calibrator predicts exactly what the saved one did. The file is
replaced atomically (:func:`seqrec.files.write_atomic`): a process killed while saving leaves the
old file whole.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from seqrec.errors import SeqrecError
from seqrec.files import write_atomic
from seqrec.value.calibration import CalibrationReport
from seqrec.value.calibrators import (
    CalibrationMethod,
    Calibrator,
    IsotonicCalibrator,
    PlattCalibrator,
    TemperatureCalibrator,
)
from seqrec.value.model_scores import NORMALISATIONS, Normalisation
from seqrec.value.reliability import CalibrationMetrics

FORMAT = "seqrec-value-calibrator"
FORMAT_VERSION = 1
_METRICS = ("log_loss", "brier", "ece", "ece_mass", "n")


class CalibratorFileError(SeqrecError, ValueError):
    """A calibrator file that cannot be used: missing, malformed, of an unknown kind or version."""


class CalibratorMismatchError(CalibratorFileError):
    """A calibrator fitted for another model version than the one it is loaded for.

    Attributes:
        fitted_for: the model version the file was fitted for.
        model_version: the version it was loaded for.
    """

    def __init__(self, message: str, fitted_for: str, model_version: str) -> None:
        super().__init__(message)
        self.fitted_for = fitted_for
        self.model_version = model_version


@dataclass(frozen=True)
class HeldOutReport:
    """A calibrator's quality on the held-out impressions it was reported on (see
    :class:`~seqrec.value.calibration.CalibrationReport`): ``before`` reads log-probabilities
    as ``sigmoid(score)``, ``after`` applies the calibrator."""

    holdout: str
    n_train_rows: int
    n_test_rows: int
    before: CalibrationMetrics
    after: CalibrationMetrics


@dataclass(frozen=True)
class SavedCalibrator:
    """A calibrator loaded from (or saved to) a file.

    Attributes:
        calibrator: maps ``(n,) float64`` log-probabilities to ``(n,) float64`` P(answer | shown).
        method: "platt", "temperature" or "isotonic".
        normalise: the log-probabilities it was fitted on: "catalogue" or "eligible".
        model_version: the model version it was fitted for.
        report: held-out quality, or None when a bare calibrator was saved.
        saved_at: ISO 8601 UTC time of the save.
    """

    calibrator: Calibrator
    method: CalibrationMethod
    normalise: Normalisation
    model_version: str
    report: HeldOutReport | None
    saved_at: str


def model_version_of(model: Any) -> str:
    """The version a calibrator is tied to: ``model`` itself when it is a string, else
    ``model.metadata["model_version"]`` (set by :func:`seqrec.load_model`).

    Raises:
        ValueError: a model without a version (trained in this process and never loaded).
    """
    if isinstance(model, str):
        return model
    version = (getattr(model, "metadata", None) or {}).get("model_version")
    if not isinstance(version, str) or not version:
        raise ValueError("model has no model_version: save it (seqrec.save_model) and load it "
                         "(seqrec.load_model), then fit and save the calibrator for that model")
    return version


def _parameters(calibrator: Calibrator) -> tuple[CalibrationMethod, dict[str, Any]]:
    if isinstance(calibrator, PlattCalibrator):
        return "platt", {"slope": float(calibrator.slope), "intercept": float(calibrator.intercept)}
    if isinstance(calibrator, TemperatureCalibrator):
        return "temperature", {"temperature": float(calibrator.temperature)}
    if isinstance(calibrator, IsotonicCalibrator):
        return "isotonic", {"thresholds": np.asarray(calibrator.thresholds, float).tolist(),
                            "probabilities": np.asarray(calibrator.probabilities, float).tolist()}
    raise ValueError(f"calibrator: cannot save a {type(calibrator).__name__}; expected a Platt, "
                     "temperature or isotonic calibrator (seqrec.value.calibrators)")


def _metrics_json(m: CalibrationMetrics) -> dict[str, Any]:
    values = {name: getattr(m, name) for name in _METRICS}
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in values.items()}


def save_calibrator(report_or_calibrator: CalibrationReport | Calibrator, path: str | Path, *,
                    model: Any, normalise: Normalisation = "catalogue") -> Path:
    """Save a fitted calibrator (and its held-out report) as JSON, atomically.

    Args:
        report_or_calibrator: a :class:`~seqrec.value.calibration.CalibrationReport` (e.g. from
            :func:`~seqrec.value.model_scores.fit_model_calibrator`), whose report is kept too,
            or a bare Platt / temperature / isotonic calibrator.
        path: the file to write (replaced whole if it exists; its folder is created).
        model: the recommender it was fitted against, as loaded by :func:`seqrec.load_model`
            (its ``metadata["model_version"]``), or that version string.
        normalise: the log-probabilities it was fitted on ("catalogue" or "eligible"; the
            ``normalise=`` given to ``fit_model_calibrator``).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: an unknown ``normalise``, a calibrator of another kind, or a model without
            a version.
        OSError: the file cannot be written (an existing file is left as it was).
    """
    if normalise not in NORMALISATIONS:
        raise ValueError(f"normalise must be one of {NORMALISATIONS}; got {normalise!r}")
    version = model_version_of(model)
    report = None
    if isinstance(report_or_calibrator, CalibrationReport):
        r = report_or_calibrator
        method, parameters = _parameters(r.calibrator)
        report = {"holdout": r.holdout, "n_train_rows": int(r.n_train_rows),
                  "n_test_rows": int(r.n_test_rows), "before": _metrics_json(r.before),
                  "after": _metrics_json(r.after)}
    else:
        method, parameters = _parameters(report_or_calibrator)
    content = {"format": FORMAT, "format_version": FORMAT_VERSION, "method": method,
               "parameters": parameters, "normalise": normalise, "model_version": version,
               "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
               "report": report}
    return write_atomic(path, json.dumps(content, indent=1, allow_nan=False) + "\n")


def _number(data: dict[str, Any], key: str, where: str, allow_none: bool = False) -> float:
    value = data.get(key)
    if value is None and allow_none and key in data:
        return float("nan")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{where}.{key}: expected a finite number; got {value!r}")
    return float(value)


def _calibrator(method: Any, parameters: Any) -> Calibrator:
    if not isinstance(parameters, dict):
        raise ValueError(f"parameters: expected a JSON object; got {parameters!r}")
    if method == "platt":
        return PlattCalibrator(_number(parameters, "slope", "parameters"),
                               _number(parameters, "intercept", "parameters"))
    if method == "temperature":
        temperature = _number(parameters, "temperature", "parameters")
        if temperature <= 0:
            raise ValueError(f"parameters.temperature: expected > 0; got {temperature!r}")
        return TemperatureCalibrator(temperature)
    if method == "isotonic":
        arrays = []
        for key in ("thresholds", "probabilities"):
            values = parameters.get(key)
            if not isinstance(values, list) or not values or not all(
                    isinstance(v, int | float) and not isinstance(v, bool) for v in values):
                raise ValueError(f"parameters.{key}: expected a non-empty list of numbers")
            arrays.append(np.asarray(values, dtype=np.float64))
        x, y = arrays
        if x.shape != y.shape or not np.isfinite(x).all() or np.any(np.diff(x) < 0):
            raise ValueError("parameters: expected thresholds and probabilities of one length, "
                             "thresholds finite and increasing")
        if not np.isfinite(y).all() or y.min() < 0 or y.max() > 1 or np.any(np.diff(y) < 0):
            raise ValueError("parameters.probabilities: expected non-decreasing values in [0, 1]")
        return IsotonicCalibrator(x, y)
    raise ValueError(f"method: unknown calibrator {method!r}; expected 'platt', 'temperature' "
                     "or 'isotonic'")


def _report(data: Any) -> HeldOutReport | None:
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ValueError(f"report: expected a JSON object or null; got {data!r}")
    metrics = []
    for part in ("before", "after"):
        m = data.get(part)
        if not isinstance(m, dict):
            raise ValueError(f"report.{part}: expected a JSON object")
        where = f"report.{part}"
        metrics.append(CalibrationMetrics(
            _number(m, "log_loss", where), _number(m, "brier", where), _number(m, "ece", where),
            int(_number(m, "n", where)), _number(m, "ece_mass", where, allow_none=True)))
    return HeldOutReport(str(data.get("holdout")), int(_number(data, "n_train_rows", "report")),
                         int(_number(data, "n_test_rows", "report")), *metrics)


def _parse(data: Any) -> SavedCalibrator:
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    if data.get("format") != FORMAT:
        raise ValueError(f"not a seqrec value calibrator (format {data.get('format')!r}, expected "
                         f"{FORMAT!r})")
    if data.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"format_version {data.get('format_version')!r}, expected "
                         f"{FORMAT_VERSION} (saved by another seqrec version?)")
    normalise, version = data.get("normalise"), data.get("model_version")
    if normalise not in NORMALISATIONS:
        raise ValueError(f"normalise: expected one of {NORMALISATIONS}; got {normalise!r}")
    if not isinstance(version, str) or not version:
        raise ValueError(f"model_version: expected the model version string; got {version!r}")
    return SavedCalibrator(_calibrator(data.get("method"), data.get("parameters")),
                           data["method"], normalise, version, _report(data.get("report")),
                           str(data.get("saved_at", "")))


def load_calibrator(path: str | Path, model: Any = None) -> SavedCalibrator:
    """Load a calibrator saved by :func:`save_calibrator`, checking it fits ``model``.

    Args:
        path: the JSON file.
        model: the recommender (loaded by :func:`seqrec.load_model`) or model version string the
            calibrator is to be used with; None skips the version check.

    Returns:
        :class:`SavedCalibrator`.

    Raises:
        CalibratorFileError: (a ``ValueError``) the file is missing, not JSON, not a calibrator
            file, of another format version, or holds bad parameters; the message names the
            file and what was expected.
        CalibratorMismatchError: (a ``CalibratorFileError``) it was fitted for another model
            version.
        ValueError: ``model`` has no version.
    """
    path = Path(path)
    expected = None if model is None else model_version_of(model)
    try:
        data = json.loads(path.read_bytes())
        saved = _parse(data)
    except FileNotFoundError:
        raise CalibratorFileError(f"{path}: not found (a calibrator file from `seqrec simulate "
                                  "calibrate` or seqrec.value.save_calibrator)") from None
    except IsADirectoryError:
        raise CalibratorFileError(f"{path}: is a directory, expected a calibrator file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CalibratorFileError(f"{path}: not valid JSON ({error})") from None
    except ValueError as error:
        raise CalibratorFileError(f"{path}: {error}") from None
    if expected is not None and saved.model_version != expected:
        raise CalibratorMismatchError(
            f"{path}: fitted for model version {saved.model_version}, but the model is version "
            f"{expected}; fit a calibrator for this model (seqrec simulate calibrate) and save "
            "it there", saved.model_version, expected)
    return saved
