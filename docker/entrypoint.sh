#!/usr/bin/env bash
# One image, several roles: web (migrate + gunicorn), worker (CPU Celery), gpu-worker (Celery on the gpu
# queue), beat (periodic tasks).
set -euo pipefail

role=${1:-web}
shift || true

wait_for_database() {
  python - <<'PY'
import sys
import time

import django
from django.db import connection

django.setup()
for attempt in range(60):
    try:
        connection.ensure_connection()
        sys.exit(0)
    except Exception as exc:  # noqa: BLE001
        if attempt == 0:
            print(f"waiting for the database: {exc}".splitlines()[0], file=sys.stderr)
        time.sleep(1)
print("error: the database did not come up within 60 s; check DATABASE_URL", file=sys.stderr)
sys.exit(1)
PY
}

case "$role" in
  web)
    # Refuse to serve with placeholder or shared keys (config/checks.py): Error-level deployment checks.
    python manage.py check --deploy --fail-level ERROR
    wait_for_database
    python manage.py migrate --no-input
    # One gthread process per core, threads to overlap database waits: the configuration bench/study.py measures
    # (docs/study.md, Serving cost); more processes than cores only added context switches and connections there.
    exec gunicorn config.wsgi:application \
      --bind 0.0.0.0:8000 \
      --worker-class gthread \
      --workers "${GUNICORN_WORKERS:-$(nproc)}" \
      --threads "${GUNICORN_THREADS:-8}" \
      --timeout "${GUNICORN_TIMEOUT:-60}" \
      --worker-tmp-dir /dev/shm \
      --access-logfile - "$@"
    ;;
  worker)
    wait_for_database
    exec celery -A config worker --loglevel=INFO --queues=celery \
      --concurrency "${CELERY_CONCURRENCY:-2}" "$@"
    ;;
  beat)
    # Periodic tasks (releasing idle participants); the schedule file is scratch, so /tmp.
    wait_for_database
    exec celery -A config beat --loglevel=INFO --schedule /tmp/celerybeat-schedule \
      --pidfile /tmp/celerybeat.pid "$@"
    ;;
  gpu-worker)
    wait_for_database
    exec celery -A config worker --loglevel=INFO --queues="${CELERY_GPU_QUEUE:-gpu}" \
      --concurrency 1 --pool=solo "$@"
    ;;
  manage)
    exec python manage.py "$@"
    ;;
  *)
    exec "$role" "$@"
    ;;
esac
