"""Which language a participant's pages are in: one of the study's `languages`, never one it did not choose.

Django's LocaleMiddleware would pick any language the site has; a study translated only into English must not
show a German participant half-German pages (the researcher's texts are in the study's own languages). Order:
a `?lang=` on the entry link (remembered in a cookie), then the browser's Accept-Language, then the study's
first language.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import BadRequest, SuspiciousOperation
from django.http import HttpRequest
from django.utils import translation
from django.utils.translation.trans_real import parse_accept_lang_header

from study.models import Study

LANGUAGE_PARAMETER = "lang"


def language_cookie_name(slug: str) -> str:
    return f"study-{slug}-lang"


def study_languages(*, study: Study) -> list[str]:
    known = {code for code, _name in settings.LANGUAGES}
    chosen = [code for code in (study.languages or []) if code in known]
    return chosen or [settings.LANGUAGE_CODE]


def _match(code: str, allowed: list[str]) -> str | None:
    code = code.lower()
    for candidate in allowed:
        if code == candidate or code.split("-")[0] == candidate:
            return candidate
    return None


def participant_language(*, request: HttpRequest, study: Study) -> str:
    allowed = study_languages(study=study)
    for explicit in (request.GET.get(LANGUAGE_PARAMETER), request.COOKIES.get(language_cookie_name(study.slug))):
        if explicit and (match := _match(explicit, allowed)):
            return match
    for code, _quality in parse_accept_lang_header(request.headers.get("Accept-Language", "")):
        if code != "*" and (match := _match(code, allowed)):
            return match
    return allowed[0]


_LANGUAGE_CACHE: dict[str, tuple[float, Study | None]] = {}
LANGUAGE_CACHE_SECONDS = 30.0
_STUDY_PATH = re.compile(r"^/s/([-a-zA-Z0-9_]+)/")
# What parsing a malformed query string raises (the request guard refuses such requests with an error page).
_UNPARSABLE = (BadRequest, SuspiciousOperation, UnicodeError, ValueError)


def _study_for_language(slug: str) -> Study | None:
    """The study's slug and languages, cached per process for a few seconds: every participant request needs
    them before the view runs, and a language change may take that long to reach every worker process."""
    import time

    now = time.monotonic()
    hit = _LANGUAGE_CACHE.get(slug)
    if hit is not None and now - hit[0] < LANGUAGE_CACHE_SECONDS:
        return hit[1]
    if len(_LANGUAGE_CACHE) > 1000:
        _LANGUAGE_CACHE.clear()
    study = Study.objects.filter(slug=slug).only("slug", "languages").first()
    _LANGUAGE_CACHE[slug] = (now, study)
    return study


def request_language(*, request: HttpRequest, use_database: bool = True) -> str:
    """The language of a page answered outside a participant view (error pages): the study's choice for this
    participant under /s/<slug>/, else the browser's among the site's languages.

    The request guard answers before LocaleMiddleware runs and Django's error handlers after the view's language
    was reset, so neither may rely on the active language. `use_database=False` (the 500 page, possibly during a
    database outage) reads only what the language cache already holds, however old.
    """
    chosen = getattr(request, "study_language", None)
    if chosen:
        return chosen
    match = _STUDY_PATH.match(request.path)
    if match:
        slug = match.group(1)
        cached = _LANGUAGE_CACHE.get(slug)
        study = _study_for_language(slug) if use_database else (cached[1] if cached else None)
        if study is not None:
            try:
                return participant_language(request=request, study=study)
            except _UNPARSABLE:
                return study_languages(study=study)[0]
    return translation.get_language_from_request(request)


def in_study_language(view):
    """Render a participant view in the study's language for this participant (see participant_language)."""
    from functools import wraps

    @wraps(view)
    def wrapper(request: HttpRequest, slug: str, *args, **kwargs):
        study = _study_for_language(slug)
        language = settings.LANGUAGE_CODE if study is None else participant_language(request=request, study=study)
        with translation.override(language):
            request.LANGUAGE_CODE = language
            request.study_language = language  # for error pages rendered after the view (request_language)
            response = view(request, slug, *args, **kwargs)
        response.headers["Content-Language"] = language
        if study is not None and request.GET.get(LANGUAGE_PARAMETER):
            # Remember a language chosen on the entry link for the participant's later pages.
            response.set_cookie(
                language_cookie_name(slug),
                language,
                max_age=60 * 60 * 24 * 30,
                samesite="Lax",
                secure=request.is_secure(),
                httponly=True,
                path=f"/s/{slug}/",
            )
        return response

    return wrapper
