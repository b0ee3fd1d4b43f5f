"""`load_study`: studies as code; invalid files fail with one line naming the bad key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.test import Client

from config.errors import SetupError
from study.models import Study
from study.spec import StudySpecError, study_spec_parse
from tests.conftest import ROOT, subprocess_env
from tests.study.factories import make_stimulus_set
from tests.study.helpers import to_trials

EXAMPLE = ROOT / "examples" / "study.yaml"


def example_data(set_name: str) -> dict:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["stimulus_sets"] = [set_name]
    return data


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.django_db
def test_example_file_loads_live_with_default_dimensions(tmp_path):
    stimulus_set = make_stimulus_set()
    call_command("load_study", str(write(tmp_path, example_data(stimulus_set.name))))
    study = Study.objects.get(slug="example")
    assert study.status == "live"
    assert [d.name for d in study.dimensions.all()] == ["artistry", "symbolism"]
    assert study.dimensions.get(name="artistry").prompt == "How much does this image look like a work of art?"
    assert study.trials_per_participant >= 12
    assert study.completion_url == "https://app.prolific.com/submissions/complete?cc=C1EXAMPLE"
    assert study.anonymous_entry  # the demo lets people in without a recruitment id; real studies leave it out


@pytest.mark.django_db
def test_reloading_updates_by_slug(tmp_path):
    stimulus_set = make_stimulus_set()
    data = example_data(stimulus_set.name)
    call_command("load_study", str(write(tmp_path, data)))
    data["title"] = "New title"
    data["dimensions"].append(
        {
            "name": "liking",
            "prompt": "How much do you like it?",
            "scale": {"kind": "slider", "low": "Not at all", "high": "Very much"},
        }
    )
    call_command("load_study", str(write(tmp_path, data)))
    study = Study.objects.get()
    assert study.title == "New title"
    assert study.dimensions.get(name="liking").kind == "slider"


@pytest.mark.django_db
def test_design_changes_are_refused_after_participants_started(tmp_path):
    stimulus_set = make_stimulus_set()
    data = example_data(stimulus_set.name)
    call_command("load_study", str(write(tmp_path, data)))
    to_trials(Client(), Study.objects.get())
    data["trials_per_participant"] = 16
    with pytest.raises(StudySpecError, match=r"^trials_per_participant: cannot change the design"):
        call_command("load_study", str(write(tmp_path, data)))
    data["trials_per_participant"] = 12
    data["title"] = "Texts may change"
    call_command("load_study", str(write(tmp_path, data)))
    assert Study.objects.get().title == "Texts may change"


@pytest.mark.django_db
def test_publishing_an_unready_study_says_what_is_missing(tmp_path):
    stimulus_set = make_stimulus_set()
    data = example_data(stimulus_set.name)
    data.update(consent="", completion_code="", trials_per_participant=100)
    with pytest.raises(SetupError) as error:
        call_command("load_study", str(write(tmp_path, data)))
    message = str(error.value)
    assert "consent text is empty" in message and "no completion code" in message and "only 24 stimuli" in message
    assert not Study.objects.exists()
    data["status"] = "draft"
    call_command("load_study", str(write(tmp_path, data)))
    assert Study.objects.get().status == "draft"


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"colour": "blue"}, "colour"),
        ({"slug": "Not A Slug"}, "slug"),
        ({"slug": None}, "slug"),
        ({"trials_per_participant": "many"}, "trials_per_participant"),
        ({"trials_per_participant": 0}, "trials_per_participant"),
        ({"practice_trials": -1}, "practice_trials"),
        ({"status": "open"}, "status"),
        ({"layout": "grid"}, "layout"),
        ({"completion_url": "ftp://x"}, "completion_url"),
        ({"dimensions": []}, "dimensions"),
        ({"dimensions": [{"name": "beauty"}]}, "dimensions[0].prompt"),
        ({"dimensions": [{"name": "artistry", "scale": {"points": 20}}]}, "dimensions[0].scale.points"),
        ({"dimensions": [{"name": "artistry", "scale": {"kind": "stars"}}]}, "dimensions[0].scale.kind"),
        ({"dimensions": [{"name": "artistry", "colour": 1}]}, "dimensions[0].colour"),
        ({"dimensions": ["artistry", "artistry"]}, "dimensions"),
        ({"max_participants": True}, "max_participants"),
        ({"bots": [1]}, "bots"),
        ({"anonymous_entry": "yes"}, "anonymous_entry"),
    ],
)
def test_invalid_spec_names_the_bad_key(change, key):
    data = example_data("whatever")
    data.update(change)
    with pytest.raises(StudySpecError) as error:
        study_spec_parse(data)
    assert str(error.value).startswith(f"{key}:")


@pytest.mark.django_db
def test_missing_stimulus_set_and_condition_are_named(tmp_path):
    with pytest.raises(StudySpecError, match=r"^stimulus_sets: no stimulus set named 'nope'"):
        call_command("load_study", str(write(tmp_path, example_data("nope"))))
    stimulus_set = make_stimulus_set(conditions=["baseline", "symbolic"])
    with pytest.raises(StudySpecError, match=r"^conditions: 'artistic-0.5', 'artistic-1.0' not in"):
        call_command("load_study", str(write(tmp_path, example_data(stimulus_set.name))))


def test_command_line_error_is_one_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("slug: x\ntitle: t\ntrials_per_participant: lots\n")
    result = subprocess.run(
        [sys.executable, "manage.py", "load_study", str(path)],
        cwd=ROOT,
        env=subprocess_env(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "error: trials_per_participant: must be a whole number, not 'lots'"


@pytest.mark.django_db
def test_publish_flag_and_study_links(tmp_path, capsys):
    stimulus_set = make_stimulus_set()
    data = example_data(stimulus_set.name)
    data["status"] = "draft"
    call_command("load_study", str(write(tmp_path, data)), "--publish")
    study = Study.objects.get()
    assert study.status == "live" and study.published_at is not None
    capsys.readouterr()
    call_command("study_links", "example")
    out = capsys.readouterr().out
    assert "http://127.0.0.1:8000/s/example/?PROLIFIC_PID=demo1" in out
    assert f"http://127.0.0.1:8000/s/example/preview/{study.pilot_token}/" in out
    assert f"http://127.0.0.1:8000/admin/study/study/{study.pk}/change/" in out
