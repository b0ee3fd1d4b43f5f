"""Running a study from the admin in real headless Chromium: the live monitor while bots take part, finding a
participant by Prolific ID, a withdrawal, and a participant screened out after failed attention checks."""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from study import operations
from study.bots import AnswerModel, HttpTransport, run_bot, stimulus_truth
from study.models import AuditEntry, Participant, Rating, StudyReport
from tests.study.factories import make_study
from tests.study.test_browser import CHROMIUM, _launch
from tests.study.test_export import run_bots

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
PASSWORD = "pw-for-tests-only"


@pytest.fixture
def chromium(monkeypatch):
    if not CHROMIUM.exists():
        from tests.conftest import skip_or_fail

        skip_or_fail(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; Django's ORM calls below are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = _launch(playwright)
        try:
            yield browser
        finally:
            browser.close()


def _staff_page(browser, live_server):
    get_user_model().objects.create_superuser("researcher", "r@example.org", PASSWORD)
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "researcher")
    page.fill("#id_password", PASSWORD)
    with page.expect_navigation():
        page.click("input[type=submit]")
    return page


def _field(page, name: str) -> str:
    return page.locator(f"#study-monitor [data-field={name}]").first.inner_text().strip()


def test_monitor_updates_in_place_while_bots_run(chromium, live_server, stimulus_set, settings, tmp_path):
    settings.STUDY_MONITOR_POLL_MS = 300
    study = make_study(stimulus_set=stimulus_set, trials_per_participant=4, practice_trials=1, attention_checks=1)
    page = _staff_page(chromium, live_server)
    violations = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    response = page.goto(f"{live_server.url}/admin/study/study/{study.pk}/monitor/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.wait_for_function("() => document.getElementById('study-monitor').dataset.updates > 0")
    assert _field(page, "completed") == "0" and _field(page, "entered") == "0"
    assert page.locator(".chart-empty").text_content() == "no completions yet"
    page.evaluate("window.notReloaded = true")

    truth = stimulus_truth(study=study)
    model = AnswerModel(decline_rate=0.0, inattentive_rate=0.0, rt_median_ms=50)
    n_bots = 6

    def bots() -> None:  # over HTTP, so this thread needs no database connection
        for i in range(n_bots):
            time.sleep(0.4)  # a trickle of arrivals, so the page can be seen part-way
            run_bot(
                transport=HttpTransport(live_server.url),
                slug=study.slug,
                pid=f"live-{i}",
                model=model,
                truth=truth,
                rng=random.Random(i),
            )

    worker = threading.Thread(target=bots)
    worker.start()
    try:
        # Part-way: the page shows some but not yet all completions, without reloading.
        page.wait_for_function(
            "n => { const v = Number(document.querySelector('#study-monitor [data-field=completed]').textContent);"
            " return v > 0 && v < n; }",
            arg=n_bots,
            timeout=60_000,
        )
    finally:
        worker.join(timeout=120)
    page.wait_for_function(
        "n => document.querySelector('#study-monitor [data-field=completed]').textContent === String(n)",
        arg=n_bots,
        timeout=30_000,
    )
    assert page.evaluate("window.notReloaded") is True
    assert _field(page, "entered") == str(n_bots) and _field(page, "in_progress") == "0"
    assert int(_field(page, "ratings")) == Rating.objects.filter(trial__participant__study=study).count()
    assert _field(page, "completion_rate") == "100.0 %"
    assert page.locator("svg .chart-bar").count() >= 1
    assert page.locator("[data-role=conditions] tr").count() == 4 * 2  # conditions x dimensions
    assert page.locator("[data-role=least-covered] tr").count() == 5
    shots = Path(os.environ.get("STUDY_SCREENSHOT_DIR", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "monitor.png"), full_page=True)

    # The status buttons: pause from the monitor, the page says so, the audit log has it.
    with page.expect_navigation():
        page.click("[data-status-button=paused]")
    assert _field(page, "status") == "paused"
    assert AuditEntry.objects.filter(action="status", actor_label="researcher").exists()
    assert violations == []


def test_search_by_prolific_id_and_withdraw_in_the_admin(chromium, live_server, stimulus_set, tmp_path):
    study = make_study(stimulus_set=stimulus_set, trials_per_participant=4, practice_trials=1, attention_checks=1)
    run_bots(study, 3)  # PROLIFIC_PID bot0..bot2
    report = StudyReport.objects.create(study=study, status=StudyReport.Status.DONE)
    target = operations.participant_find(study=study, recruitment_id="bot1")
    assert Rating.objects.filter(trial__participant=target).exists()
    page = _staff_page(chromium, live_server)

    page.goto(f"{live_server.url}/admin/study/participant/?study__id__exact={study.pk}")
    page.fill("#searchbar", "bot1")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1 and target.pseudonym[:12] in rows.first.inner_text()

    page.goto(f"{live_server.url}/admin/study/study/{study.pk}/participant-operations/")
    page.fill("#withdraw-form [name=recruitment_id]", "bot1")
    page.check("#withdraw-form [name=confirm]")
    with page.expect_navigation():
        page.click("#withdraw-form button[type=submit]")
    shots = Path(os.environ.get("STUDY_SCREENSHOT_DIR", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "participant-operations.png"), full_page=True)
    message = page.locator(".messagelist").inner_text()
    assert "Withdrawn: erased" in message and "1 report(s)" in message

    assert not Rating.objects.filter(trial__participant=target).exists()
    assert Rating.objects.filter(trial__participant__study=study).exists()  # the others stay
    entry = AuditEntry.objects.get(action="withdrawal")
    assert entry.actor_label == "researcher" and entry.rows > 0
    report.refresh_from_db()
    assert report.stale_since is not None

    page.goto(f"{live_server.url}/admin/study/auditentry/")
    assert "Withdrawal (erasure)" in page.locator("#result_list").inner_text()
    page.goto(f"{live_server.url}/admin/study/studyreport/")
    assert page.locator("#result_list td.field-stale_since").first.inner_text().strip() != "-"  # a date
    # The Prolific ID now finds nobody.
    page.goto(f"{live_server.url}/admin/study/participant/?q=bot1")
    assert page.locator("#result_list tbody tr").count() == 0


def test_participant_failing_attention_checks_is_screened_out(chromium, live_server, stimulus_set):
    study = make_study(
        stimulus_set=stimulus_set,
        trials_per_participant=4,
        practice_trials=0,
        attention_checks=2,
        screen_out_after=2,
        screen_out_code="SCR33N",
        screen_out_url_template="https://app.prolific.com/submissions/complete?cc={code}",
    )
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/s/{study.slug}/?PROLIFIC_PID=careless1")
    with page.expect_navigation():
        page.get_by_role("button", name="I agree and want to take part").click()
    with page.expect_navigation():
        page.get_by_role("button", name="Start").click()
    answered = 0
    while page.get_attribute("main", "data-step") == "trials":
        page.wait_for_selector("#stimulus.shown")
        instruction = page.locator(".instruction")
        instructed = instruction.get_attribute("data-instructed-value") if instruction.count() else None
        wrong = "1" if instructed != "1" else "2"
        for _ in range(page.locator("fieldset.dimension").count()):
            page.keyboard.press(wrong if instructed else "4")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        answered += 1
    assert page.get_attribute("main", "data-step") == "screened_out"
    participant = Participant.objects.get(study=study)
    last_check = participant.trials.filter(kind="attention").order_by("index").last()
    assert answered == last_check.index + 1  # it ended at the second failed check
    assert page.locator("[data-screen-out-code]").inner_text().strip() == "SCR33N"
    href = page.locator("a[data-screen-out-url]").get_attribute("href")
    assert href == "https://app.prolific.com/submissions/complete?cc=SCR33N"
    page.reload()  # still the screen-out page: the outcome is final
    assert page.get_attribute("main", "data-step") == "screened_out"
    participant.refresh_from_db()
    assert participant.step == "screened_out" and participant.attention_failures == 2
