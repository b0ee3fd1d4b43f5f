"""handler500: a calm page instead of "Server Error (500)"; 503 with Retry-After when the database is down.

Rendered without a request context: context processors would read the session and the user, i.e. the
database that may be the thing that is down.
"""

from __future__ import annotations

import logging
import sys

from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.template import loader
from django.utils import translation
from django.utils.translation import gettext as _

from study.languages import request_language

logger = logging.getLogger("config.errors")

RETRY_AFTER_S = 60


def is_outage(exc: BaseException | None) -> bool:
    """Connection-level database failures: the service is unavailable, not broken."""
    if isinstance(exc, (OperationalError, InterfaceError)):
        return True
    return isinstance(exc, DatabaseError) and "connection" in str(exc).lower()


def server_error(request: HttpRequest, *args, **kwargs) -> HttpResponse:
    exc = sys.exc_info()[1]
    outage = is_outage(exc)
    # The participant's study language from memory only: the database may be what failed.
    language = request_language(request=request, use_database=False)
    with translation.override(language):
        try:
            body = loader.get_template("500.html").render({"outage": outage})
        except Exception:
            logger.exception("the 500 page could not be rendered")
            title = _("Please reload in a minute")
            saved = _("The answers you have given so far are saved.")
            body = f"<!doctype html><title>{title}</title><h1>{title}</h1><p>{saved}</p>"
    response = HttpResponse(body, status=503 if outage else 500, content_type="text/html; charset=utf-8")
    response["Content-Language"] = language
    if outage:
        response["Retry-After"] = str(RETRY_AFTER_S)
    response["Cache-Control"] = "no-store"
    return response
