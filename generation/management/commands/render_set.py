"""`render_set SPEC.yaml [--out DIR]`: render a stimulus design, in-process or on Celery workers."""

from __future__ import annotations

import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from generation.models import RenderJob, StimulusSet
from generation.services import (
    UNTRAINED_LABEL,
    render_job_dispatch,
    render_jobs_abandon_stale,
    render_jobs_create,
    runs_in_process,
    set_plan,
    stimulus_set_export,
    stimulus_set_prepare,
)
from generation.spec import StimulusSpec, load_spec


class Command(BaseCommand):
    help = "Render the stimuli of a design file (YAML); re-running renders only what is missing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("spec", type=Path)
        parser.add_argument("--out", type=Path, help="also copy the images here and write manifest.csv")
        parser.add_argument("--no-wait", action="store_true", help="with a broker: queue the jobs and return")
        parser.add_argument("--job-size", type=int, default=64, help="images per render job (default 64)")

    def handle(self, *args, spec: Path, out: Path | None, no_wait: bool, job_size: int, **options) -> None:
        stimulus_set = render_spec(load_spec(spec), out=out, wait=not no_wait, job_size=job_size, stdout=self.stdout)
        if stimulus_set.untrained:
            self.stdout.write(self.style.WARNING(f"set {stimulus_set.name}: {UNTRAINED_LABEL}"))


def render_spec(
    spec: StimulusSpec, *, out: Path | None, wait: bool = True, job_size: int = 64, stdout=None
) -> StimulusSet:
    from config.celery import require_broker

    def say(text: str) -> None:
        if stdout is not None:
            stdout.write(text)

    plan = set_plan(spec=spec)
    in_process = runs_in_process()
    if not in_process:
        require_broker()
    stimulus_set, todo = stimulus_set_prepare(spec=spec, plan=plan)
    total = len(plan.items)
    say(
        f"set {stimulus_set.name}: {total} stimuli, {total - len(todo)} already rendered, {len(todo)} to render "
        f"({'in this process' if in_process else 'on Celery workers'})"
    )
    if todo:
        if in_process:
            render_jobs_abandon_stale(stimulus_set=stimulus_set)
        jobs = render_jobs_create(
            stimulus_set=stimulus_set, items=todo, model_folder=plan.info.folder, job_size=job_size
        )
        bar = tqdm(total=len(todo), unit="img", desc=stimulus_set.name, disable=None)
        try:
            for job in jobs:
                render_job_dispatch(job=job, on_progress=bar.update)
            if not in_process and not wait:
                say(f"queued {len(jobs)} render jobs; follow them in the admin (Render jobs)")
                return stimulus_set
            if not in_process:
                _wait(jobs, bar, say)
        finally:
            bar.close()
        failed = RenderJob.objects.filter(pk__in=[j.pk for j in jobs], status=RenderJob.Status.FAILED)
        if failed:
            first = failed[0].error.strip().splitlines()[-1] if failed[0].error.strip() else "unknown error"
            raise CommandError(
                f"{failed.count()} of {len(jobs)} render jobs failed (first: {first}); "
                "retry them in the admin or run render_set again"
            )
    if out is not None:
        manifest = stimulus_set_export(stimulus_set=stimulus_set, out_dir=out)
        say(f"wrote {manifest}")
    return stimulus_set


def _wait(jobs: list[RenderJob], bar: tqdm, say) -> None:
    ids = [j.pk for j in jobs]
    last_change = time.monotonic()
    warned = False
    while True:
        rows = list(RenderJob.objects.filter(pk__in=ids).values_list("status", "done"))
        done = sum(d for _, d in rows)
        if done != bar.n:
            bar.update(done - bar.n)
            last_change = time.monotonic()
        if all(s in (RenderJob.Status.DONE, RenderJob.Status.FAILED) for s, _ in rows):
            return
        if not warned and time.monotonic() - last_change > 30:
            say("no progress for 30 s: is a worker running? (celery -A config worker -Q celery[,gpu queue])")
            warned = True
        time.sleep(0.5)
