"""Server CPU of pair selection per answer, with N participants answering at the same time (PostgreSQL).

Runs the real participant views in-process (Django's test client, one thread per participant, all started
together) against a throw-away PostgreSQL database, for an adaptive and a balanced pairwise study over the same
stimuli, and reports per answer:

* the adaptive posterior update (`study.pairwise.posterior_catch_up`: row lock, decode, O(n^2) ADF update per
  answer not applied yet, write), which runs at each consent, not in the answer request, and once more after all
  answers: its CPU time (`time.thread_time`) and wall time over all calls, divided by the answers (all applied);
* the pair selection at assignment (`plan_pair_trials`, once per participant, including the catch-up it starts
  with), CPU per participant and spread over that participant's answers;
* the whole answer request (view + services + SQL client side), CPU per answer, adaptive vs balanced: the
  difference is what the adaptive design adds to serving an answer.

    .venv/bin/python bench/pairwise_serving.py [--participants 50] [--stimuli 60 200] [--pairs 20]
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def admin_sql(pg: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
        conn.execute(sql)


class Timer:
    """Wraps a function and records its thread CPU and wall time per call (thread-safe append)."""

    def __init__(self, module, name: str) -> None:
        self.module, self.name, self.original = module, name, getattr(module, name)
        self.cpu: list[float] = []
        self.wall: list[float] = []
        self.lock = threading.Lock()

        def wrapped(*args, **kwargs):
            c0, w0 = time.thread_time(), time.perf_counter()
            try:
                return self.original(*args, **kwargs)
            finally:
                c, w = time.thread_time() - c0, time.perf_counter() - w0
                with self.lock:
                    self.cpu.append(c * 1000)
                    self.wall.append(w * 1000)

        setattr(module, name, wrapped)

    def restore(self) -> None:
        setattr(self.module, self.name, self.original)


def run_study(*, stimulus_set, design: str, participants: int, pairs: int) -> dict[str, float]:
    from django.db import connections
    from django.test import Client

    from study import pairwise
    from study.models import Choice, Participant, RatingDimension, Study

    study = Study.objects.create(
        slug=f"bench-{design}-{stimulus_set.pk}",
        title="Bench",
        status="live",
        consent_text="ok",
        instructions="ok",
        completion_code="BENCH",
        task="pairwise",
        pair_design=design,
        pairs_per_participant=pairs,
        practice_trials=0,
        attention_checks=0,
    )
    study.stimulus_sets.add(stimulus_set)
    RatingDimension.objects.create(study=study, name="artistry", prompt="Which is more art?", order=0)
    update = Timer(pairwise, "posterior_catch_up")
    select = Timer(pairwise, "plan_pair_trials")
    request_cpu: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(participants)
    errors: list[BaseException] = []

    def participant(i: int) -> None:
        try:
            client = Client()
            response = client.get(f"/s/{study.slug}/", {"PROLIFIC_PID": f"bench{i}"})
            assert response.status_code == 303, (response.status_code, response.content[:300])
            url = response["Location"]
            barrier.wait(timeout=120)
            client.post(url, {"step": "consent", "choice": "agree"})
            client.post(url, {"step": "instructions"})
            me = Participant.objects.get(public_id=url.rstrip("/").rsplit("/", 1)[-1])
            for index in range(me.trial_count):
                data = {
                    "step": "trials",
                    "trial": index,
                    "artistry": "left" if (i + index) % 2 else "right",
                    "rt_ms": 900,
                }
                c0 = time.thread_time()
                response = client.post(url, data)
                with lock:
                    request_cpu.append((time.thread_time() - c0) * 1000)
                assert response.status_code == 303, response.status_code
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=participant, args=(i,)) for i in range(participants)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if design == "adaptive":  # what the next consent would do first: apply every answer stored since
        for dimension in study.dimensions.all():
            pairwise.posterior_catch_up(study=study, dimension=dimension)
        applied = Choice.objects.filter(trial__participant__study=study).exclude(posterior_seq=None).count()
        if applied != len(request_cpu):
            raise SystemExit(f"error: the posterior holds {applied} of {len(request_cpu)} answers")
    update.restore()
    select.restore()
    if errors:
        raise errors[0]
    answers = len(request_cpu)
    out = {
        "answers": answers,
        "seconds": elapsed,
        "request_cpu_median": statistics.median(request_cpu),
        "request_cpu_mean": statistics.fmean(request_cpu),
        "select_cpu_per_participant": statistics.fmean(select.cpu),
        "select_cpu_per_answer": sum(select.cpu) / answers,
    }
    if update.cpu:
        out |= {
            "update_cpu_per_answer": sum(update.cpu) / answers,
            "update_wall_per_answer": sum(update.wall) / answers,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=50)
    parser.add_argument("--stimuli", type=int, nargs="+", default=[60, 200])
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432"))
    args = parser.parse_args()
    name = f"bench_pairs_{secrets.token_hex(4)}"
    admin_sql(args.pg, f"CREATE DATABASE {name}")
    media = tempfile.mkdtemp(prefix="bench-pairs-media-")
    os.environ.update(
        {
            "DATABASE_URL": f"{args.pg}/{name}",
            "MEDIA_ROOT": media,
            "CONN_MAX_AGE": "0",
            "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings.base"),
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "RATELIMIT_ENABLE": "false",  # every participant comes from the same test client address
        }
    )
    try:
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command
        from django.test.utils import setup_test_environment

        from bench.study import make_stimuli

        setup_test_environment()  # the test client's in-memory request handling, as the tests use
        settings.ALLOWED_HOSTS = ["*"]
        settings.MEDIA_ROOT = media
        call_command("migrate", verbosity=0)
        print(
            f"{args.participants} participants at once, {args.pairs} pairs each, one dimension, PostgreSQL; "
            "times in ms of server-thread CPU unless 'wall'"
        )
        header = (
            f"{'stimuli':>8}{'design':>10}{'answers':>9}{'update cpu/answer':>19}{'update wall/answer':>20}"
            f"{'select/part.':>14}{'select/answer':>15}{'request cpu':>13}"
        )
        print(header)
        for n in args.stimuli:
            stimulus_set = make_stimuli(n)  # bench/study.py's, the serving bench's stimuli
            for design in ("balanced", "adaptive"):
                r = run_study(
                    stimulus_set=stimulus_set, design=design, participants=args.participants, pairs=args.pairs
                )
                nan = float("nan")
                cells = f"{r.get('update_cpu_per_answer', nan):>19.3f}{r.get('update_wall_per_answer', nan):>20.3f}"
                print(
                    f"{n:>8}{design:>10}{r['answers']:>9}{cells}{r['select_cpu_per_participant']:>14.1f}"
                    f"{r['select_cpu_per_answer']:>15.2f}{r['request_cpu_median']:>13.2f}",
                    flush=True,
                )
    finally:
        from django.db import connections

        connections.close_all()
        admin_sql(args.pg, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


if __name__ == "__main__":
    main()
