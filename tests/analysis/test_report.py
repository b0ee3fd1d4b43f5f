"""The report: every section, self-contained HTML, the CSV/LaTeX contracts."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from analysis import build_report
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
]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("study")
    export = study_export(folder)
    export.loc[export["participant"] == "P00001", "rt_ms"] = 120  # one fast responder
    csv = folder / "ratings.csv"
    export.to_csv(csv, index=False)
    # Every optional part on, so every section and table is exercised.
    return build_report(csv, folder / "out", n_splits=20, slopes=True, ordinal=True, network=True)


def test_report_is_one_self_contained_file_with_every_section(report):
    html = report.read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f'<section id="{section}">' in html, section
    sources = re.findall(r'<img[^>]+src="([^"]+)"', html)
    assert len(sources) >= 8
    assert all(src.startswith("data:image/") for src in sources), "report must embed every image"
    assert "P00001" not in html or "fast" in html
    assert "χ²(4)" in html and "Krippendorff" in html
    assert "top · S" in html and "bottom · S" in html  # image grid from image_path


def test_fixed_effects_and_variance_contracts(report):
    out = report.parent
    fixed = pd.read_csv(out / "fixed_effects.csv")
    assert list(fixed.columns) == [
        "dimension",
        "model",
        "term",
        "estimate",
        "std_error",
        "ci_low",
        "ci_high",
        "p_value",
    ]
    main = fixed[fixed["model"] == "main"]
    assert set(main["dimension"]) == {"artistry", "symbolism"}
    assert "Intercept" in set(main["term"]) and "condition[T.artistic-0.5]" in set(main["term"])
    assert {"main", "dose_linear", "dose_spline", "class", "descriptors", "slopes"} <= set(fixed["model"])
    assert "standardize(colorfulness)" in set(fixed.loc[fixed["model"] == "descriptors", "term"])
    vc = pd.read_csv(out / "variance_components.csv")
    assert list(vc.columns) == ["dimension", "model", "group", "variance", "sd", "reml_loglik"]
    main_vc = vc[vc["model"] == "main"]
    assert (
        main_vc.groupby("dimension")["group"].apply(list).tolist()
        == [["participant", "stimulus", "network", "Residual"]] * 2
    )


def test_exclusions_reliability_and_latex(report):
    out = report.parent
    flow = pd.read_csv(out / "exclusions.csv").set_index("step")
    assert flow.loc["practice", "ratings_excluded"] == 36
    assert flow.loc["fast", "participants_excluded"] == 1
    assert flow.loc["attention_rows", "ratings_excluded"] == 36  # check trials leave before the models
    reliability = pd.read_csv(out / "reliability.csv")
    assert {"dimension", "icc_participant", "icc_stimulus", "split_half", "alpha_interval", "alpha_ordinal"} <= set(
        reliability.columns
    )
    for name in ("fixed_effects", "variance_components", "exclusions", "reliability", "contrasts"):
        tex = (out / f"{name}.tex").read_text()
        assert "\\begin{tabular}" in tex and "\\caption" in tex


def test_minimal_single_dimension_export_still_renders_every_section(tmp_path):
    """Only the required columns, one dimension, a DataFrame in (as the study app's task passes it)."""
    from analysis.simulation import CrossedDesign, simulate_ratings

    ratings = simulate_ratings(design=CrossedDesign(20, 20, 10), effects={"artistic-1.0": 0.5}, scale=(1, 7), seed=3)
    path = build_report(ratings, tmp_path / "out", slopes=False, ordinal=False, n_splits=5)
    html = path.read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f'<section id="{section}">' in html, section
    assert "no image grid" in html and "Needs two rated dimensions" in html
    fixed = pd.read_csv(tmp_path / "out" / "fixed_effects.csv")
    assert set(fixed["dimension"]) == {"artistry"} and "slopes" not in set(fixed["model"])


def test_methods_text_says_what_ran(report):
    """Generated from the fits and the flow table: formula, the exclusions that removed someone, df methods."""
    html = report.read_text(encoding="utf-8")
    methods = re.search(r'<section id="methods">(.*?)</section>', html, re.S).group(1)
    assert "median rt below 500 ms (1 participant(s)" in methods  # the one fast responder
    assert "excluded no one" in methods and "session not completed" in methods  # rules that ran and removed nobody
    assert "response ~ condition + (1 | participant) + (1 | stimulus) + (1 | network)" in methods
    assert "t statistics with Satterthwaite degrees of freedom for the main" in methods
    assert "artistic-0.25, artistic-0.5, artistic-1.0, baseline" in methods  # the dose conditions, by name
    assert "by-participant random slopes" in methods and "cumulative-logit" in methods
    timings = pd.read_csv(report.parent / "timings.csv")
    assert {"main model", "random slopes", "ordinal model", "figures"} <= set(timings["section"])
    assert (timings["seconds"] >= 0).all() and 'id="timings"' in html


def test_network_term_needs_more_than_one_network_per_condition(tmp_path):
    from analysis.simulation import CrossedDesign, simulate_ratings

    one_draw = simulate_ratings(design=CrossedDesign(20, 20, 10), effects={"artistic-1.0": 0.5}, scale=(1, 7), seed=3)
    outcome = build_report(one_draw, tmp_path / "a", network=True, n_splits=0)
    assert any(
        "(1 | network) term was skipped because every condition was rendered by a single network" in s
        for s in outcome.skipped
    )
    draws = simulate_ratings(
        design=CrossedDesign(40, 60, 20),
        effects={"artistic-1.0": 0.5},
        draws=3,
        sd_network=0.6,
        sd_residual=0.5,
        seed=3,
    )
    outcome = build_report(draws, tmp_path / "b", network=True, n_splits=0)
    vc = pd.read_csv(tmp_path / "b" / "variance_components.csv")
    network = vc[(vc["model"] == "main") & (vc["group"] == "network")]
    assert len(network) == 1 and network["variance"].iloc[0] > 0
    assert {"dose_linear", "dose_spline"} <= set(pd.read_csv(tmp_path / "b" / "fixed_effects.csv")["model"])


def test_dose_model_leaves_out_the_symbolic_condition(report):
    fixed = pd.read_csv(report.parent / "fixed_effects.csv")
    assert set(fixed.loc[fixed["model"] == "dose_linear", "term"]) == {"Intercept", "epsilon"}
    html = report.read_text(encoding="utf-8")
    assert "symbolic are other kinds of manipulation" in html
