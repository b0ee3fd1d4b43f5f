"""The pairwise report and power from the command line, on simulated comparisons with a known scale (no Django)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import special

from analysis.__main__ import main
from analysis.pairwise import COMPARISON_COLUMNS, PairwiseError
from analysis.pairwise_report import analyse_pairwise, is_comparisons_table

CONDITIONS = ["baseline", "artistic-0.5", "artistic-1.0", "symbolic"]
EFFECTS = {"baseline": 0.0, "artistic-0.5": 0.8, "artistic-1.0": 1.6, "symbolic": 0.3}


def simulated_table(*, participants: int = 30, pairs: int = 20, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Bradley-Terry choices from condition effects plus a stimulus effect; practice and attention rows too."""
    rng = np.random.default_rng(seed)
    stimuli = [f"s{i:02d}" for i in range(24)]
    condition = {s: CONDITIONS[i % 4] for i, s in enumerate(stimuli)}
    truth = {s: EFFECTS[condition[s]] + rng.normal(0, 0.3) for s in stimuli}
    rows = []
    for p in range(participants):
        for t in range(pairs + 2):
            a, b = rng.choice(stimuli, 2, replace=False)
            kind = "practice" if t == 0 else "attention" if t == 5 else "rating"
            won = rng.random() < special.expit(truth[a] - truth[b])
            rows.append(
                {
                    "participant": f"p{p}",
                    "left": a,
                    "right": b,
                    "chosen": a if won else b,
                    "dimension": "artistry",
                    "rt_ms": 900,
                    "trial_index": t,
                    "pair_source": "random",
                    "is_practice": kind == "practice",
                    "is_attention_check": kind == "attention",
                    "attention_passed": True if kind == "attention" else None,
                    "condition_left": condition[a],
                    "condition_right": condition[b],
                }
            )
    return pd.DataFrame(rows), truth


def test_report_cli_writes_scale_and_condition_effects(tmp_path):
    table, truth = simulated_table()
    path = tmp_path / "comparisons.csv"
    table.to_csv(path, index=False)
    assert is_comparisons_table(path) and not is_comparisons_table(tmp_path / "missing.csv")
    assert main(["report", str(path), "--out", str(tmp_path / "out")]) == 0
    scale = pd.read_csv(tmp_path / "out" / "scale.csv")
    assert list(scale.columns[:6]) == ["dimension", "stimulus", "condition", "score", "ci_low", "ci_high"]
    assert np.corrcoef([truth[s] for s in scale["stimulus"]], scale["score"])[0, 1] > 0.8
    effects = pd.read_csv(tmp_path / "out" / "condition_effects.csv").set_index("condition")
    assert list(effects.columns[:4]) == ["dimension", "estimate", "ci_low", "ci_high"]
    low, high = effects.loc["artistic-1.0", ["ci_low", "ci_high"]]
    assert low < EFFECTS["artistic-1.0"] < high
    coverage = pd.read_csv(tmp_path / "out" / "coverage.csv")
    assert coverage.loc[0, "comparisons"] == 30 * 20 and bool(coverage.loc[0, "connected"])
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Pairwise: artistry" in html and "data:image/png;base64," in html


def test_practice_and_attention_pairs_are_left_out_and_failures_excluded():
    table, _ = simulated_table(participants=12)
    table.loc[(table["participant"] == "p3") & table["is_attention_check"], "attention_passed"] = False
    result = analyse_pairwise(table, reps=20, design_reps=0)
    assert len(result.comparisons) == 11 * 20
    assert "p3" not in set(result.comparisons["participant"])
    assert any("excluded" in note for note in result.notes)


def test_bad_comparisons_give_one_line_errors(tmp_path, capsys):
    table, _ = simulated_table(participants=3)
    table.loc[1, "chosen"] = "not-shown"  # row 0 is a practice pair
    path = tmp_path / "bad.csv"
    table.to_csv(path, index=False)
    assert main(["report", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "chose a stimulus that was not shown" in capsys.readouterr().err
    with pytest.raises(PairwiseError, match="lacks column"):
        analyse_pairwise(table.drop(columns=["dimension"]), reps=5, design_reps=0)
    assert set(COMPARISON_COLUMNS) <= set(simulated_table(participants=1)[0].columns)


def test_power_covers_pairwise_designs(tmp_path, capsys):
    code = main(
        [
            "power",
            "--pairwise",
            "--stimuli",
            "12",
            "--participants",
            "5,20",
            "--pairs",
            "6",
            "--design",
            "balanced",
            "--target-ci-width",
            "2.0",
            "--sims",
            "2",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    table = pd.read_csv(tmp_path / "power_pairwise.csv")
    assert list(table["n_participants"]) == [5, 20]
    assert table.loc[1, "mean_ci_width"] < table.loc[0, "mean_ci_width"]  # more participants, narrower CIs
    assert table["meets_target"].dtype == bool
