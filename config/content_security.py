"""django-csp's middleware with the policy header built once per policy setting instead of once per response.

On a participant page django-csp spent more time turning the same settings into the same header string (through
`dataclasses.asdict`, which deep-copies, and `build_policy`) than the view spent reading the page's state. Responses
with a per-view policy (`csp_replace`, `csp_update`, ...) or a request that used a nonce go through django-csp
unchanged; for all others the header is exactly the one django-csp builds from the settings, set under the same
conditions (not already set, not exempt, not under an excluded prefix).
"""

from __future__ import annotations

import http.client

from csp.constants import HEADER, HEADER_REPORT_ONLY
from csp.middleware import CheckableLazyObject, CSPMiddleware
from csp.utils import build_policy
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase

_PER_RESPONSE = ("_csp_config", "_csp_update", "_csp_replace", "_csp_config_ro", "_csp_update_ro", "_csp_replace_ro")
_LANES = (
    (HEADER, "CONTENT_SECURITY_POLICY", "_csp_exempt", False),
    (HEADER_REPORT_ONLY, "CONTENT_SECURITY_POLICY_REPORT_ONLY", "_csp_exempt_ro", True),
)
_DEBUG_EXEMPT = (http.client.INTERNAL_SERVER_ERROR, http.client.NOT_FOUND)
# Keyed on the identity of the settings objects (override_settings swaps them); each entry holds them, so an id is
# never reused while its entry exists.
_POLICIES: dict[tuple[int, ...], tuple[tuple[object, ...], tuple[str, ...]]] = {}


def _policies() -> tuple[str, ...]:
    objects = tuple(getattr(settings, setting, None) for _, setting, _, _ in _LANES)
    key = tuple(id(o) for o in objects)
    cached = _POLICIES.get(key)
    if cached is None:
        if len(_POLICIES) > 32:
            _POLICIES.clear()
        headers = tuple(build_policy(report_only=report_only) for _, _, _, report_only in _LANES)
        cached = _POLICIES[key] = (objects, headers)
    return cached[1]


class MemoizedCSPMiddleware(CSPMiddleware):
    """CSPMiddleware whose settings-only policy headers are computed once (see the module)."""

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        if getattr(request, "_csp_nonce", None) is not None or any(
            getattr(response, name, None) is not None for name in _PER_RESPONSE
        ):
            return super().process_response(request, response)
        if response.status_code in _DEBUG_EXEMPT and settings.DEBUG:
            return response
        for (header, setting, exempt, _), policy in zip(_LANES, _policies(), strict=True):
            if not policy or getattr(response, exempt, False) is not False or header in response:
                continue
            prefixes = (getattr(settings, setting, None) or {}).get("EXCLUDE_URL_PREFIXES", None) or ()
            if not request.path_info.startswith(tuple(prefixes)):
                response[header] = policy
        # As django-csp does: a nonce asked for after the header was written is an error, not a silent gap.
        request.csp_nonce = CheckableLazyObject(self._csp_nonce_post_response)
        return response
