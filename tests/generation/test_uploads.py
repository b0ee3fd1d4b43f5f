"""Stimulus sets from the admin: an uploaded design file rendered by a task, a ZIP of images imported."""

from __future__ import annotations

import io
import zipfile

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils.html import escape
from PIL import Image

from config.background import wait_idle
from generation.models import RenderJob, StimulusSet
from generation.spec import SpecError, load_spec
from tests.generation.conftest import write_spec

pytestmark = pytest.mark.django_db(transaction=True)
ADD_URL = "/admin/generation/stimulusset/add/"


def small_spec(tmp_path, tiny_model, **overrides):
    fields = {
        "name": "uploaded",
        "classes": [1],
        "seeds": 2,
        "conditions": [
            {"name": "baseline"},
            {
                "name": "artistic",
                "perturbation": {"kind": "multiplicative", "epsilon": 0.5, "targets": "all", "seed": 1},
            },
        ],
    }
    fields.update(overrides)
    return write_spec(tmp_path / f"{fields['name']}.yaml", tiny_model, **fields)


def upload_spec(admin_client, path):
    return admin_client.post(ADD_URL, {"spec": SimpleUploadedFile(path.name, path.read_bytes())})


def png(colour) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (24, 24), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def zip_of(files: dict[str, bytes]) -> SimpleUploadedFile:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return SimpleUploadedFile("images.zip", buffer.getvalue(), content_type="application/zip")


def test_uploaded_design_file_is_rendered_by_a_task(tmp_path, tiny_model, admin_client) -> None:
    response = upload_spec(admin_client, small_spec(tmp_path, tiny_model))
    stimulus_set = StimulusSet.objects.get(name="uploaded")
    assert response.status_code == 302 and response["Location"].endswith(f"/{stimulus_set.pk}/change/")
    assert wait_idle(timeout=300)
    stimulus_set.refresh_from_db()
    assert stimulus_set.stimuli.count() == 4 and stimulus_set.untrained and stimulus_set.weights_sha256
    state = admin_client.get(f"/admin/generation/stimulusset/{stimulus_set.pk}/build-state/").json()
    assert state == {"state": "done", "done": 4, "total": 4, "error": ""}
    page = admin_client.get(response["Location"]).content.decode()
    assert 'data-build-state="done"' in page and "4 of 4 images" in page


def test_invalid_design_file_is_refused_with_the_render_set_message(tmp_path, tiny_model, admin_client) -> None:
    path = small_spec(
        tmp_path, tiny_model, conditions=[{"name": "x", "perturbation": {"kind": "multiplicative", "epsilon": "big"}}]
    )
    with pytest.raises(SpecError) as error:
        load_spec(path)
    response = upload_spec(admin_client, path)
    assert response.status_code == 400
    assert escape(str(error.value)) in response.content.decode()  # conditions[0].perturbation.epsilon: ...
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    assert "is not valid YAML" in upload_spec(admin_client, broken).content.decode()
    assert not StimulusSet.objects.exists()


def test_model_dependent_errors_show_on_the_set(tmp_path, tiny_model, admin_client) -> None:
    upload_spec(admin_client, small_spec(tmp_path, tiny_model, classes=[1000]))
    assert wait_idle(timeout=120)
    stimulus_set = StimulusSet.objects.get(name="uploaded")
    state = admin_client.get(f"/admin/generation/stimulusset/{stimulus_set.pk}/build-state/").json()
    assert state["state"] == "failed" and state["error"].startswith("classes[0]: 1000 is outside")
    assert not stimulus_set.stimuli.exists()
    # Fixed and uploaded again under the same name: rendered.
    upload_spec(admin_client, small_spec(tmp_path, tiny_model, classes=[1]))
    assert wait_idle(timeout=300)
    assert stimulus_set.stimuli.count() == 4


def test_zip_of_images_with_labels_is_imported(admin_client) -> None:
    files = {
        "art/a.png": png((200, 10, 10)),
        "art/b.png": png((10, 200, 10)),
        "art/c.png": png((10, 10, 200)),
        "art/labels.csv": b"filename,condition,artist\na.png,human,Klee\nb.png,human,\nc.png,transfer,\n",
        "__MACOSX/art/._a.png": b"junk",
    }
    response = admin_client.post(ADD_URL, {"archive": zip_of(files), "name": "art"})
    assert response.status_code == 302, response.content.decode()[:2000]
    stimulus_set = StimulusSet.objects.get(name="art")
    assert stimulus_set.source == StimulusSet.Source.IMPORTED and stimulus_set.stimuli.count() == 3
    assert stimulus_set.stimuli.get(labels__artist="Klee").condition == "human"


