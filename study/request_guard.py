"""Refuse requests no honest browser sends before anything parses them: a calm 4xx page, never a 500.

Django decodes the query string and form body lazily, the first time something reads `request.GET`/`request.POST`
(usually the CSRF middleware), so a body declared `charset=utf-16`, undecodable bytes or a NUL that PostgreSQL
cannot store used to surface as exceptions deep inside other middleware or as a database `DataError`. This
middleware runs first, parses once (Django caches the result for CSRF and the views) and answers every such
request itself.
"""

from __future__ import annotations

import codecs
import logging
import re
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import BadRequest, RequestDataTooBig, SuspiciousOperation
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.http.multipartparser import MultiPartParserError

from study.error_pages import error_page

logger = logging.getLogger(__name__)

PARTICIPANT_PREFIX = "/s/"
FOREIGN_CHARSET = "study.foreign_charset"  # environ key set by wsgi_charset_guard
ACCEPTED_CHARSETS = {"utf-8", "ascii"}  # codec names after codecs.lookup(): utf8, UTF-8, us-ascii all map here
FORM_TYPES = {"application/x-www-form-urlencoded", "multipart/form-data"}


class RejectedRequest(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


# NUL cannot be stored in PostgreSQL text; no other C0 control belongs in a URL or a form field name.
_CONTROL_CHARACTER = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _has_control_characters(text: str) -> bool:
    return _CONTROL_CHARACTER.search(text) is not None


def _is_accepted_charset(charset: str) -> bool:
    try:
        return codecs.lookup(charset.strip().strip('"')).name in ACCEPTED_CHARSETS
    except LookupError:
        return False


def wsgi_charset_guard(application: Callable) -> Callable:
    """WSGI wrapper: take a non-UTF-8 charset out of Content-Type before Django builds its request.

    Django's WSGIRequest applies a declared charset while it is being constructed, and doing so decodes the query
    string: `charset=base64` or `charset=idna` then raised before any middleware could answer (gunicorn's bare
    500). The charset is removed here and remembered in the environ; RequestGuardMiddleware answers 415.
    """

    def guarded(environ: dict, start_response: Callable):
        content_type = environ.get("CONTENT_TYPE", "")
        if "charset" in content_type.lower():
            parts = content_type.split(";")
            kept = [parts[0]]
            for part in parts[1:]:
                key, _, value = part.partition("=")
                if key.strip().lower() != "charset":
                    kept.append(part)
                elif not _is_accepted_charset(value):
                    environ[FOREIGN_CHARSET] = value.strip()[:40]
            environ["CONTENT_TYPE"] = ";".join(kept)
        return application(environ, start_response)

    return guarded


def _check_declared_charset(request: HttpRequest) -> None:
    if FOREIGN_CHARSET in request.META:
        raise RejectedRequest(415, f"charset {request.META[FOREIGN_CHARSET]!r} is not UTF-8")
    charset = request.content_params.get("charset") if request.content_type else None
    if charset is not None and not _is_accepted_charset(charset):
        raise RejectedRequest(415, f"charset {charset[:40]!r} is not UTF-8")


def _check_size(request: HttpRequest) -> None:
    if not request.path.startswith(PARTICIPANT_PREFIX):
        return  # the admin uploads files; Django's DATA_UPLOAD_MAX_MEMORY_SIZE bounds its forms
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise RejectedRequest(400, "Content-Length is not a number") from None
    if length < 0:
        raise RejectedRequest(400, "negative Content-Length")
    if length > settings.STUDY_MAX_BODY_BYTES:
        raise RejectedRequest(413, f"body of {length} bytes")


def _check_fields(request: HttpRequest) -> None:
    """Parse the query string and (for POST forms) the body now, inside one try, and look at every field."""
    try:
        fields = list(request.GET.lists())
        if request.method == "POST" and request.content_type in FORM_TYPES:
            fields += list(request.POST.lists())
    except RequestDataTooBig:
        raise RejectedRequest(413, "form too large") from None
    except (BadRequest, SuspiciousOperation, MultiPartParserError, UnicodeError, ValueError) as exc:
        raise RejectedRequest(400, f"unparsable form ({type(exc).__name__})") from None
    for key, values in fields:
        if _has_control_characters(key) or any("\x00" in value for value in values):
            raise RejectedRequest(400, "control character in a form field")


def request_problem(request: HttpRequest) -> RejectedRequest | None:
    """What is wrong with a request before any view sees it, or None."""
    try:
        request.get_host()  # DisallowedHost here is a calm 400 rather than a logged traceback further in
        if _has_control_characters(request.path):
            raise RejectedRequest(400, "control character in the path")
        if any("\x00" in value for key, value in request.META.items() if key.startswith("HTTP_")):
            raise RejectedRequest(400, "NUL in a header")  # e.g. a User-Agent, which the participant row keeps
        _check_declared_charset(request)
        _check_size(request)
        _check_fields(request)
    except RejectedRequest as problem:
        return problem
    except SuspiciousOperation:
        return RejectedRequest(400, "host not allowed")
    return None


class RequestGuardMiddleware:
    """Answers malformed requests with the calm error page; turns bare 405s into that page too."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        problem = request_problem(request)
        if problem is not None:
            logger.warning(
                "refused %s %s: %s (%d)",
                request.method,
                request.path[:200].encode("unicode_escape"),
                problem.reason,
                problem.status,
            )
            return error_page(request, status=problem.status)
        response = self.get_response(request)
        if isinstance(response, HttpResponseNotAllowed):
            calm = error_page(request, status=405)
            calm["Allow"] = response["Allow"]
            return calm
        return response
