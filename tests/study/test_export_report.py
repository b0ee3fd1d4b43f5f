"""The export is the report's input: one schema on both sides, and unfinished sessions leave every model."""

from __future__ import annotations

import json
import random

import pandas as pd
import pytest
from django.core.management import call_command

from analysis.report import analyse_study, build_report
from analysis.schema import EXPORT_COLUMNS, SCHEMA_VERSION
from study.bots import AnswerModel, BotError, DjangoClientTransport, run_bot, stimulus_truth
from study.selectors import ratings_rows
from tests.study.factories import EPSILON, make_study

MODEL = {"id": "tiny", "sha256": "0" * 64, "architecture": "biggan-deep"}


def give_recipes(stimulus_set) -> None:
    """Recipes as render_set writes them: multiplicative artistic conditions (two draws), embedding-noise symbolic."""
    for i, stimulus in enumerate(stimulus_set.stimuli.order_by("pk")):
        condition = stimulus.condition
        if condition == "baseline":
            perturbation = None
        elif condition == "symbolic":
            perturbation = {"kind": "semantic", "mode": "embedding-noise", "epsilon": 1.0, "seed": 2, "noise": "normal"}
        else:
            perturbation = {
                "kind": "multiplicative",
                "epsilon": EPSILON[condition],
                "seed": 1,
                "noise": "normal",
                "targets": ["all"],
            }
        stimulus.draw = 0 if perturbation is None else i % 2
        stimulus.recipe = {
            "model": MODEL,
            "seed": stimulus.seed,
            "class_index": stimulus.class_index,
            "truncation": 0.4,
            "perturbation": perturbation,
            "draw": stimulus.draw,
        }
        stimulus.save()


@pytest.mark.django_db
def test_export_then_report_lists_in_progress_participants_and_keeps_them_out_of_every_model(stimulus_set, tmp_path):
    give_recipes(stimulus_set)
    study = make_study(stimulus_set=stimulus_set, trials_per_participant=12, practice_trials=1, attention_checks=1)
    truth = stimulus_truth(study=study)
    model = AnswerModel(decline_rate=0.0, inattentive_rate=0.0)
    for i in range(8):
        assert (
            run_bot(
                transport=DjangoClientTransport(),
                slug=study.slug,
                pid=f"done{i}",
                model=model,
                truth=truth,
                rng=random.Random(i),
            ).result
            == "completed"
        )
    for i in range(3):  # consent, instructions, then a few trials: rated something, never finished
        with pytest.raises(BotError, match="did not finish"):
            run_bot(
                transport=DjangoClientTransport(),
                slug=study.slug,
                pid=f"left{i}",
                model=model,
                truth=truth,
                rng=random.Random(100 + i),
                max_pages=7,
            )

    csv = tmp_path / "ratings.csv"
    call_command("export_ratings", study.slug, "--out", str(csv))
    frame = pd.read_csv(csv)
    assert tuple(frame.columns) == EXPORT_COLUMNS  # written through the one schema module
    assert set(ratings_rows(study=study)[0]) == set(EXPORT_COLUMNS)  # every column filled, none dropped
    assert frame["schema_version"].eq(SCHEMA_VERSION).all()
    in_progress = set(frame.loc[frame["participant_status"] == "in_progress", "participant"])
    assert len(in_progress) == 3
    by_condition = frame.groupby("condition").first()
    assert by_condition.loc["symbolic", ["perturbation_kind", "perturbation_mode"]].tolist() == [
        "semantic",
        "embedding-noise",
    ]
    assert by_condition.loc["artistic-0.5", "perturbation_kind"] == "multiplicative"
    assert by_condition.loc["baseline", ["perturbation_kind", "epsilon", "network"]].tolist() == [
        "none",
        0.0,
        "baseline",
    ]
    assert set(frame.loc[frame["condition"] == "artistic-1.0", "network"]) <= {
        "artistic-1.0/draw-0/seed-1",
        "artistic-1.0/draw-1/seed-1",
    }
    assert frame["model"].eq("tiny").all() and frame["truncation"].eq(0.4).all()
    recipe = json.loads(frame.loc[frame["condition"] == "symbolic", "recipe"].iloc[0])
    assert recipe["perturbation"]["mode"] == "embedding-noise"  # every parameter travels with the export
    assert frame["recipe_id"].str.len().eq(64).all()

    outcome = build_report(csv, tmp_path / "report", n_splits=0)
    excluded = pd.read_csv(tmp_path / "report" / "excluded_participants.csv")
    assert (tmp_path / "report" / "exclusions.csv").is_file()
    by_status = excluded[excluded["step"] == "status"]
    assert set(by_status["participant"]) == in_progress
    assert by_status["rule"].str.contains("session not completed").all()
    assert by_status["detail"].eq("participant_status in_progress").all()
    flow = pd.read_csv(tmp_path / "report" / "exclusions.csv").set_index("step")
    assert flow.loc["status", "participants_excluded"] == 3
    assert "session not completed" in outcome.read_text()

    analysis = analyse_study(csv, n_splits=0)
    fits = [fit for a in analysis.dimensions.values() for fit in a.fits.values()]
    assert {"main", "dose_linear"} <= {fit.name for fit in fits}
    for fit in fits:
        assert not in_progress & set(fit.data["participant"]), fit.name
    # The dose model is multiplicative noise plus the baseline: the symbolic condition (ε = 1) is not a dose.
    dose = analysis.dimensions["artistry"].fits["dose_linear"]
    assert set(dose.data["condition"]) == {"baseline", "artistic-0.5", "artistic-1.0"}
    assert "symbolic are other kinds of manipulation" in " ".join(analysis.dimensions["artistry"].notes)
