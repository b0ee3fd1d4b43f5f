"""Production layer: secure defaults; passes `manage.py check --deploy` with the documented variables.

Required: SECRET_KEY, PSEUDONYM_KEY (its own value, not SECRET_KEY), ALLOWED_HOSTS, DATABASE_URL, CACHE_URL (Redis:
the participant rate limits must be shared by all gunicorn workers, so django-ratelimit's check that the cache is
shared stays on). Optional: CSRF_TRUSTED_ORIGINS, SECURE_SSL_REDIRECT (set false when a proxy in front already
redirects), SENDFILE_BACKEND (django_sendfile.backends.nginx behind the nginx in docs/docker.md). `check --deploy`
fails on placeholder keys (config/checks.py).
"""

from config.settings.base import *  # noqa: F403
from config.settings.base import SILENCED_SYSTEM_CHECKS, env

SECRET_KEY = env.str("SECRET_KEY")
# Never defaults to SECRET_KEY here: a leaked or rotated session key must not re-identify participants.
PSEUDONYM_KEY = env.str("PSEUDONYM_KEY")
DEBUG = False
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")
SERVE_MEDIA = env.bool("SERVE_MEDIA", default=False)

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SILENCED_SYSTEM_CHECKS = [check for check in SILENCED_SYSTEM_CHECKS if check != "django_ratelimit.E003"]
