"""Run a Celery task away from the web request: on the broker when one is configured, else on a worker thread.

Eager Celery (no broker) would run a long task inside the request that asked for it (a report takes a minute, a
render longer), so without a broker the task goes to one process-local worker thread instead. Its state is kept
in the database rows the task writes (queued, running, done or failed, with the error), never in memory, so
the admin shows the real state either way. A thread dies with its process: that is the price of running
without a broker, and the admin says so.
"""

from __future__ import annotations

import logging
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

logger = logging.getLogger(__name__)

_lock = threading.Lock()
# One worker thread, created on first use (a module constant would start a thread in every process).
_executor: list[ThreadPoolExecutor] = []
_futures: set[Future] = set()


def uses_broker() -> bool:
    from django.conf import settings

    from config.celery import app

    return settings.CELERY_BROKER_URL is not None and not app.conf.task_always_eager


def task_submit(task: Any, *args: Any) -> str:
    """Queue `task(*args)`; returns the Celery task id, or a `thread-…` id for the local worker thread."""
    if uses_broker():
        return task.delay(*args).id or ""
    with _lock:
        if not _executor:
            _executor.append(ThreadPoolExecutor(max_workers=1, thread_name_prefix="background-task"))
        future = _executor[0].submit(_run_here, task, args)
        _futures.add(future)
    future.add_done_callback(_forget)
    return f"thread-{uuid.uuid4().hex[:12]}"


def _run_here(task: Any, args: tuple[Any, ...]) -> None:
    from django.db import connections

    try:
        task.run(*args)  # the task's own function: it records success or failure on its database row
    except Exception:  # the thread must survive for the next task; the row says what failed
        logger.exception("background task %s%r failed", getattr(task, "name", task), args)
    finally:
        connections.close_all()  # this thread's connections only; the next task opens fresh ones


def _forget(future: Future) -> None:
    with _lock:
        _futures.discard(future)


def wait_idle(timeout: float = 60.0) -> bool:
    """Wait for the local worker thread's queued tasks (tests, commands); True when none is left."""
    with _lock:
        pending = set(_futures)
    if not pending:
        return True
    _done, not_done = wait(pending, timeout=timeout)
    return not not_done
