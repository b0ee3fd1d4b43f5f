"""The export is the analysis input: one row per rating with every column the analysis reads."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import pytest
from django.core.management import call_command
from django.test import Client

from study.bots import AnswerModel, DjangoClientTransport, run_bot, stimulus_truth
from study.models import Rating
from tests.study.helpers import to_trials

ANALYSIS_REQUIRED = [
    "participant",
    "stimulus",
    "condition",
    "epsilon",
    "class_index",
    "dimension",
    "response",
    "rt_ms",
    "trial_index",
]
CONTRACT = [
    *ANALYSIS_REQUIRED,
    "is_practice",
    "is_attention_check",
    "attention_passed",
    "shown_at",
    "answered_at",
    "participant_status",
    "duration_s",
    "age_band",
    "gender",
    "art_training",
    "art_expertise",
    "comment",
    "colorfulness",
    "saturation",
    "rms_contrast",
    "luminance_entropy",
    "edge_density",
    "compression_ratio",
    "image_path",
]


def run_bots(study, n: int, **model):
    truth = stimulus_truth(study=study)
    answer_model = AnswerModel(**{"decline_rate": 0.0, "inattentive_rate": 0.0, **model})
    return [
        run_bot(
            transport=DjangoClientTransport(),
            slug=study.slug,
            pid=f"bot{i}",
            model=answer_model,
            truth=truth,
            rng=random.Random(i),
        )
        for i in range(n)
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export_has_one_row_per_rating_and_the_contract_columns(study, tmp_path, suffix):
    outcomes = run_bots(study, 3)
    assert [o.result for o in outcomes] == ["completed"] * 3
    to_trials(Client(), study, "unfinished")  # consented, no answers: no rows
    out = tmp_path / f"ratings{suffix}"
    call_command("export_ratings", study.slug, "--out", str(out))
    frame = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    assert set(CONTRACT) <= set(frame.columns)
    assert len(frame) == Rating.objects.count() == 3 * ((1 + 8) * 2 + 1)
    assert frame.duplicated(["participant", "trial_index", "dimension"]).sum() == 0
    assert frame["participant"].nunique() == 3
    assert set(frame["condition"]) == {"baseline", "artistic-0.5", "artistic-1.0", "symbolic"}
    assert frame["is_practice"].sum() == 3 * 2 and frame["is_attention_check"].sum() == 3
    assert frame.loc[frame["is_attention_check"], "attention_passed"].astype(bool).all()
    assert frame["participant_status"].eq("completed").all()
    assert frame["rt_ms"].notna().all() and (frame["rt_ms"] > 0).all()
    assert frame["response"].between(1, 7).all()
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in frame["image_path"])
    assert not any("bot" in p for p in frame["participant"])  # pseudonyms, not recruitment ids
    rated = frame[~frame["is_practice"] & ~frame["is_attention_check"]]
    assert rated.groupby("participant")["stimulus"].nunique().eq(8).all()


@pytest.mark.django_db
def test_bot_condition_effects_show_up_in_the_export(stimulus_set):
    from tests.study.factories import make_study

    study = make_study(stimulus_set=stimulus_set, trials_per_participant=24, practice_trials=0, attention_checks=0)
    run_bots(study, 6, effects={"artistry": {"artistic-1.0": 0.4}, "symbolism": {}}, noise_sd=0.05)
    from study.selectors import ratings_frame

    frame = ratings_frame(study=study)
    means = frame[frame["dimension"] == "artistry"].groupby("condition")["response"].mean()
    assert means["artistic-1.0"] - means["baseline"] > 1.5


@pytest.mark.django_db
def test_export_of_an_empty_study_has_the_columns(study, tmp_path):
    out = tmp_path / "empty.csv"
    call_command("export_ratings", study.slug, "--out", str(out))
    frame = pd.read_csv(out)
    assert frame.empty and set(CONTRACT) <= set(frame.columns)


@pytest.mark.django_db
def test_pilot_ratings_are_excluded_unless_asked(stimulus_set, tmp_path):
    from tests.study.factories import make_study

    study = make_study(stimulus_set=stimulus_set, status="pilot")
    run_bots(study, 1)
    call_command("export_ratings", study.slug, "--out", str(tmp_path / "a.csv"))
    call_command("export_ratings", study.slug, "--out", str(tmp_path / "b.csv"), "--include-pilot")
    assert pd.read_csv(tmp_path / "a.csv").empty
    assert pd.read_csv(tmp_path / "b.csv")["is_pilot"].all()
