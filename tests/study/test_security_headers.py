"""Content-Security-Policy on participant and admin pages, no inline code for it to block, admin login throttling,
and the timed-out return link of released participants."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from study.models import Participant
from study.services import participants_release
from tests.study.helpers import answer_current, enter, post_step, to_trials

pytestmark = pytest.mark.django_db

INLINE_CODE = [
    re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I),  # a script element without src
    re.compile(r"<style\b", re.I),
    re.compile(r"\sstyle\s*=", re.I),
    re.compile(r"\son[a-z]+\s*=", re.I),  # onclick=, onload=, ...
    re.compile(r"javascript:", re.I),
]


def _policy(response) -> dict[str, str]:
    header = response["Content-Security-Policy"]
    return dict(part.strip().split(" ", 1) for part in header.split(";") if " " in part.strip())


def _assert_strict(response, where: str) -> None:
    policy = _policy(response)
    for directive in ("default-src", "script-src", "style-src", "img-src"):
        assert policy[directive] == "'self'", (where, directive, policy)
    assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'"


def test_participant_pages_carry_the_csp_and_need_no_inline_code(study):
    client = Client()
    url = enter(client, study, "csp1")
    pages = {"consent": client.get(url)}
    post_step(client, url, "consent", choice="agree")
    pages["instructions"] = client.get(url)
    post_step(client, url, "instructions")
    pages["trial"] = client.get(url)
    participant = Participant.objects.get(public_id=url.rstrip("/").rsplit("/", 1)[-1])
    while participant.step == Participant.Step.TRIALS:
        answer_current(client, url, participant)
        participant.refresh_from_db()
    pages["questionnaire"] = client.get(url)
    pages["error"] = Client().get("/s/no-such-study/")
    for name, response in pages.items():
        _assert_strict(response, name)
        html = response.content.decode()
        for pattern in INLINE_CODE:
            assert not pattern.search(html), (name, pattern.pattern, pattern.search(html))


def test_admin_pages_carry_the_csp(admin_client, study):
    for path in (
        "/admin/login/",
        "/admin/",
        "/admin/study/study/",
        f"/admin/study/study/{study.pk}/change/",
        "/admin/generation/stimulusset/",
        "/admin/generation/stimulus/",
    ):
        client = Client() if path == "/admin/login/" else admin_client
        response = client.get(path)
        assert response.status_code == 200, path
        _assert_strict(response, path)


def test_admin_login_is_throttled_per_user_name_and_address(settings):
    settings.AXES_FAILURE_LIMIT = 3
    get_user_model().objects.create_superuser("admin", "a@example.org", "the-right-password-123")
    attacker = Client(REMOTE_ADDR="203.0.113.7")
    statuses = [
        attacker.post("/admin/login/", {"username": "admin", "password": "guess"}).status_code for _ in range(3)
    ]
    assert statuses == [200, 200, 429]  # the form again with an error, until the limit locks the pair
    locked = attacker.post("/admin/login/", {"username": "admin", "password": "the-right-password-123"})
    assert locked.status_code == 429
    assert b"Too many failed logins" in locked.content
    assert "_auth_user_id" not in attacker.session
    # The real admin, from another address, still gets in.
    owner = Client(REMOTE_ADDR="198.51.100.20")
    response = owner.post(
        "/admin/login/?next=/admin/", {"username": "admin", "password": "the-right-password-123", "next": "/admin/"}
    )
    assert response.status_code == 302 and response["Location"] == "/admin/"


def test_released_participant_gets_the_timed_out_link_not_the_no_consent_one(study):
    study.timed_out_code = "T1MEDOUT"
    study.save()
    client = Client()
    url, participant = to_trials(client, study, "slow1")
    participants_release(participants=Participant.objects.filter(pk=participant.pk))
    html = client.get(url).content.decode()
    assert 'data-timed-out-code="T1MEDOUT"' in html
    assert 'href="https://app.prolific.com/submissions/complete?cc=T1MEDOUT"' in html
    assert "NOCONSENT" not in html
    # An explicit link wins over the completion template.
    study.timed_out_url = "https://example.org/back?code={code}"
    study.save()
    assert 'href="https://example.org/back?code=T1MEDOUT"' in client.get(url).content.decode()


def _through(middleware_class, request, response):
    return middleware_class(lambda r: response).process_response(request, response)


def test_the_memoized_csp_header_is_django_csps_and_follows_setting_changes(rf, settings):
    """config.content_security builds the settings-only policy once; the header must stay django-csp's own."""
    from csp.decorators import csp_replace
    from csp.middleware import CSPMiddleware
    from django.http import HttpResponse

    from config.content_security import MemoizedCSPMiddleware

    def pair(response_factory):
        request = rf.get("/s/x/")
        ours, theirs = response_factory(), response_factory()
        MemoizedCSPMiddleware(lambda r: ours).process_request(request)
        return (
            _through(MemoizedCSPMiddleware, request, ours).headers.get("Content-Security-Policy"),
            _through(CSPMiddleware, rf.get("/s/x/"), theirs).headers.get("Content-Security-Policy"),
        )

    plain = pair(HttpResponse)
    assert plain[0] == plain[1] and "default-src 'self'" in plain[0]
    # A per-view policy goes through django-csp unchanged.
    replaced = pair(lambda: csp_replace({"img-src": ["'self'", "data:"]})(lambda r: HttpResponse())(rf.get("/")))
    assert replaced[0] == replaced[1] and "data:" in replaced[0]
    # A changed setting is a new policy, not the memoized one.
    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": {"default-src": ["'none'"]}}
    changed = pair(HttpResponse)
    assert changed[0] == changed[1] == "default-src 'none'"


def test_never_cache_writes_djangos_headers(rf):
    """study.views.never_cache sets the two headers directly; they must be exactly what Django's decorator sets."""
    from django.http import HttpResponse
    from django.utils.http import parse_http_date
    from django.views.decorators.cache import never_cache as djangos

    from study.views import never_cache as ours

    mine = ours(lambda r: HttpResponse())(rf.get("/"))
    theirs = djangos(lambda r: HttpResponse())(rf.get("/"))
    assert mine["Cache-Control"] == theirs["Cache-Control"]
    assert abs(parse_http_date(mine["Expires"]) - parse_http_date(theirs["Expires"])) <= 1
    # A view that set its own Cache-Control gets Django's merge.
    merged = ours(lambda r: HttpResponse(headers={"Cache-Control": "no-transform"}))(rf.get("/"))
    assert "no-transform" in merged["Cache-Control"] and "no-store" in merged["Cache-Control"]
