"""The pairwise trial page in real headless Chromium: mouse clicks, arrow and digit keys, phone layout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from study.models import Choice, Participant
from tests.conftest import skip_or_fail
from tests.study.factories import make_study
from tests.study.test_browser import CHROMIUM, _launch

ONE_DIMENSION = [{"name": "artistry", "prompt": "Which image looks more like a work of art?"}]


def _start(page, url: str) -> None:
    page.goto(url)
    with page.expect_navigation():
        page.get_by_role("button", name="I agree and want to take part").click()
    with page.expect_navigation():
        page.get_by_role("button", name="Start").click()


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_pairs_answered_by_mouse_and_keys_in_chromium(live_server, stimulus_set, monkeypatch):
    if not CHROMIUM.exists():
        skip_or_fail(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    study = make_study(
        stimulus_set=stimulus_set,
        dimensions=ONE_DIMENSION,
        task="pairwise",
        pair_design="balanced",
        pairs_per_participant=5,
        practice_trials=0,
        attention_checks=1,
        pair_allow_tie=True,
    )
    # What each screen is answered with, in order: a click on the image, then keys.
    actions = [
        ("click", "#stimulus-left", "left"),
        ("key", "ArrowRight", "right"),
        ("key", "1", "left"),
        ("key", "2", "right"),
        ("key", "0", "tie"),
        ("click", "#stimulus-right", "right"),
    ]
    expected = []
    with sync_playwright() as playwright:
        browser = _launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            _start(page, f"{live_server.url}/s/{study.slug}/?PROLIFIC_PID=pairs1")
            assert page.get_attribute("main", "data-step") == "trials"
            if os.environ.get("STUDY_SCREENSHOT_DIR"):
                page.screenshot(path=str(Path(os.environ["STUDY_SCREENSHOT_DIR"]) / "pair-desktop.png"), full_page=True)
            boxes = page.locator("#stimulus-left").bounding_box(), page.locator("#stimulus-right").bounding_box()
            assert boxes[1]["x"] > boxes[0]["x"] + boxes[0]["width"] / 2  # side by side on a desktop
            step = 0
            while page.get_attribute("main", "data-step") == "trials":
                page.wait_for_selector("#pair.shown")
                page.wait_for_timeout(30)  # so the client RT is > 0
                instruction = page.locator(".instruction")
                if instruction.count():
                    side = instruction.get_attribute("data-instructed-side")
                    with page.expect_navigation():
                        page.keyboard.press("ArrowLeft" if side == "left" else "ArrowRight")
                    expected.append(side)
                    continue
                how, target, side = actions[step]
                with page.expect_navigation():
                    if how == "click":
                        page.click(target)
                    else:
                        page.keyboard.press(target)
                expected.append(side)
                step += 1
            assert page.get_attribute("main", "data-step") == "questionnaire"

            phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
            mobile = phone.new_page()
            _start(mobile, f"{live_server.url}/s/{study.slug}/?PROLIFIC_PID=phone1")
            mobile.wait_for_selector("#pair.shown")
            top = mobile.locator("#stimulus-left").bounding_box()
            bottom = mobile.locator("#stimulus-right").bounding_box()
            assert bottom["y"] >= top["y"] + top["height"]  # stacked on a phone
            if os.environ.get("STUDY_SCREENSHOT_DIR"):
                mobile.screenshot(path=str(Path(os.environ["STUDY_SCREENSHOT_DIR"]) / "pair-phone.png"), full_page=True)
            with mobile.expect_navigation():
                mobile.locator("#stimulus-right").tap()
        finally:
            browser.close()

    participant = Participant.objects.get(study=study, pseudonym__isnull=False, step="questionnaire")
    choices = list(Choice.objects.filter(trial__participant=participant).order_by("trial__index"))
    assert [c.side for c in choices] == expected
    assert len(choices) == 6
    assert all(c.rt_ms is not None and c.rt_ms > 0 for c in choices)
    assert participant.attention_failures == 0
    phone_participant = Participant.objects.get(study=study, position=1)
    assert Choice.objects.get(trial__participant=phone_participant).side == "right"
