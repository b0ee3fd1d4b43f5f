"""Fail soft: every awkward export a pilot produces gives a rendered report that says what it skipped and why."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import build_report
from analysis.report import ReportError, ReportOutcome
from tests.analysis.exports import study_export

SECTIONS = [
    "sample",
    "distributions",
    "dose-response",
    "classes",
    "models",
    "reliability",
    "correlation",
    "images",
    "methods",
    "results",
    "timings",
]


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> pd.DataFrame:
    return study_export(tmp_path_factory.mktemp("edge"), n_participants=12, n_stimuli=20, k=10, images=False)


def one_participant(df):
    return df[df["participant"] == df["participant"].iloc[0]]


def one_condition(df):
    return df[df["condition"] == "artistic-1.0"]


def nan_ids(df):
    df = df.copy()
    df.loc[df.index[:7], "participant"] = np.nan
    df.loc[df.index[10:13], "stimulus"] = np.nan
    return df


def all_missing(df):
    return df.assign(response=np.nan)


def no_baseline(df):
    return df[df["condition"] != "baseline"]


def pilot_sized(df):
    return df[df["participant"].isin(df["participant"].unique()[:3])]


def infinite(df):
    df = df.copy()
    df.loc[df.index[6], "response"] = np.inf
    return df


def non_numeric(df):
    df = df.astype({"response": object})
    df.loc[df.index[[5, 9, 20]], "response"] = "seven"
    return df


# (case, a phrase the report must contain to explain what it skipped or dropped)
CASES = [
    (one_participant, "only 1 participant remains after exclusions"),
    (one_condition, "only one condition (artistic-1.0) remains"),
    (nan_ids, "7 without a participant id; 3 without a stimulus id"),
    (all_missing, "264 with a missing response"),
    (no_baseline, "the contrasts with baseline were skipped because there is no &#39;baseline&#39; condition"),
    (pilot_sized, "Of 3 participants, 3 were retained"),
    (infinite, "1 with an infinite response"),
    (non_numeric, "3 with a non-numeric response"),
]


@pytest.mark.parametrize(("make", "phrase"), CASES, ids=[c[0].__name__ for c in CASES])
def test_edge_case_exports_give_a_rendered_report_that_explains_itself(export, tmp_path, make, phrase):
    path = tmp_path / "ratings.csv"
    make(export).to_csv(path, index=False)
    outcome = build_report(path, tmp_path / "out", n_splits=5)
    assert isinstance(outcome, ReportOutcome)
    html = outcome.read_text()
    for section in SECTIONS:
        assert f'<section id="{section}">' in html, section
    assert phrase in html
    assert "Traceback" not in html
    skipped = pd.read_csv(tmp_path / "out" / "skipped.csv")["sentence"].tolist() if outcome.skipped else []
    assert skipped == outcome.skipped
    for sentence in outcome.skipped:  # one sentence per skipped part, each saying why
        assert sentence.endswith(".") and ("because" in sentence) and sentence.replace("'", "&#39;") in html


def test_skipped_models_are_named_with_their_reason(export, tmp_path):
    outcome = build_report(one_participant(export), tmp_path / "out", n_splits=0)
    assert outcome.skipped == [
        f"{d}: every model was skipped because only 1 participant remains after exclusions, so the participant "
        "variance cannot be estimated."
        for d in ("artistry", "symbolism")
    ]
    assert not outcome.complete and "2 part(s) skipped" in outcome.message()
    flow = pd.read_csv(tmp_path / "out" / "exclusions.csv")
    assert flow["step"].tolist()[:2] == ["export", "unusable"]


def test_non_numeric_and_infinite_responses_are_counted_in_the_flow(export, tmp_path):
    df = infinite(non_numeric(export))
    outcome = build_report(df, tmp_path / "out", n_splits=0)
    flow = pd.read_csv(tmp_path / "out" / "exclusions.csv").set_index("step")
    assert flow.loc["unusable", "ratings_excluded"] == 4
    assert "3 with a non-numeric response; 1 with an infinite response" in flow.loc["unusable", "rule"]
    assert outcome.complete  # the rows were dropped and said so; every model still ran
    fixed = pd.read_csv(tmp_path / "out" / "fixed_effects.csv")
    assert np.isfinite(fixed["estimate"]).all()


def test_nothing_to_report_is_one_error(tmp_path):
    with pytest.raises(ReportError, match="ratings file not found"):
        build_report(tmp_path / "missing.csv", tmp_path / "out")
    (tmp_path / "empty.csv").write_text("participant,stimulus\n")
    with pytest.raises(ReportError, match="missing required column"):
        build_report(tmp_path / "empty.csv", tmp_path / "out")


def test_an_unknown_dimension_is_an_error_but_an_excluded_one_is_skipped(export, tmp_path):
    with pytest.raises(ReportError, match="no ratings for dimension"):
        build_report(export, tmp_path / "a", dimensions=["beauty"])
    df = export.copy()
    df.loc[df["dimension"] == "symbolism", "response"] = np.nan
    outcome = build_report(df, tmp_path / "b", n_splits=0)
    assert outcome.skipped == ["symbolism: every model was skipped because no ratings remain after exclusions."]
    assert set(pd.read_csv(tmp_path / "b" / "fixed_effects.csv")["dimension"]) == {"artistry"}


def test_no_baseline_says_which_reference_it_used(export, tmp_path):
    outcome = build_report(no_baseline(export), tmp_path / "out", n_splits=0)
    assert "effects are relative to &#39;artistic-0.25&#39;" in outcome.read_text()
    assert not (tmp_path / "out" / "contrasts.csv").read_text().strip()  # no contrast table without a baseline


def test_outcome_still_works_as_the_html_path(export, tmp_path):
    outcome = build_report(pilot_sized(export), tmp_path / "out", n_splits=0)
    assert Path(outcome) == tmp_path / "out" / "report.html" and outcome.parent == tmp_path / "out"


def test_a_fractional_slider_renders_with_binned_distributions_and_no_ordinal_model(tmp_path):
    from analysis.simulation import CrossedDesign, simulate_ratings

    slider = simulate_ratings(
        design=CrossedDesign(60, 40, 20),
        effects={"artistic-1.0": 5},
        intercept=50,
        sd_participant=8,
        sd_stimulus=5,
        sd_residual=10,
        seed=1,
    )
    slider["response"] = slider["response"].clip(0, 100).round(2)
    assert slider["response"].nunique() > 500
    outcome = build_report(slider, tmp_path / "out", n_splits=5, ordinal=True)
    assert any("the ordinal model was skipped because the responses take" in s for s in outcome.skipped)
    reliability = pd.read_csv(tmp_path / "out" / "reliability.csv")
    assert np.isfinite(reliability[["alpha_interval", "alpha_ordinal"]].to_numpy()).all()


def test_a_figure_that_cannot_be_drawn_is_left_out_with_a_sentence(export, tmp_path, monkeypatch):
    from analysis import figures

    def broken(*args, **kwargs):  # fault injection: what a matplotlib failure on odd data looks like
        raise ValueError("cannot draw this")

    monkeypatch.setattr(figures, "forest", broken)
    outcome = build_report(pilot_sized(export), tmp_path / "out", n_splits=0)
    assert "The artistry contrast figure was skipped because it could not be drawn (cannot draw this)." in (
        outcome.skipped
    )
    html = outcome.read_text()
    assert '<section id="results">' in html and 'src="None"' not in html
