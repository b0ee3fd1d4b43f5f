"""Stimulus sets end to end: render_set (eager and through a real broker), resume, export, import, admin."""

from __future__ import annotations

import csv
import hashlib
import io

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from PIL import Image

from analysis.schema import DESCRIPTOR_COLUMNS
from config.errors import SetupError
from generation import pipeline
from generation.models import RenderJob, Stimulus, StimulusSet
from generation.spec import SpecError, load_spec
from tests.generation.conftest import write_spec

pytestmark = pytest.mark.django_db


def render(spec, *args, **kwargs) -> str:
    out = io.StringIO()
    call_command("render_set", str(spec), *args, stdout=out, **kwargs)
    return out.getvalue()


def test_render_set_records_stimuli_and_writes_manifest(tmp_path, tiny_model, settings) -> None:
    spec = write_spec(tmp_path / "spec.yaml", tiny_model)
    output = render(spec, "--out", str(tmp_path / "out"))
    assert "30 to render" in output
    stimulus_set = StimulusSet.objects.get(name="test-set")
    assert stimulus_set.untrained and stimulus_set.weights_sha256
    stimuli = list(stimulus_set.stimuli.all())
    assert len(stimuli) == 30
    assert {s.condition for s in stimuli} == {"baseline", "artistic-0.5", "artistic-1.0", "symbolic"}
    assert sorted({(s.draw) for s in stimuli if s.condition == "artistic-1.0"}) == [0, 1]
    assert {s.class_name for s in stimuli} == {"goldfish", "golden retriever", "volcano"}
    for s in stimuli:
        data = (settings.MEDIA_ROOT / s.image.name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == s.sha256
        assert (s.width, s.height) == (64, 64)
        # The names the export and the analysis read (jsonb on PostgreSQL keeps no key order).
        assert sorted(s.descriptors) == sorted(DESCRIPTOR_COLUMNS)
        assert s.image.name == f"stimuli/{s.public_id}.png"
        assert s.condition not in s.image.name and "artistic" not in s.public_id
        assert (
            s.recipe_id
            == hashlib.sha256(
                __import__("json").dumps(s.recipe, sort_keys=True, separators=(",", ":")).encode()
            ).hexdigest()
        )
    assert {s.epsilon for s in stimuli if s.condition == "baseline"} == {0.0}
    rows = list(csv.DictReader((tmp_path / "out" / "manifest.csv").open()))
    assert len(rows) == 30
    assert {"stimulus_id", "condition", "class_index", "seed", "epsilon", "draw", "path", "sha256"} <= set(rows[0])
    for row in rows:
        assert hashlib.sha256((tmp_path / "out" / row["path"]).read_bytes()).hexdigest() == row["sha256"]
    assert RenderJob.objects.filter(status=RenderJob.Status.DONE).count() == RenderJob.objects.count() > 1

    again = render(spec, "--out", str(tmp_path / "out"))
    assert "30 already rendered, 0 to render" in again
    assert Stimulus.objects.count() == 30


def test_adding_seeds_renders_only_the_new_ones(tmp_path, tiny_model) -> None:
    render(write_spec(tmp_path / "a.yaml", tiny_model, seeds=1))
    first = dict(Stimulus.objects.values_list("recipe_id", "sha256"))
    output = render(write_spec(tmp_path / "b.yaml", tiny_model, seeds=2))
    assert f"{len(first)} already rendered" in output
    assert Stimulus.objects.count() == 2 * len(first)
    assert all(Stimulus.objects.get(recipe_id=r).sha256 == sha for r, sha in first.items())


def test_interrupted_render_resumes_without_duplicates(tmp_path, tiny_model, monkeypatch, settings) -> None:
    spec = write_spec(tmp_path / "spec.yaml", tiny_model)
    original = pipeline.encode_image
    calls = {"n": 0}

    def crash_after_some(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 15:
            raise KeyboardInterrupt  # like Ctrl-C or a killed worker: nothing gets to clean up
        return original(*args, **kwargs)

    monkeypatch.setattr(pipeline, "encode_image", crash_after_some)
    with pytest.raises(KeyboardInterrupt):
        render(spec)
    partial = Stimulus.objects.count()
    assert 0 < partial < 30
    assert RenderJob.objects.filter(status=RenderJob.Status.RUNNING).exists()
    monkeypatch.setattr(pipeline, "encode_image", original)

    output = render(spec)
    assert f"{partial} already rendered" in output
    assert Stimulus.objects.count() == 30
    assert Stimulus.objects.values("recipe_id").distinct().count() == 30
    files = sorted(p.name for p in (settings.MEDIA_ROOT / "stimuli").iterdir())
    assert files == sorted(f"{s.public_id}.png" for s in Stimulus.objects.all())  # no orphans, no temp files
    assert not RenderJob.objects.filter(status=RenderJob.Status.RUNNING).exists()


def test_failed_job_is_recorded_and_retried_from_the_admin(tmp_path, tiny_model, monkeypatch, admin_client) -> None:
    spec = write_spec(tmp_path / "spec.yaml", tiny_model, conditions=[{"name": "baseline"}])

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pipeline, "encode_image", broken)
    with pytest.raises(CommandError, match=r"1 of 1 render jobs failed .*disk full"):
        render(spec)
    job = RenderJob.objects.get()
    assert job.status == RenderJob.Status.FAILED and "disk full" in job.error
    monkeypatch.undo()
    response = admin_client.post(
        "/admin/generation/renderjob/", {"action": "retry_failed", "_selected_action": [job.pk]}
    )
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == RenderJob.Status.DONE and job.done == job.total == 6 and job.attempts == 2
    assert Stimulus.objects.count() == 6


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"clases": [1]}, "clases"),
        ({"classes": ["crane"]}, "classes[0]"),
        ({"classes": ["no such thing"]}, "classes[0]"),
        ({"truncation": 1.5}, "truncation"),
        ({"seeds": 0}, "seeds"),
        (
            {"conditions": [{"name": "x", "perturbation": {"kind": "multiplicative", "epsilon": "big"}}]},
            "conditions[0].perturbation.epsilon",
        ),
        (
            {"conditions": [{"name": "x", "perturbation": {"kind": "semantic", "mode": "vibes", "epsilon": 1}}]},
            "conditions[0].perturbation.mode",
        ),
        (
            {"conditions": [{"name": "x", "perturbation": {"kind": "multiplicative", "epsilon": 1, "targest": "all"}}]},
            "conditions[0].perturbation.targest",
        ),
        (
            {"conditions": [{"name": "a"}, {"name": "a", "perturbation": {"kind": "multiplicative", "epsilon": 1}}]},
            "conditions[1].name",
        ),
    ],
)
def test_invalid_spec_fails_before_any_work_naming_the_key(tmp_path, tiny_model, overrides, key) -> None:
    spec = write_spec(tmp_path / "spec.yaml", tiny_model, **overrides)
    with pytest.raises(SpecError) as error:
        render(spec)
    assert str(error.value).startswith(f"{key}:")
    assert not StimulusSet.objects.exists()


