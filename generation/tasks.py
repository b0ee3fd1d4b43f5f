"""Celery tasks: one render job (a perturbed network's share of a stimulus set) per task."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="generation.render_job")
def render_job(job_id: int) -> dict[str, object]:
    """Run a RenderJob; its state, progress and error text live in the database row, not the result."""
    from generation.services import render_job_run

    job = render_job_run(job_id=job_id)
    return {"job": job.pk, "status": job.status, "done": job.done, "total": job.total}


@shared_task(name="generation.build_set")
def stimulus_set_build_task(set_id: int) -> None:
    """Plan an uploaded design and dispatch its render jobs; the set row records failures."""
    from generation.builds import stimulus_set_build

    stimulus_set_build(set_id=set_id)
