"""Walking the participant pages by hand in tests (the bots do it end to end)."""

from __future__ import annotations

from django.test import Client

from study.bots import read_page
from study.models import Participant


def enter(client: Client, study, pid: str = "p1", **params) -> str:
    """Follow the recruitment link; returns the participant's page URL."""
    response = client.get(f"/s/{study.slug}/", {"PROLIFIC_PID": pid, **params})
    assert response.status_code == 303, response.content[:500]
    return response["Location"]


def step_of(response) -> str:
    return read_page(response.content.decode()).step


def post_step(client: Client, url: str, step: str, **data):
    return client.post(url, {"step": step, **data})


def to_trials(client: Client, study, pid: str = "p1") -> tuple[str, Participant]:
    url = enter(client, study, pid)
    assert post_step(client, url, "consent", choice="agree").status_code == 303
    assert post_step(client, url, "instructions").status_code == 303
    participant = Participant.objects.get(public_id=url.rstrip("/").rsplit("/", 1)[-1])
    return url, participant


def answer_current(client: Client, url: str, participant: Participant, value: int = 4, **extra):
    """Answer the current trial correctly (the instructed value on attention checks)."""
    participant.refresh_from_db()
    trial = participant.trials.get(index=participant.position)
    data = {"step": "trials", "trial": trial.index, "rt_ms": 1234}
    for name in trial.dimensions:
        data[name] = trial.expected_value if trial.expected_value is not None else value
        data[f"rt_ms_{name}"] = 1000
    data.update(extra)
    return client.post(url, data)
