"""`/healthz`: is the database reachable, and the broker (when one is configured)?"""

from __future__ import annotations

import time

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from config.errors import first_line


def database_status() -> dict[str, object]:
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - any failure means "down"; the text says why
        return {"ok": False, "error": first_line(exc)}
    return {"ok": True, "vendor": connection.vendor, "ms": round((time.perf_counter() - started) * 1000, 1)}


def broker_status() -> dict[str, object]:
    if settings.CELERY_BROKER_URL is None:
        return {"ok": True, "mode": "eager", "detail": "no broker configured; tasks run in-process"}
    from config.celery import broker_connection_error

    started = time.perf_counter()
    error = broker_connection_error(timeout=2)
    if error is not None:
        return {"ok": False, "mode": "broker", "error": first_line(error)}
    return {"ok": True, "mode": "broker", "ms": round((time.perf_counter() - started) * 1000, 1)}


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    checks = {"database": database_status(), "broker": broker_status()}
    healthy = all(check["ok"] for check in checks.values())
    return JsonResponse({"status": "ok" if healthy else "error", **checks}, status=200 if healthy else 503)
