"""Pairwise studies: assignment by design, exactly-once choices, the adaptive posterior, export, bots."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command

from analysis.pairs import is_connected
from analysis.pairwise import COMPARISON_COLUMNS, COMPARISON_EXPORT_COLUMNS
from study import pairwise
from study.bots import read_page
from study.models import Choice, PairPosterior, Participant, Trial
from tests.study.factories import make_study
from tests.study.helpers import post_step, to_trials


def pair_study(stimulus_set, **fields):
    defaults = {
        "task": "pairwise",
        "pair_design": "balanced",
        "pairs_per_participant": 6,
        "practice_trials": 1,
        "attention_checks": 1,
    }
    defaults.update(fields)
    return make_study(stimulus_set=stimulus_set, **defaults)


def answer_pair(client, url, participant, side="left", **extra):
    participant.refresh_from_db()
    trial = participant.trials.get(index=participant.position)
    if trial.kind == Trial.Kind.ATTENTION:
        side = ("left", "right")[trial.expected_value]
    data = {"step": "trials", "trial": trial.index, "rt_ms": 900}
    for name in trial.dimensions:
        data[name] = side
        data[f"rt_ms_{name}"] = 800
    data.update(extra)
    return client.post(url, data)


@pytest.mark.django_db
def test_consent_assigns_blocks_of_pairs_with_practice_and_attention(client, stimulus_set):
    study = pair_study(stimulus_set)
    url, participant = to_trials(client, study)
    trials = list(participant.trials.order_by("index"))
    kinds = Counter(t.kind for t in trials)
    assert kinds == {"practice": 1, "attention": 1, "rating": 12}  # 6 pairs x 2 dimensions
    assert trials[0].kind == "practice"
    assert all(t.stimulus_right_id and t.stimulus_right_id != t.stimulus_id for t in trials)
    assert all(len(t.dimensions) == 1 for t in trials)
    assert {t.pair_source for t in trials if t.kind == "rating"} == {"balanced"}
    blocks = [t.dimensions[0] for t in trials if t.kind == "rating"]
    assert blocks == sorted(blocks, key=blocks.index)  # one block per dimension
    page = client.get(url)
    reader = read_page(page.content.decode())
    assert reader.step == "trials" and set(reader.pair_images) == {"left", "right"}
    assert participant.seed is not None


@pytest.mark.django_db
def test_choices_are_stored_once_and_move_the_participant(client, stimulus_set):
    study = pair_study(stimulus_set, practice_trials=0, attention_checks=0)
    url, participant = to_trials(client, study)
    first = participant.trials.get(index=0)
    assert answer_pair(client, url, participant, side="right").status_code == 303
    # The same form again (double click): nothing new stored, still at trial 1.
    data = {"step": "trials", "trial": 0, first.dimensions[0]: "left"}
    assert client.post(url, data).status_code == 303
    choice = Choice.objects.get(trial=first)
    assert choice.side == "right" and choice.chosen_id == first.stimulus_right_id and choice.rt_ms == 800
    participant.refresh_from_db()
    assert participant.position == 1
    # A tie is refused unless the study allows it; nonsense is a 400, never a 500.
    assert answer_pair(client, url, participant, side="tie").status_code == 400
    assert answer_pair(client, url, participant, side="up").status_code == 400


@pytest.mark.django_db
def test_tie_when_enabled_and_attention_pairs_are_scored(client, stimulus_set):
    study = pair_study(stimulus_set, pair_allow_tie=True, practice_trials=0, attention_checks=1)
    url, participant = to_trials(client, study)
    page = client.get(url).content.decode()
    assert 'value="tie"' in page
    while True:
        participant.refresh_from_db()
        if participant.step != "trials":
            break
        trial = participant.trials.get(index=participant.position)
        if trial.kind == "attention":
            wrong = ("right", "left")[trial.expected_value]
            data = {"step": "trials", "trial": trial.index, trial.dimensions[0]: wrong}
            assert client.post(url, data).status_code == 303
        else:
            assert answer_pair(client, url, participant, side="tie").status_code == 303
    participant.refresh_from_db()
    assert participant.attention_failures == 1
    assert Choice.objects.filter(trial__participant=participant, side="tie", chosen=None).count() == 12


@pytest.mark.django_db
def test_adaptive_answers_update_the_shared_posterior_in_order(client, stimulus_set):
    study = pair_study(stimulus_set, pair_design="adaptive", practice_trials=0, attention_checks=0)
    url, participant = to_trials(client, study)
    assert PairPosterior.objects.filter(study=study).count() == 2
    for _ in range(5):
        assert answer_pair(client, url, participant, side="left").status_code == 303
    # An answer leaves the shared posterior alone (no row lock on the hot path); the next read catches it up.
    assert sum(p.n_updates for p in PairPosterior.objects.filter(study=study)) == 0
    assert not Choice.objects.exclude(posterior_seq=None).exists()
    rows = {
        p.dimension.name: pairwise.posterior_catch_up(study=study, dimension=p.dimension)
        for p in PairPosterior.objects.filter(study=study)
    }
    assert sum(p.n_updates for p in rows.values()) == 5
    again = {name: pairwise.posterior_catch_up(study=study, dimension=p.dimension) for name, p in rows.items()}
    assert {name: p.n_updates for name, p in again.items()} == {name: p.n_updates for name, p in rows.items()}
    seqs = sorted(Choice.objects.exclude(posterior_seq=None).values_list("posterior_seq", flat=True))
    assert len(seqs) == 5
    before = {name: bytes(p.mu) for name, p in rows.items()}
    for name, row in rows.items():
        rebuilt = pairwise.posterior_rebuild(study=study, dimension=row.dimension)
        assert bytes(rebuilt.mu) == before[name]  # replaying in the recorded order gives the same posterior
    # The next participant's pairs come from the updated posterior, complementing what is still pending.
    from django.test import Client

    _, other = to_trials(Client(), study, pid="p2")
    assert {t.pair_source for t in other.trials.all()} == {"adaptive"}
    # Answers given after a catch-up are applied by the next consent, before it draws its pairs.
    assert answer_pair(client, url, participant, side="right").status_code == 303
    to_trials(Client(), study, pid="p3")
    assert sum(p.n_updates for p in PairPosterior.objects.filter(study=study)) == 6


@pytest.mark.django_db
def test_balanced_design_spreads_stimuli_and_connects_the_graph(stimulus_set):
    from django.test import Client

    study = pair_study(
        stimulus_set,
        pairs_per_participant=12,
        practice_trials=0,
        attention_checks=0,
        dimensions=[{"name": "artistry", "prompt": "Which is more art?"}],
    )
    for i in range(4):
        to_trials(Client(), study, pid=f"b{i}")
    trials = Trial.objects.filter(participant__study=study, kind="rating")
    uses = Counter()
    for t in trials:
        uses.update([t.stimulus_id, t.stimulus_right_id])
    assert len(uses) == 24 and max(uses.values()) - min(uses.values()) <= 1  # 4 x 12 pairs = 96 uses / 24
    ids = sorted(uses)
    pairs = np.array([[ids.index(t.stimulus_id), ids.index(t.stimulus_right_id)] for t in trials])
    assert is_connected(n_items=24, pairs=pairs)
    lefts = Counter(t.stimulus_id for t in trials)
    assert 0 < sum(lefts.values()) < 2 * len(trials)


@pytest.mark.django_db
def test_export_writes_one_row_per_choice_with_both_stimuli(client, stimulus_set, tmp_path):
    study = pair_study(stimulus_set, practice_trials=0, attention_checks=0, pair_design="random")
    url, participant = to_trials(client, study)
    for _ in range(3):
        answer_pair(client, url, participant, side="right")
    out = tmp_path / "comparisons.csv"
    call_command("export_ratings", study.slug, "--out", str(out))
    frame = pd.read_csv(out)
    assert list(frame.columns) == list(COMPARISON_EXPORT_COLUMNS)
    assert set(COMPARISON_COLUMNS) <= set(frame.columns)
    assert len(frame) == 3
    assert (frame["chosen"] == frame["right"]).all()
    assert (frame["pair_source"] == "random").all()
    assert {"condition_left", "condition_right", "image_path_left"} <= set(frame.columns)
    assert frame["condition_left"].notna().all()
    assert step_not_changed(participant)


def step_not_changed(participant: Participant) -> bool:
    participant.refresh_from_db()
    return participant.step == "trials" and participant.position == 3


@pytest.mark.django_db
def test_decline_and_instructions_still_work_for_pairwise(client, stimulus_set):
    study = pair_study(stimulus_set)
    from tests.study.helpers import enter

    url = enter(client, study, "d1")
    assert post_step(client, url, "consent", choice="decline").status_code == 303
    assert Participant.objects.get(study=study).step == "declined"


@pytest.mark.slow
@pytest.mark.django_db
def test_pairwise_study_end_to_end_with_bots(stimulus_set, tmp_path):
    """load_study -> run_bots -> export_ratings -> python -m analysis report, and the truth is recovered."""
    import yaml
    from scipy import stats

    from analysis.__main__ import main
    from study.bots import AnswerModel, latent_truth

    effects = {"baseline": 0.0, "artistic-0.5": 0.15, "artistic-1.0": 0.3, "symbolic": 0.05}
    bots = {
        "effects": {"artistry": effects},
        "stimulus_sd": 0.04,
        "noise_sd": 0.1,
        "decline_rate": 0.0,
        "inattentive_rate": 0.05,
    }
    spec = {
        "slug": "pairs-e2e",
        "title": "Which is art?",
        "status": "live",
        "task": "pairwise",
        "pairs": {"design": "adaptive", "per_participant": 12},
        "stimulus_sets": [stimulus_set.name],
        "dimensions": ["artistry"],
        "consent": "Agree?",
        "instructions": "Choose.",
        "completion_code": "PAIRS1",
        "practice_trials": 1,
        "attention_checks": 1,
        "bots": bots,
    }
    path = tmp_path / "pairs.yaml"
    path.write_text(yaml.safe_dump(spec))
    call_command("load_study", str(path))
    call_command("run_bots", "pairs-e2e", "--participants", "40", "--seed", "1")
    assert Participant.objects.filter(study__slug="pairs-e2e", step="done").count() == 40
    out = tmp_path / "comparisons.csv"
    call_command("export_ratings", "pairs-e2e", "--out", str(out))
    frame = pd.read_csv(out)
    assert len(frame) == 40 * 14 and set(frame["pair_source"]) == {"adaptive", "practice", "attention"}
    report = tmp_path / "report"
    assert main(["report", str(out), "--out", str(report)]) == 0
    scale = pd.read_csv(report / "scale.csv")
    assert list(scale.columns[:6]) == ["dimension", "stimulus", "condition", "score", "ci_low", "ci_high"]
    assert len(scale) == 24 and (scale["ci_low"] <= scale["score"]).all() and (scale["score"] <= scale["ci_high"]).all()
    model = AnswerModel.from_mapping(bots)
    truth = [
        latent_truth(model, public_id=s, condition=c, dimension="artistry")
        for s, c in zip(scale["stimulus"], scale["condition"], strict=True)
    ]
    assert stats.spearmanr(truth, scale["score"]).statistic > 0.7
    effects_table = pd.read_csv(report / "condition_effects.csv").set_index("condition")
    assert list(effects_table.columns[:4]) == ["dimension", "estimate", "ci_low", "ci_high"]
    assert effects_table.loc["artistic-1.0", "ci_low"] > 0
    assert effects_table.loc["artistic-1.0", "estimate"] > effects_table.loc["artistic-0.5", "estimate"]
    html = (report / "report.html").read_text()
    assert "Pairwise: artistry" in html and "Design comparison" in html and "Comparison graph" in html
    assert (report / "design_comparison.csv").is_file()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pairs": {"design": "greedy"}}, "pairs.design: must be one of random, balanced, adaptive"),
        ({"pairs": {"per_participant": 0}}, "pairs.per_participant: must be between 1 and 2000"),
        ({"pairs": {"within_fraction": 1.5}}, "pairs.within_fraction: must be a number between 0 and 1"),
        ({"pairs": {"allow_tie": "yes"}}, "pairs.allow_tie: must be true or false"),
        ({"pairs": {"size": 3}}, "pairs.size: unknown key"),
        ({"task": "ranking"}, "task: must be one of rating, pairwise"),
        ({"task": "rating", "pairs": {"design": "random"}}, "pairs: only applies to `task: pairwise`"),
    ],
)
def test_spec_rejects_bad_pairwise_keys_with_the_key_first(change, message):
    from study.spec import StudySpecError, study_spec_parse

    data = {"slug": "p", "title": "P", "task": "pairwise"} | change
    with pytest.raises(StudySpecError) as info:
        study_spec_parse(data)
    assert str(info.value).startswith(message)


def test_spec_reads_pairwise_settings_and_pairwise_prompts():
    from study.spec import study_spec_parse

    spec = study_spec_parse(
        {
            "slug": "p",
            "title": "P",
            "task": "pairwise",
            "dimensions": ["artistry"],
            "pairs": {"design": "adaptive", "per_participant": 15, "within_fraction": 0.25, "allow_tie": True},
        }
    )
    assert (spec.pairs.design, spec.pairs.per_participant, spec.pairs.within_fraction, spec.pairs.allow_tie) == (
        "adaptive",
        15,
        0.25,
        True,
    )
    assert spec.dimensions[0].prompt == "Which image looks more like a work of art?"
    assert study_spec_parse({"slug": "r", "title": "R"}).task == "rating"


@pytest.mark.django_db
def test_load_study_sets_the_pairwise_fields_and_freezes_them(stimulus_set, tmp_path, client):
    import yaml

    from config.errors import SetupError
    from study.models import Study

    spec = {
        "slug": "pairs-load",
        "title": "P",
        "status": "live",
        "task": "pairwise",
        "consent": "ok",
        "instructions": "ok",
        "completion_code": "X",
        "stimulus_sets": [stimulus_set.name],
        "pairs": {"design": "random", "per_participant": 4},
    }
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(spec))
    call_command("load_study", str(path))
    study = Study.objects.get(slug="pairs-load")
    assert (study.task, study.pair_design, study.pairs_per_participant) == ("pairwise", "random", 4)
    to_trials(client, study)
    path.write_text(yaml.safe_dump(spec | {"pairs": {"design": "adaptive", "per_participant": 4}}))
    with pytest.raises(SetupError, match="cannot change the design"):
        call_command("load_study", str(path))


@pytest.mark.django_db
def test_reload_resumes_the_same_pair_and_preloads_the_next(client, stimulus_set):
    study = pair_study(stimulus_set, practice_trials=0, attention_checks=0)
    url, participant = to_trials(client, study)
    first, second = participant.trials.get(index=0), participant.trials.get(index=1)
    pages = [client.get(url).content.decode() for _ in range(2)]
    for page in pages:
        reader = read_page(page)
        assert reader.pair_images == {"left": first.stimulus.image.url, "right": first.stimulus_right.image.url}
        assert f'rel="preload" as="image" href="{second.stimulus.image.url}"' in page
        assert f'rel="preload" as="image" href="{second.stimulus_right.image.url}"' in page
        assert "<script>" not in page and "style=" not in page  # nothing inline (CSP)
    first.refresh_from_db()
    assert first.shown_count == 2 and first.shown_at is not None


@pytest.mark.django_db
def test_admin_shows_pairwise_fields_pairs_and_choices(client, stimulus_set):
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.urls import reverse

    study = pair_study(stimulus_set, practice_trials=0, attention_checks=0)
    url, participant = to_trials(client, study)
    answer_pair(client, url, participant, side="left")
    admin = Client()
    admin.force_login(get_user_model().objects.create_superuser("admin", "a@example.org", "pw-for-tests-only"))
    page = admin.get(reverse("admin:study_participant_change", args=[participant.pk])).content.decode()
    assert " vs " in page and ("artistry=left" in page or "symbolism=left" in page)
    assert admin.get(reverse("admin:study_choice_changelist")).status_code == 200
    page = admin.get(reverse("admin:study_study_change", args=[study.pk])).content.decode()
    assert "answered comparisons per stimulus" in page
    assert 'name="pair_design"' not in page  # frozen once real participants consented


@pytest.mark.django_db
def test_pilot_answers_do_not_move_the_shared_posterior(client, stimulus_set):
    study = pair_study(stimulus_set, pair_design="adaptive", practice_trials=0, attention_checks=0)
    response = client.get(f"/s/{study.slug}/preview/{study.pilot_token}/")
    url = response["Location"]
    post_step(client, url, "consent", choice="agree")
    post_step(client, url, "instructions")
    pilot = Participant.objects.get(study=study)
    assert pilot.is_pilot
    for _ in range(3):
        assert answer_pair(client, url, pilot).status_code == 303
    assert Choice.objects.filter(trial__participant=pilot).count() == 3
    assert all(p.n_updates == 0 for p in PairPosterior.objects.filter(study=study))
