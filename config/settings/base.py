"""Settings read from the environment (12-factor); defaults give a self-contained local set-up.

Defaults: SQLite under var/, Celery tasks run eagerly in-process, media under var/media.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parents[2]
VAR_DIR = Path(environ.Env().str("VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

env = environ.Env()


def _secret_key_from_var() -> str:
    """Generate a key once into var/ so local runs need no configuration and nothing is committed."""
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(64))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = env.str("SECRET_KEY", default="") or _secret_key_from_var()
DEBUG = env.bool("DEBUG", default=True)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_ratelimit",
    "axes",
    "csp",
    "django_sendfile",
    "config",
    "generation",
    "study",
]

MIDDLEWARE = [
    # First: undecodable or oversized requests get a calm 4xx before anything parses them (see the module).
    "study.request_guard.RequestGuardMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.content_security.MemoizedCSPMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its 429 response.
    "axes.middleware.AxesMiddleware",
]

# Participant pages (/s/...) skip what only the admin uses: config/lanes.py says why.
PARTICIPANT_SKIPPED_MIDDLEWARE = {
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "axes.middleware.AxesMiddleware",
}
PARTICIPANT_MIDDLEWARE = [m for m in MIDDLEWARE if m not in PARTICIPANT_SKIPPED_MIDDLEWARE]

ROOT_URLCONF = "config.urls"
# A calm page for participants whose form went stale (e.g. after a long break), not Django's debug 403.
CSRF_FAILURE_VIEW = "study.views.csrf_failure"
# A crash or a database outage gets a calm page too: handler500 in config/urls.py (config/error_views.py).
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

_database_url = env.str("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
if _database_url.split(":", 1)[0] not in {"sqlite", "postgres", "postgresql", "pgsql"}:
    raise ImproperlyConfigured(
        f"DATABASE_URL {_database_url.split(':', 1)[0]!r} is not supported: use "
        "postgres://USER@HOST:PORT/NAME or sqlite:///PATH"
    )
DATABASES = {"default": env.db_url_config(_database_url)}
DATABASES["default"].setdefault("TEST", {})
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file (not :memory:) so that worker processes started by tests see the same data.
    DATABASES["default"]["TEST"]["NAME"] = str(VAR_DIR / "test_db.sqlite3")
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 30
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=600))
    # A health check is a `SELECT 1` round trip before every request. Without it, a connection that the database
    # dropped (restart, failover) fails one request with the calm 503 page, and Django then discards it
    # (close_if_unusable_or_obsolete); participants' answers are never acknowledged before they are committed.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("CONN_HEALTH_CHECKS", default=False)
    # Server-side binding plus a prepare threshold let psycopg prepare the statements a worker repeats (the
    # participant pages run the same few again and again), so PostgreSQL parses and plans each once per
    # connection. Set DB_PREPARED_STATEMENTS=false behind a PgBouncer older than 1.21 in transaction mode.
    if env.bool("DB_PREPARED_STATEMENTS", default=True):
        DATABASES["default"].setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=2)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("de", "Deutsch")]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Serve app static files straight from the apps in development; production runs collectstatic.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
SERVE_MEDIA = env.bool("SERVE_MEDIA", default=True)
# Private files: reports and exports hold participant data, so they never go under MEDIA_ROOT (which is
# public); staff read them only through study.staff_views, which checks permissions and hands the file to
# django-sendfile2: "simple" streams it from Django, "nginx" answers with X-Accel-Redirect to SENDFILE_URL.
PRIVATE_ROOT = Path(env.str("PRIVATE_ROOT", default=str(VAR_DIR / "private")))
SENDFILE_ROOT = str(PRIVATE_ROOT)
SENDFILE_BACKEND = env.str("SENDFILE_BACKEND", default="django_sendfile.backends.simple")
SENDFILE_URL = env.str("SENDFILE_URL", default="/private-files")

# Celery: with no broker URL, tasks run eagerly in the calling process.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="") or None
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="") or CELERY_BROKER_URL
CELERY_TASK_ALWAYS_EAGER = CELERY_BROKER_URL is None
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_GPU_QUEUE = env.str("CELERY_GPU_QUEUE", default="") or None

# Generation: where model weights live (pretrained names resolve to folders here).
WEIGHTS_DIR = Path(env.str("WEIGHTS_DIR", default=str(VAR_DIR / "weights")))
TORCH_NUM_THREADS = env.int("TORCH_NUM_THREADS", default=1)

# Cache: Redis in production (CACHE_URL=redis://host:6379/1, or REDIS_URL), process-local memory otherwise.
# The participant rate limits count in it, so with several gunicorn workers only a shared cache is exact.
CACHES = {
    "default": env.cache_url_config(
        env.str("CACHE_URL", default="") or env.str("REDIS_URL", default="") or "locmemcache://"
    )
}
# Entry and consent are rate-limited per client address (django-ratelimit, counted in the cache above).
RATELIMIT_ENABLE = env.bool("RATELIMIT_ENABLE", default=True)
RATELIMIT_IP_META_KEY = "study.throttle.client_ip"
# Behind a reverse proxy: the META key carrying the client address the proxy appends (e.g. HTTP_X_FORWARDED_FOR);
# empty means REMOTE_ADDR (direct connections).
STUDY_CLIENT_IP_HEADER = env.str("STUDY_CLIENT_IP_HEADER", default="")
STUDY_ENTRY_RATE = env.str("STUDY_ENTRY_RATE", default="30/m")
STUDY_CONSENT_RATE = env.str("STUDY_CONSENT_RATE", default="20/m")
# Participant forms are a few hundred bytes; anything far larger is refused (413) before it is parsed.
STUDY_MAX_BODY_BYTES = env.int("STUDY_MAX_BODY_BYTES", default=64 * 1024)
SILENCED_SYSTEM_CHECKS = [
    # Django's own RedisCache increments atomically (INCRBY); django-ratelimit only lists django-redis's.
    "django_ratelimit.W001",
]
if CACHES["default"]["BACKEND"].endswith("LocMemCache"):
    # Local runs: one process, so a per-process cache counts exactly. Production settings undo this (Redis).
    SILENCED_SYSTEM_CHECKS.append("django_ratelimit.E003")
# Admin login throttling (django-axes): after AXES_FAILURE_LIMIT failed logins for one user name from one
# address, that pair is locked for AXES_COOLOFF_HOURS; other addresses can still log in as that user.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=1.0)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False  # lockouts are still logged; this drops the start-up banner from every command
AXES_LOCKOUT_TEMPLATE = "admin/locked_out.html"
# The same client address as the participant rate limits (REMOTE_ADDR, or STUDY_CLIENT_IP_HEADER behind a proxy).
AXES_CLIENT_IP_CALLABLE = "study.throttle.client_ip"

# Content-Security-Policy (django-csp): only this site's own scripts, styles and images, no inline code, no
# framing. Participant templates keep their scripts and styles in static files for this reason.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    },
}

# Study: the key that turns recruitment ids into pseudonyms (keyed hash).
PSEUDONYM_KEY = env.str("PSEUDONYM_KEY", default="") or SECRET_KEY

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # django-axes logs every successful login at INFO; lockouts and failures stay visible at WARNING.
    "loggers": {"axes": {"level": env.str("AXES_LOG_LEVEL", default="WARNING")}},
}
