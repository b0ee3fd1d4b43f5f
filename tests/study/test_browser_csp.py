"""The admin works under the Content-Security-Policy in real Chromium: no blocked script, style or image."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from tests.conftest import skip_or_fail
from tests.study.factories import make_study
from tests.study.test_browser import CHROMIUM, _launch, _watch_csp


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_admin_pages_raise_no_csp_violation_in_chromium(live_server, stimulus_set, monkeypatch):
    if not CHROMIUM.exists():
        skip_or_fail(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    study = make_study(stimulus_set=stimulus_set)
    get_user_model().objects.create_superuser("admin", "a@example.org", "browser-test-password-1")
    stimulus = stimulus_set.stimuli.first()
    with sync_playwright() as playwright:
        browser = _launch(playwright)
        try:
            page = browser.new_page()
            violations = _watch_csp(page)
            first = page.goto(f"{live_server.url}/admin/login/")
            assert "default-src 'self'" in first.headers["content-security-policy"]
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", "browser-test-password-1")
            with page.expect_navigation():
                page.click("input[type=submit]")
            for path in (
                "/admin/",
                "/admin/study/study/",
                f"/admin/study/study/{study.pk}/change/",
                f"/admin/generation/stimulusset/{stimulus_set.pk}/change/",
                f"/admin/generation/stimulusset/{stimulus_set.pk}/contact-sheet/",
                f"/admin/generation/stimulus/{stimulus.pk}/change/",
            ):
                response = page.goto(f"{live_server.url}{path}")
                assert response.status == 200, path
                page.wait_for_load_state("load")
            # The project's admin stylesheet applies (it replaced inline style attributes).
            assert page.locator(".pretty-json").first.evaluate("e => getComputedStyle(e).whiteSpace") == "pre-wrap"
            assert violations == [], violations
        finally:
            browser.close()
