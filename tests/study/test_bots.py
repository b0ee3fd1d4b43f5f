"""`run_bots`: simulated participants through the real views, in-process and over HTTP."""

from __future__ import annotations

from collections import Counter

import pytest
from django.core.management import call_command

from config.errors import SetupError
from study.models import Participant, Rating, RatingDimension, Trial
from study.selectors import stimulus_allocation_counts
from tests.study.factories import make_study


@pytest.mark.django_db
def test_run_bots_in_process_completes_declines_and_fails_checks(stimulus_set, capsys):
    study = make_study(
        stimulus_set=stimulus_set,
        trials_per_participant=12,
        attention_checks=2,
        source={"bots": {"decline_rate": 0.3, "inattentive_rate": 0.4}},
    )
    call_command("run_bots", study.slug, "--participants", "20", "--seed", "3")
    out = capsys.readouterr().out
    assert "20 bots" in out
    steps = Counter(Participant.objects.filter(study=study).values_list("step", flat=True))
    assert steps["done"] + steps["declined"] == 20
    assert steps["declined"] >= 1 and steps["done"] >= 10
    assert Participant.objects.filter(study=study, attention_failures__gt=0).exists()
    counts = stimulus_allocation_counts(study=study)
    assert max(counts.values()) - min(counts.values()) <= 1
    # Same seed again: the same ids resume (already done), nobody starts twice.
    call_command("run_bots", study.slug, "--participants", "20", "--seed", "3")
    assert Participant.objects.filter(study=study).count() == 20


@pytest.mark.django_db
def test_run_bots_refuses_a_draft_study(stimulus_set):
    study = make_study(stimulus_set=stimulus_set, status="draft")
    with pytest.raises(SetupError, match="bots need it live or pilot"):
        call_command("run_bots", study.slug, "--participants", "1")


@pytest.mark.django_db
def test_bots_handle_blocks_sliders_and_a_between_subject_dimension(stimulus_set):
    dims = [
        {"name": "artistry", "prompt": "Art?", "kind": "slider", "points": 7},
        {"name": "symbolism", "prompt": "Symbol?", "kind": "likert", "points": 5},
    ]
    blocks = make_study(stimulus_set=stimulus_set, dimensions=dims, layout="blocks", trials_per_participant=4)
    call_command("run_bots", blocks.slug, "--participants", "3")
    rated = Rating.objects.filter(trial__participant__study=blocks, trial__kind="rating")
    assert rated.count() == 3 * 4 * 2
    assert rated.filter(dimension__kind=RatingDimension.Kind.SLIDER, value__gt=7).exists()
    between = make_study(
        stimulus_set=stimulus_set, dimensions=dims, between_factor="dimension", trials_per_participant=4
    )
    call_command("run_bots", between.slug, "--participants", "4", "--model", "/dev/null")
    groups = Counter(
        Participant.objects.filter(study=between, consented_at__isnull=False).values_list("group", flat=True)
    )
    assert set(groups) == {"artistry", "symbolism"}
    assert max(groups.values()) - min(groups.values()) <= 1
    for trial in Trial.objects.filter(participant__study=between):
        assert trial.dimensions == [trial.participant.group]


@pytest.mark.django_db(transaction=True)
def test_run_bots_over_http_against_a_live_server(live_server, stimulus_set):
    study = make_study(stimulus_set=stimulus_set, trials_per_participant=4, source={"bots": {"decline_rate": 0}})
    call_command("run_bots", study.slug, "--participants", "4", "--base-url", live_server.url, "--concurrency", "2")
    assert Participant.objects.filter(study=study, step="done").count() == 4
    assert Rating.objects.filter(trial__participant__study=study).count() == 4 * ((1 + 4) * 2 + 1)
