"""Command-line contracts, run as subprocesses exactly as users run them; and no Django anywhere."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.analysis.exports import study_export

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def export_csv(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cli")
    path = folder / "ratings.csv"
    study_export(folder, n_participants=24, n_stimuli=20, k=15, images=False).to_csv(path, index=False)
    return path


def test_analysis_imports_without_django():
    result = run(
        "-c",
        "import analysis, analysis.report, analysis.power, sys; "
        "from analysis import build_report, fit_ratings, load_ratings; "
        "assert 'django' not in sys.modules, 'django imported'",
    )
    assert result.returncode == 0, result.stderr


def test_report_command_writes_the_contract_files(export_csv, tmp_path):
    out = tmp_path / "report"
    result = run("-m", "analysis", "report", str(export_csv), "--out", str(out), "--splits", "10")
    assert result.returncode == 0, result.stderr[-2000:]
    for name in (
        "report.html",
        "fixed_effects.csv",
        "variance_components.csv",
        "exclusions.csv",
        "reliability.csv",
        "fixed_effects.tex",
    ):
        assert (out / name).is_file(), name
    fixed = pd.read_csv(out / "fixed_effects.csv")
    assert (fixed["model"] == "main").any()


def test_fit_command_prints_the_model_table(export_csv):
    result = run("-m", "analysis", "fit", str(export_csv), "--dimension", "artistry")
    assert result.returncode == 0, result.stderr
    assert "condition[T.artistic-1.0]" in result.stdout and "Residual" in result.stdout
    custom = run(
        "-m",
        "analysis",
        "fit",
        str(export_csv),
        "--dimension",
        "symbolism",
        "--formula",
        "response ~ epsilon + (1 | participant) + (1 | stimulus)",
    )
    assert custom.returncode == 0, custom.stderr
    assert "epsilon" in custom.stdout


def test_power_command_prints_and_plots(tmp_path):
    result = run(
        "-m",
        "analysis",
        "power",
        "--effects",
        "artistic-1.0=0.8",
        "--participants",
        "10,20",
        "--stimuli",
        "20",
        "--ratings-per-participant",
        "10",
        "--sims",
        "20",
        "--out",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert "power" in result.stdout and "condition[T.artistic-1.0]" in result.stdout
    table = pd.read_csv(tmp_path / "power.csv")
    assert len(table) == 2 and table["power"].between(0, 1).all()
    assert (tmp_path / "power.png").stat().st_size > 1000


def test_power_command_from_an_export(export_csv):
    result = run(
        "-m",
        "analysis",
        "power",
        str(export_csv),
        "--dimension",
        "artistry",
        "--participants",
        "12",
        "--stimuli",
        "20",
        "--ratings-per-participant",
        "10",
        "--sims",
        "10",
    )
    assert result.returncode == 0, result.stderr
    assert "condition[T.symbolic]" in result.stdout


def test_missing_columns_give_one_line_and_exit_2(export_csv, tmp_path):
    broken = tmp_path / "broken.csv"
    pd.read_csv(export_csv).drop(columns=["rt_ms", "stimulus"]).to_csv(broken, index=False)
    for command in (["report", str(broken), "--out", str(tmp_path / "x")], ["fit", str(broken), "--dimension", "a"]):
        result = run("-m", "analysis", *command)
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("error:") and "stimulus" in lines[0] and "rt_ms" in lines[0]
    missing_file = run("-m", "analysis", "fit", str(tmp_path / "nope.csv"), "--dimension", "artistry")
    assert missing_file.returncode == 2 and missing_file.stderr.startswith("error: ratings file not found")


def test_report_with_skipped_parts_exits_0_with_one_warning_line(export_csv, tmp_path):
    one_condition = tmp_path / "one.csv"
    frame = pd.read_csv(export_csv)
    frame[frame["condition"] == "artistic-1.0"].to_csv(one_condition, index=False)
    result = run("-m", "analysis", "report", str(one_condition), "--out", str(tmp_path / "out"), "--splits", "0")
    assert result.returncode == 0, result.stderr[-2000:]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "only one condition" in warnings[0]
    assert "Traceback" not in result.stderr and (tmp_path / "out" / "report.html").is_file()
    assert result.stdout.startswith("wrote ")


def test_fit_and_power_refuse_one_participant_in_one_line(export_csv, tmp_path):
    one = tmp_path / "one.csv"
    frame = pd.read_csv(export_csv)
    frame[frame["participant"] == frame["participant"].iloc[0]].to_csv(one, index=False)
    fit = run("-m", "analysis", "fit", str(one), "--dimension", "artistry")
    power = run("-m", "analysis", "power", str(one), "--participants", "4", "--stimuli", "10", "--sims", "2")
    for result in (fit, power):
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stderr.startswith("error:") and "1" in result.stderr and "participant" in result.stderr


def test_fit_refuses_an_infinite_response_in_one_line(export_csv, tmp_path):
    broken = tmp_path / "inf.csv"
    frame = pd.read_csv(export_csv)
    frame.loc[3, "response"] = float("inf")
    frame.to_csv(broken, index=False)
    result = run("-m", "analysis", "fit", str(broken), "--dimension", frame.loc[3, "dimension"], "--no-exclusions")
    assert result.returncode == 2 and result.stderr.startswith("error: the response has 1 infinite value(s)")
    kept = run("-m", "analysis", "fit", str(broken), "--dimension", frame.loc[3, "dimension"])
    assert kept.returncode == 0, kept.stderr  # the exclusions drop the row and the model is fitted
