"""Per-address rate limits on entering and consenting (django-ratelimit, counted in the Django cache).

Without them one client could create participants as fast as it can send requests and, by consenting, take every
place of a quota. A cache outage must not lock real participants out, so a failing cache lets the request through
and says so in the log.
"""

from __future__ import annotations

import ipaddress
import logging

from django.conf import settings
from django.http import HttpRequest
from django_ratelimit.core import is_ratelimited

logger = logging.getLogger(__name__)


def client_ip(request: HttpRequest) -> str:
    """The client address (RATELIMIT_IP_META_KEY points here): REMOTE_ADDR, or behind a proxy the address it appended.

    With STUDY_CLIENT_IP_HEADER=HTTP_X_FORWARDED_FOR the last entry is used: earlier ones are whatever the client
    sent, the last one is what our own proxy saw. Anything that is not an address falls back to REMOTE_ADDR.
    """
    remote = request.META.get("REMOTE_ADDR") or "0.0.0.0"
    header = settings.STUDY_CLIENT_IP_HEADER
    candidate = request.META.get(header, "").split(",")[-1].strip() if header else remote
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote


def _throttled(request: HttpRequest, *, group: str, rate: str) -> bool:
    try:
        return is_ratelimited(request, group=group, key="ip", rate=rate, increment=True)
    except Exception:
        logger.exception("rate limit %s not checked: the cache failed", group)
        return False


def entry_throttled(request: HttpRequest) -> bool:
    """Count one entry (a recruitment-link visit that is not a resume in the same browser) from this address."""
    return _throttled(request, group="study.entry", rate=settings.STUDY_ENTRY_RATE)


def consent_throttled(request: HttpRequest) -> bool:
    """Count one consent from this address: consenting is what reserves stimuli and a place in the quota."""
    return _throttled(request, group="study.consent", rate=settings.STUDY_CONSENT_RATE)
