"""The one public URL of each stimulus image, with headers that say nothing about its condition.

Django's static `serve` sends `Last-Modified` from the file's mtime, and rendering writes one condition at a
time, so the timestamp alone sorted images into conditions. Here the headers are a function of the bytes only:
a content-hash ETag, the set's one Content-Type, a fixed Cache-Control, and no Last-Modified.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotModified
from django.utils.http import parse_etags
from django.views.decorators.http import require_safe

from generation.files import STIMULI_DIR, content_type_for

# Stimulus files are named by their keyed token (generation.services.stimulus_token) plus the set's format.
STIMULUS_FILE = re.compile(r"^[A-Za-z0-9_-]{1,64}\.(png|webp)$")
CACHE_CONTROL = "public, max-age=86400"


@require_safe
def stimulus_image(request: HttpRequest, name: str) -> HttpResponse:
    content_type = content_type_for(name)
    if not STIMULUS_FILE.match(name) or content_type is None:
        raise Http404("no such stimulus")
    path = Path(settings.MEDIA_ROOT) / STIMULI_DIR / name
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise Http404("no such stimulus") from None
    etag = f'"{hashlib.sha256(data).hexdigest()[:32]}"'
    if etag in parse_etags(request.headers.get("If-None-Match", "")):
        response: HttpResponse = HttpResponseNotModified()
    else:
        response = HttpResponse(data, content_type=content_type)
    response["ETag"] = etag
    response["Cache-Control"] = CACHE_CONTROL
    return response
