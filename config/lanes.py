"""Two middleware lanes: participant pages pass only through the middleware they use.

Participants never have a Django session, a user, flash messages or an admin login, and their pages choose their
language from the study (study.languages), so SessionMiddleware, LocaleMiddleware, AuthenticationMiddleware,
MessageMiddleware, django-axes and whitenoise have nothing to do on /s/... but cost every request (about a tenth
of a participant request's server CPU in bench/study.py's profile). Everything else (the request guard, security
headers, CSRF, clickjacking and CSP headers) runs on both lanes, in the order settings.MIDDLEWARE gives.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler

from study.request_guard import PARTICIPANT_PREFIX  # every participant URL starts here (study/urls.py)


class ParticipantHandler(WSGIHandler):
    """Django's WSGI handler with settings.PARTICIPANT_MIDDLEWARE instead of settings.MIDDLEWARE."""

    def load_middleware(self, is_async: bool = False) -> None:
        # BaseHandler reads settings.MIDDLEWARE; this runs once, at start-up, before any request thread exists.
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.PARTICIPANT_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full


def lanes(*, default: Callable, participant: Callable) -> Callable:
    """A WSGI application sending participant URLs to `participant` and everything else to `default`."""

    def application(environ: dict, start_response: Callable):
        if environ.get("PATH_INFO", "").startswith(PARTICIPANT_PREFIX):
            return participant(environ, start_response)
        return default(environ, start_response)

    return application
