"""End to end in real headless Chromium: entry link, consent, keyboard ratings, questionnaire, completion code."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from study.models import Participant, Rating
from tests.conftest import skip_or_fail
from tests.study.factories import make_study

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _launch(playwright):
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)


def _watch_csp(page) -> list[str]:
    """Chromium reports every script, style or image the Content-Security-Policy blocked on the console."""
    violations: list[str] = []
    page.on(
        "console",
        lambda message: violations.append(message.text) if "Content Security Policy" in message.text else None,
    )
    return violations


def _answer_trials_with_the_keyboard(page, screenshot: Path | None = None) -> int:
    answered = 0
    while page.get_attribute("main", "data-step") == "trials":
        page.wait_for_selector("#stimulus.shown")
        page.wait_for_timeout(30)  # a human-ish pause, so the client RT is > 0
        instruction = page.locator(".instruction")
        instructed = instruction.get_attribute("data-instructed-value") if instruction.count() else None
        for i in range(page.locator("fieldset.dimension").count()):
            page.keyboard.press(instructed or str(3 + i))
        if screenshot is not None and answered == 1:
            page.screenshot(path=str(screenshot), full_page=True)
        with page.expect_navigation():
            page.keyboard.press("Enter")
        answered += 1
    return answered


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_participant_completes_the_study_in_chromium(live_server, stimulus_set, tmp_path, monkeypatch):
    if not CHROMIUM.exists():
        skip_or_fail(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; Django's ORM calls below are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    study = make_study(stimulus_set=stimulus_set, trials_per_participant=4, practice_trials=1, attention_checks=1)
    shots = Path(os.environ.get("STUDY_SCREENSHOT_DIR", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = _launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            violations = _watch_csp(page)
            first = page.goto(f"{live_server.url}/s/{study.slug}/?PROLIFIC_PID=chromium1&STUDY_ID=s1&SESSION_ID=x1")
            assert "script-src 'self'" in first.headers["content-security-policy"]
            assert page.get_attribute("main", "data-step") == "consent"
            page.screenshot(path=str(shots / "consent-desktop.png"), full_page=True)
            with page.expect_navigation():
                page.get_by_role("button", name="I agree and want to take part").click()
            assert page.get_attribute("main", "data-step") == "instructions"
            with page.expect_navigation():
                page.get_by_role("button", name="Start").click()
            # Reloading mid-study lands on the same trial.
            page.reload()
            assert page.get_attribute("main", "data-step") == "trials"
            # The 7-point scale lays out in one row of 7 from the stylesheet alone (no inline style under the CSP).
            columns = page.locator(".likert").first.evaluate("e => getComputedStyle(e).gridTemplateColumns")
            assert len(columns.split()) == 7, columns
            answered = _answer_trials_with_the_keyboard(page, screenshot=shots / "trial-desktop.png")
            assert answered == 1 + 4 + 1
            assert page.get_attribute("main", "data-step") == "questionnaire"
            page.check("input[name=age_band][value='25-34']")
            page.check("input[name=gender][value='na']")
            page.check("input[name=art_training][value='some']")
            page.check("input[name=art_expertise][value='4']")
            page.fill("textarea[name=comment]", "Fine.")
            page.screenshot(path=str(shots / "questionnaire-desktop.png"), full_page=True)
            with page.expect_navigation():
                page.get_by_role("button", name="Submit").click()
            assert page.get_attribute("main", "data-step") == "done"
            assert page.locator(".code").inner_text().strip() == "C0MPL3TE"
            page.screenshot(path=str(shots / "done-desktop.png"), full_page=True)
            href = page.locator("a[data-completion-url]").get_attribute("href")
            assert href == "https://app.prolific.com/submissions/complete?cc=C0MPL3TE"

            phone = browser.new_context(
                viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True
            )
            mobile = phone.new_page()
            mobile.goto(f"{live_server.url}/s/{study.slug}/?PROLIFIC_PID=phone1")
            with mobile.expect_navigation():
                mobile.get_by_role("button", name="I agree and want to take part").tap()
            with mobile.expect_navigation():
                mobile.get_by_role("button", name="Start").tap()
            mobile.wait_for_selector("#stimulus.shown")
            mobile.locator("fieldset.dimension").first.locator("label.point").nth(4).tap()
            mobile.screenshot(path=str(shots / "trial-phone.png"), full_page=True)
            assert violations == [], violations
        finally:
            browser.close()

    participant = Participant.objects.get(study=study, step="done")
    ratings = Rating.objects.filter(trial__participant=participant)
    assert ratings.count() == (1 + 4) * 2 + 1
    assert all(r.rt_ms is not None and r.rt_ms > 0 for r in ratings)
    assert participant.attention_failures == 0
    assert participant.questionnaire.art_expertise == 4
    assert {r.value for r in ratings.filter(trial__kind="rating", dimension__name="artistry")} == {3.0}
    assert (shots / "trial-desktop.png").stat().st_size > 0 and (shots / "trial-phone.png").stat().st_size > 0


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_slider_answers_with_arrow_keys_and_enter(live_server, stimulus_set, monkeypatch):
    if not CHROMIUM.exists():
        skip_or_fail(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    dims = [{"name": "liking", "prompt": "How much do you like it?", "kind": "slider", "points": 7}]
    study = make_study(
        stimulus_set=stimulus_set, dimensions=dims, trials_per_participant=3, practice_trials=0, attention_checks=1
    )
    with sync_playwright() as playwright:
        browser = _launch(playwright)
        try:
            page = browser.new_page()
            page.goto(f"{live_server.url}/s/{study.slug}/?pid=slider1")
            with page.expect_navigation():
                page.get_by_role("button", name="I agree and want to take part").click()
            with page.expect_navigation():
                page.get_by_role("button", name="Start").click()
            while page.get_attribute("main", "data-step") == "trials":
                page.wait_for_selector("#stimulus.shown")
                assert page.locator("#next-button").is_disabled()  # untouched slider: no answer yet
                instruction = page.locator(".instruction")
                if instruction.count():
                    value = instruction.get_attribute("data-instructed-value")
                    page.keyboard.press("Home" if value == "0" else "End")
                else:
                    for _ in range(3):
                        page.keyboard.press("ArrowRight")
                with page.expect_navigation():
                    page.keyboard.press("Enter")
            assert page.get_attribute("main", "data-step") == "questionnaire"
        finally:
            browser.close()
    participant = Participant.objects.get(study=study)
    rated = Rating.objects.filter(trial__participant=participant, trial__kind="rating")
    assert sorted(r.value for r in rated) == [53.0, 53.0, 53.0]
    assert participant.attention_failures == 0
