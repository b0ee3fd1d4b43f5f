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
    try:
        body = loader.get_template("500.html").render({"outage": outage})
    except Exception:
        logger.exception("the 500 page could not be rendered")
        body = (
            "<!doctype html><title>Please reload in a minute</title><h1>Please reload in a minute</h1>"
            "<p>The answers you have given so far are saved.</p>"
        )
    response = HttpResponse(body, status=503 if outage else 500, content_type="text/html; charset=utf-8")
    if outage:
        response["Retry-After"] = str(RETRY_AFTER_S)
    response["Cache-Control"] = "no-store"
    return response
