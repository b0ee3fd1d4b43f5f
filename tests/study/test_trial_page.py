"""The trial page fits one screen at laptop and phone sizes, keyboard focus stays sane, and counts agree."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from study.models import Participant
from tests.conftest import skip_or_fail
from tests.study.factories import make_study
from tests.study.test_browser import CHROMIUM, _launch

VIEWPORTS = [(1366, 768), (1280, 720), (390, 844)]


def _inside(box: dict, width: int, height: int) -> bool:
    return (
        box["x"] >= 0
        and box["y"] >= 0
        and box["x"] + box["width"] <= width + 0.5
        and (box["y"] + box["height"] <= height + 0.5)
    )


def _displayed_image_height(page) -> float:
    """The height the image is painted at (object-fit: contain inside its box)."""
    return page.evaluate("""() => {
        const img = document.getElementById('stimulus');
        const r = img.getBoundingClientRect();
        const scale = Math.min(r.width / img.naturalWidth, r.height / img.naturalHeight);
        return img.naturalHeight * scale;
    }""")


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_trial_page_fits_the_viewport_without_scrolling(live_server, stimulus_set, tmp_path, monkeypatch):
    if not CHROMIUM.exists():
        skip_or_fail(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    study = make_study(
        stimulus_set=stimulus_set,
        trials_per_participant=4,
        practice_trials=1,
        attention_checks=1,
        consent_text="You will rate {images} images.",
    )
    shots = Path(os.environ.get("STUDY_SCREENSHOT_DIR", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = _launch(playwright)
        try:
            for width, height in VIEWPORTS:
                phone = width < 600
                context = browser.new_context(
                    viewport={"width": width, "height": height}, is_mobile=phone, has_touch=phone
                )
                page = context.new_page()
                page.goto(f"{live_server.url}/s/{study.slug}/?PROLIFIC_PID=fit{width}x{height}")
                consent_says = page.locator(".prose").inner_text()
                assert "You will rate 5 images." in consent_says  # 4 rated + 1 attention check
                assert page.locator(".counts").get_attribute("data-images") == "5"
                with page.expect_navigation():
                    page.get_by_role("button", name="I agree and want to take part").click()
                with page.expect_navigation():
                    page.get_by_role("button", name="Start").click()
                screens = 0
                while page.get_attribute("main", "data-step") == "trials":
                    page.wait_for_selector("#stimulus.shown")
                    label = page.locator("#progress-label")
                    if "Image" in label.inner_text():
                        assert label.get_attribute("data-total") == "5"
                    n_questions = page.locator("fieldset.dimension").count()
                    questions = [f"fieldset.dimension >> nth={i}" for i in range(n_questions)]
                    for selector in ["#stimulus", "#next-button", *questions]:
                        box = page.locator(selector).bounding_box()
                        assert box is not None and _inside(box, width, height), (width, height, selector, box)
                    assert page.evaluate("document.scrollingElement.scrollHeight") <= height + 1, (width, height)
                    shown = _displayed_image_height(page)
                    if not phone:
                        assert shown >= 0.5 * height, (width, height, shown)
                    else:
                        assert shown >= 0.9 * (width - 40), (width, height, shown)  # full width on a phone
                    if screens == 1:
                        page.screenshot(path=str(shots / f"trial-{width}x{height}.png"))
                    instruction = page.locator(".instruction")
                    instructed = instruction.get_attribute("data-instructed-value") if instruction.count() else None
                    for i in range(page.locator("fieldset.dimension").count()):
                        page.keyboard.press(instructed or str(3 + i))
                        # Focus never lands on a hidden input after a keyboard answer.
                        focused = page.evaluate("""() => {
                            const el = document.activeElement;
                            const r = el.getBoundingClientRect();
                            return {type: el.type || el.tagName, w: r.width, h: r.height, id: el.id};
                        }""")
                        assert focused["type"] != "hidden" and focused["w"] > 0 and focused["h"] > 0, focused
                    assert page.evaluate("document.activeElement.id") == "next-button"
                    with page.expect_navigation():
                        page.keyboard.press("Enter")
                    screens += 1
                assert screens == 1 + 5
                context.close()
        finally:
            browser.close()
    assert Participant.objects.filter(study=study, step=Participant.Step.QUESTIONNAIRE).count() == len(VIEWPORTS)


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_back_button_answer_gets_a_neutral_note(live_server, stimulus_set, monkeypatch):
    if not CHROMIUM.exists():
        skip_or_fail(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    study = make_study(stimulus_set=stimulus_set, trials_per_participant=3, practice_trials=0, attention_checks=0)
    with sync_playwright() as playwright:
        browser = _launch(playwright)
        try:
            page = browser.new_page()
            page.goto(f"{live_server.url}/s/{study.slug}/?pid=back1")
            with page.expect_navigation():
                page.get_by_role("button", name="I agree and want to take part").click()
            with page.expect_navigation():
                page.get_by_role("button", name="Start").click()
            page.wait_for_selector("#stimulus.shown")
            first_form = page.content()
            page.keyboard.press("2")
            page.keyboard.press("2")
            with page.expect_navigation():
                page.keyboard.press("Enter")
            assert page.locator("[data-note=answer-kept]").count() == 0
            # Resubmit the first trial's form, as the back button would, with other answers.
            page.set_content(first_form.replace('action="/', f'action="{live_server.url}/'))
            page.check("fieldset.dimension >> nth=0 >> input[value='6']", force=True)
            page.check("fieldset.dimension >> nth=1 >> input[value='6']", force=True)
            with page.expect_navigation():
                page.locator("#trial-form").evaluate("form => form.submit()")
            note = page.locator("[data-note=answer-kept]")
            assert note.count() == 1 and "already saved" in note.inner_text()
            assert page.locator("#progress-label").get_attribute("data-number") == "2"
        finally:
            browser.close()
    participant = Participant.objects.get(study=study)
    assert set(participant.trials.get(index=0).ratings.values_list("value", flat=True)) == {2.0}
