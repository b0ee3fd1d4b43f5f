"""`/healthz`: is the database reachable, and the broker (when one is configured)?

The public sees only `ok`/`down` per component: error texts name hosts and ports. Staff (signed in) also get
the details; every failure is logged with its details.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from config.errors import first_line

logger = logging.getLogger("config.health")


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


def _is_staff(request: HttpRequest, database_ok: bool) -> bool:
    """Reading request.user needs the session table; with the database down nobody is staff."""
    if not database_ok:
        return False
    try:
        return bool(request.user.is_active and request.user.is_staff)
    except Exception:  # noqa: BLE001 - a health check must answer whatever the session store does
        return False


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    checks = {"database": database_status(), "broker": broker_status()}
    healthy = all(check["ok"] for check in checks.values())
    for name, check in checks.items():
        if not check["ok"]:
            logger.warning("healthz: %s is down: %s", name, check.get("error", ""))
    body: dict[str, object] = {
        "status": "ok" if healthy else "down",
        **{name: "ok" if check["ok"] else "down" for name, check in checks.items()},
    }
    if _is_staff(request, checks["database"]["ok"]):
        body["details"] = checks
    return JsonResponse(body, status=200 if healthy else 503)
