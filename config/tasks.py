"""Project-level tasks; `ping` proves the broker round trip to a worker."""

import os
import socket

from celery import shared_task


@shared_task(name="config.ping")
def ping(payload: str = "pong") -> dict[str, str | int]:
    """Answer with the payload and who answered, so a test can tell a worker from an eager run."""
    return {"payload": payload, "pid": os.getpid(), "host": socket.gethostname()}