def test_model_dependent_spec_errors_come_before_any_work(tmp_path, tiny_model) -> None:
    bad_target = [{"name": "x", "perturbation": {"kind": "multiplicative", "epsilon": 1, "targets": "block:99"}}]
    with pytest.raises(SpecError, match=r"^conditions\[0\]\.perturbation\.targets: target block:99"):
        render(write_spec(tmp_path / "a.yaml", tiny_model, conditions=bad_target))
    with pytest.raises(SpecError, match=r"^classes\[0\]: 1000 is outside"):
        render(write_spec(tmp_path / "b.yaml", tiny_model, classes=[1000]))
    assert not StimulusSet.objects.exists()


def test_other_weights_under_the_same_set_name_are_refused(tmp_path, tiny_model) -> None:
    render(write_spec(tmp_path / "a.yaml", tiny_model, seeds=1, conditions=[{"name": "baseline"}]))
    other = tmp_path / "other"
    call_command("biggan_weights", "make-random", str(other), "--preset", "tiny", "--seed", "9", stdout=io.StringIO())
    with pytest.raises(SetupError, match="rendered with other weights"):
        render(write_spec(tmp_path / "b.yaml", other, seeds=1, conditions=[{"name": "baseline"}]))


def test_dcgan_set_renders_without_classes(tmp_path) -> None:
    from tests.generation.test_rendering import make_dcgan_folder

    folder = make_dcgan_folder(tmp_path / "dcgan")
    spec = write_spec(
        tmp_path / "spec.yaml",
        folder,
        classes=None,
        truncation=None,
        seeds=3,
        conditions=[
            {"name": "baseline"},
            {"name": "artistic", "perturbation": {"kind": "multiplicative", "epsilon": 0.5, "targets": "convs"}},
        ],
    )
    data = yaml.safe_load(spec.read_text())
    data.pop("classes")
    data.pop("truncation")
    spec.write_text(yaml.safe_dump(data))
    render(spec)
    assert Stimulus.objects.count() == 6
    assert set(Stimulus.objects.values_list("class_index", flat=True)) == {None}


def test_render_demo_is_idempotent_and_labels_untrained(settings) -> None:
    out = io.StringIO()
    call_command("render_demo", stdout=out)
    assert "untrained random weights — demo only" in out.getvalue()
    stimulus_set = StimulusSet.objects.get(name="example-stimuli")
    assert stimulus_set.untrained and stimulus_set.stimuli.count() == 36
    assert set(stimulus_set.stimuli.values_list("condition", flat=True)) == {
        "baseline",
        "artistic-0.5",
        "artistic-1.0",
        "symbolic",
    }
    assert (settings.WEIGHTS_DIR / "tiny" / "pytorch_model.bin").is_file()
    again = io.StringIO()
    call_command("render_demo", stdout=again)
    assert "36 already rendered, 0 to render" in again.getvalue()
    assert load_spec(settings.BASE_DIR / "examples" / "stimuli.yaml").image_count == 36


