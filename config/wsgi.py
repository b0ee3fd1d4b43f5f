"""WSGI entry point (gunicorn)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
_django = get_wsgi_application()

from study.request_guard import wsgi_charset_guard  # noqa: E402 - needs the settings configured above

# A body declared in a non-UTF-8 charset would otherwise fail inside Django's request constructor (see the guard).
application = wsgi_charset_guard(_django)
