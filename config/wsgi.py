"""WSGI entry point (gunicorn)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
_django = get_wsgi_application()

from config.lanes import ParticipantHandler, lanes  # noqa: E402 - needs the settings configured above
from study.request_guard import wsgi_charset_guard  # noqa: E402

# A body declared in a non-UTF-8 charset would otherwise fail inside Django's request constructor (see the guard).
# Participant pages take the short middleware lane (config/lanes.py).
application = wsgi_charset_guard(lanes(default=_django, participant=ParticipantHandler()))