def test_bad_zips_get_clear_messages(admin_client) -> None:
    cases = [
        ({"../evil.png": png((0, 0, 0)), "labels.csv": b"filename,condition\n../evil.png,x\n"}, "unsafe path"),
        ({"a.png": png((0, 0, 0))}, "no labels CSV"),
        ({"labels.csv": b"filename,condition\nmissing.png,x\n"}, "images.zip:missing.png"),
    ]
    for files, expected in cases:
        response = admin_client.post(ADD_URL, {"archive": zip_of(files), "name": "bad"})
        assert response.status_code == 400 and expected in response.content.decode(), expected
    not_a_zip = SimpleUploadedFile("images.zip", b"plain text")
    assert "is not a ZIP file" in admin_client.post(ADD_URL, {"archive": not_a_zip, "name": "bad"}).content.decode()
    assert admin_client.post(ADD_URL, {}).status_code == 400
    assert not StimulusSet.objects.exists()


def test_render_jobs_are_not_added_by_hand(admin_client) -> None:
    # "Add render job" used to save a job without a set (IntegrityError, a 500); jobs come from a set's design.
    assert admin_client.get("/admin/generation/renderjob/add/").status_code == 403
    assert "renderjob/add/" not in admin_client.get("/admin/generation/renderjob/").content.decode()
    assert not RenderJob.objects.exists()


def test_spec_yaml_round_trip_matches_the_file(tmp_path, tiny_model) -> None:
    path = small_spec(tmp_path, tiny_model)
    assert yaml.safe_load(path.read_text())["name"] == "uploaded"


@pytest.mark.browser
@pytest.mark.slow
def test_upload_a_design_file_and_a_zip_in_chromium(live_server, tmp_path, tiny_model, monkeypatch) -> None:
    from django.contrib.auth import get_user_model

    from tests.conftest import skip_or_fail
    from tests.study.test_browser import CHROMIUM, _launch

    if not CHROMIUM.exists():
        skip_or_fail(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    get_user_model().objects.create_superuser("staff", "s@example.org", "pw-for-tests-only")
    spec = small_spec(tmp_path, tiny_model, name="from-browser")
    archive = tmp_path / "images.zip"
    archive.write_bytes(
        zip_of(
            {
                "a.png": png((200, 10, 10)),
                "b.png": png((10, 200, 10)),
                "labels.csv": b"filename,condition\na.png,one\nb.png,two\n",
            }
        ).read()
    )
    with sync_playwright() as playwright:
        browser = _launch(playwright)
        try:
            page = browser.new_page()
            page.goto(f"{live_server.url}/admin/login/?next=/admin/generation/stimulusset/add/")
            page.fill("input[name=username]", "staff")
            page.fill("input[name=password]", "pw-for-tests-only")
            with page.expect_navigation():
                page.click("input[type=submit]")
            page.set_input_files("input[name=spec]", str(spec))
            with page.expect_navigation():
                page.click("#stimulusset-upload input[type=submit]")
            # The set page follows the render without a reload (its script polls the build state).
            page.wait_for_selector("[data-build-state=done]", timeout=240_000)
            assert "4 of 4 images" in page.locator("[data-build-text]").inner_text()
            page.goto(f"{live_server.url}/admin/generation/stimulusset/add/")
            page.set_input_files("input[name=archive]", str(archive))
            page.fill("input[name=name]", "zip-from-browser")
            with page.expect_navigation():
                page.click("#stimulusset-upload input[type=submit]")
            assert "imported 2 images" in page.content()
        finally:
            browser.close()
    assert StimulusSet.objects.get(name="from-browser").stimuli.count() == 4
    assert StimulusSet.objects.get(name="zip-from-browser").stimuli.count() == 2


@pytest.mark.broker
def test_uploaded_design_file_renders_on_a_celery_worker(
    tmp_path, tiny_model, celery_worker_process, admin_client
) -> None:
    import time

    upload_spec(admin_client, small_spec(tmp_path, tiny_model, name="via-broker"))
    stimulus_set = StimulusSet.objects.get(name="via-broker")
    url = f"/admin/generation/stimulusset/{stimulus_set.pk}/build-state/"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and admin_client.get(url).json()["state"] not in {"done", "failed"}:
        time.sleep(0.5)
    assert admin_client.get(url).json() == {"state": "done", "done": 4, "total": 4, "error": ""}
    assert {s.provenance["pid"] for s in stimulus_set.stimuli.all()} == {celery_worker_process.pid}


def test_a_dead_broker_gives_one_clear_line(tmp_path, tiny_model, admin_client, settings) -> None:
    from config.celery import app

    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    app.conf.task_always_eager = False  # the isolated_dirs fixture restores it
    response = upload_spec(admin_client, small_spec(tmp_path, tiny_model))
    assert response.status_code == 400 and "cannot reach the Celery broker" in response.content.decode()
    assert not StimulusSet.objects.exists()
