"""Statistics for rating studies: exclusions, crossed mixed models (fast engine), reliability, power, report.

Names are imported on first use, so ``import analysis.schema`` (the web process's export) stays free of
NumPy, SciPy and pandas.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "DEFAULT_FORMULA": "analysis.models",
    "MissingColumnsError": "analysis.ratings",
    "ModelFitError": "analysis.engine",
    "RatingsError": "analysis.ratings",
    "RatingsFit": "analysis.models",
    "ReportError": "analysis.report",
    "ReportOutcome": "analysis.report",
    "build_report": "analysis.report",
    "fit_ratings": "analysis.models",
    "likelihood_ratio_test": "analysis.models",
    "load_ratings": "analysis.ratings",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'analysis' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
