"""Statistics for rating studies: exclusions, crossed mixed models (fast engine), reliability, power, report."""

from analysis.engine import ModelFitError
from analysis.models import DEFAULT_FORMULA, RatingsFit, fit_ratings, likelihood_ratio_test
from analysis.ratings import MissingColumnsError, RatingsError, load_ratings

__all__ = [
    "DEFAULT_FORMULA",
    "MissingColumnsError",
    "ModelFitError",
    "RatingsError",
    "RatingsFit",
    "build_report",
    "fit_ratings",
    "likelihood_ratio_test",
    "load_ratings",
]


def __getattr__(name: str):
    # The report pulls in matplotlib and Jinja2; load them only when a report is asked for.
    if name == "build_report":
        from analysis.report import build_report

        return build_report
    raise AttributeError(name)