def test_import_stimuli(tmp_path, settings) -> None:
    folder = tmp_path / "art"
    folder.mkdir()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(folder / "a.png")
    Image.new("RGB", (50, 50), (10, 200, 10)).save(folder / "b.jpg")
    Image.new("L", (20, 20), 90).save(folder / "c.png")
    (tmp_path / "labels.csv").write_text(
        "filename,condition,artist,class_index\na.png,human-art,Kahlo,\nb.jpg,style-transfer,,207\n"
        "c.png,human-art,Klee,\n"
    )
    out = io.StringIO()
    call_command("import_stimuli", str(folder), "--labels", str(tmp_path / "labels.csv"), "--set", "art", stdout=out)
    assert "imported 3 images" in out.getvalue()
    stimulus_set = StimulusSet.objects.get(name="art")
    assert stimulus_set.source == StimulusSet.Source.IMPORTED
    a = stimulus_set.stimuli.get(labels__artist="Kahlo")
    assert (a.condition, a.width, a.height) == ("human-art", 40, 30)
    assert a.image.name == f"stimuli/{a.public_id}.png"
    # Re-encoded (test_blinding.py has the details), the same pixels; the original is known to the database.
    with Image.open(settings.MEDIA_ROOT / a.image.name) as stored, Image.open(folder / "a.png") as original:
        assert stored.tobytes() == original.convert("RGB").tobytes()
    assert a.provenance["original_sha256"] == hashlib.sha256((folder / "a.png").read_bytes()).hexdigest()
    assert stimulus_set.stimuli.get(condition="style-transfer").image.name.endswith(".png")  # was b.jpg
    assert a.descriptors["saturation"] > 0.9
    assert stimulus_set.stimuli.get(condition="style-transfer").class_index == 207
    call_command("import_stimuli", str(folder), "--labels", str(tmp_path / "labels.csv"), "--set", "art", stdout=out)
    assert stimulus_set.stimuli.count() == 3


def test_import_checks_everything_first(tmp_path) -> None:
    (tmp_path / "labels.csv").write_text("filename,condition\nmissing.png,human-art\n")
    with pytest.raises(SetupError, match="no file"):
        call_command("import_stimuli", str(tmp_path), "--labels", str(tmp_path / "labels.csv"), "--set", "art")
    (tmp_path / "labels.csv").write_text("file,condition\nx.png,human-art\n")
    with pytest.raises(SetupError, match="lacks column"):
        call_command("import_stimuli", str(tmp_path), "--labels", str(tmp_path / "labels.csv"), "--set", "art")
    assert not StimulusSet.objects.exists()


def test_admin_pages_show_thumbnails_and_contact_sheet(tmp_path, tiny_model, admin_client: Client) -> None:
    render(write_spec(tmp_path / "spec.yaml", tiny_model))
    stimulus_set = StimulusSet.objects.get()
    sheet = admin_client.get(f"/admin/generation/stimulusset/{stimulus_set.pk}/contact-sheet/")
    assert sheet.status_code == 200
    html = sheet.content.decode()
    assert html.count("<img") == 30 and "untrained random weights" in html
    assert "golden retriever" in html and "artistic-1.0" in html
    listing = admin_client.get("/admin/generation/stimulus/?condition=symbolic&class_index=207")
    assert listing.status_code == 200 and listing.content.decode().count('<img src="/media/stimuli/') == 2
    stimulus = stimulus_set.stimuli.first()
    detail = admin_client.get(f"/admin/generation/stimulus/{stimulus.pk}/change/")
    assert detail.status_code == 200 and "colorfulness" in detail.content.decode()
    assert admin_client.get("/admin/generation/stimulusset/").status_code == 200
    assert admin_client.get("/admin/generation/renderjob/").status_code == 200


@pytest.mark.broker
def test_render_set_through_the_broker(tmp_path, tiny_model, celery_worker_process, settings) -> None:
    spec = write_spec(
        tmp_path / "spec.yaml",
        tiny_model,
        conditions=[
            {"name": "baseline"},
            {"name": "artistic", "perturbation": {"kind": "multiplicative", "epsilon": 0.5, "draws": 2}},
        ],
    )
    output = render(spec, "--out", str(tmp_path / "out"))
    assert "on Celery workers" in output
    stimuli = Stimulus.objects.all()
    assert stimuli.count() == 18
    assert {s.provenance["pid"] for s in stimuli} == {celery_worker_process.pid}
    jobs = RenderJob.objects.all()
    assert all(j.status == RenderJob.Status.DONE and j.celery_task_id and j.done == j.total for j in jobs)
    assert len(list((tmp_path / "out").glob("*.png"))) == 18
