"""The calm error page every participant-facing 4xx uses, and Django's handler400/403/404 built on it.

One template (study/error.html) and one function, so the request guard, the views and Django's own error handling
all answer bad requests the same way: a short sentence, the right status, no traceback, nothing from the request.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from study.languages import request_language

MESSAGES = {
    400: _("This request was not understood. Please go back to the study and use the link you were given."),
    403: _("This page is not available to you. Please use the link you were given."),
    404: _("This page does not exist. Please use the link you were given."),
    405: _("This page cannot be used that way. Please go back to the study and reload the page."),
    413: _("This request was too large to be accepted. Please go back to the study and reload the page."),
    415: _("This request was sent in a form the study does not accept. Please reload the page and try again."),
    429: _(
        "Too many people have started this study from your network just now. "
        "Please wait a minute, then reload this page."
    ),
}


def error_page(request: HttpRequest, *, status: int, message: str = "") -> HttpResponse:
    """Render the calm error page in the participant's study language (see languages.request_language); it reads
    nothing from the request body, so it works on any broken request."""
    language = request_language(request=request)
    with translation.override(language):
        context = {"message": message or MESSAGES.get(status, MESSAGES[400]), "status": status}
        response = render(request, "study/error.html", context, status=status)
    response.headers["Content-Language"] = language
    return response


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return error_page(request, status=400)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return error_page(request, status=403)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return error_page(request, status=404)
