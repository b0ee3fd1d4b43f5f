"""Benchmark of the participant flow: bots over HTTP against gunicorn + PostgreSQL, at 1, 10 and 50 at once.

Usage: .venv/bin/python bench/study.py [--levels 1 10 50] [--pg postgres://postgres@127.0.0.1:5432]
Creates a throw-away database (dropped at the end), serves on loopback only, and prints median / p99 latency of a
rating submission (the trial POST) and ratings stored per second. Bounded: each level runs a fixed number of bots
and stops early at --max-seconds.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def admin_sql(pg: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def make_study(slug: str, stimulus_set):
    from study.models import DEFAULT_DIMENSIONS, RatingDimension, Study

    study = Study.objects.create(
        slug=slug, title="Benchmark", status="live", consent_text="ok", instructions="ok", completion_code="BENCH",
        trials_per_participant=12, practice_trials=2, attention_checks=2,
    )
    study.stimulus_sets.add(stimulus_set)
    for order, d in enumerate(DEFAULT_DIMENSIONS):
        RatingDimension.objects.create(study=study, order=order, **d)
    return study


def make_stimuli():
    from django.core.files.base import ContentFile
    from PIL import Image

    from generation.models import Stimulus, StimulusSet

    stimulus_set = StimulusSet.objects.create(name="bench-stimuli", untrained=True)
    for i in range(24):
        buffer = io.BytesIO()
        Image.new("RGB", (64, 64), (i * 10 % 256, 80, 120)).save(buffer, format="PNG")
        condition = ["baseline", "artistic-0.5", "artistic-1.0", "symbolic"][i % 4]
        s = Stimulus(stimulus_set=stimulus_set, condition=condition,
                     class_index=i // 8, seed=i % 2, epsilon=0.5, recipe_id=f"bench-{i}")
        s.image.save(f"{secrets.token_urlsafe(12)}.png", ContentFile(buffer.getvalue()), save=False)
        s.save()
    return stimulus_set


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432"))
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=8, help="threads per gunicorn worker")
    parser.add_argument("--max-seconds", type=float, default=40.0, help="time limit per level")
    args = parser.parse_args()

    db = f"bench_study_{os.getpid()}"
    var = Path(tempfile.mkdtemp(prefix="bench-study-"))
    env = {**os.environ, "DATABASE_URL": f"{args.pg}/{db}", "VAR_DIR": str(var), "DEBUG": "false",
           "CELERY_BROKER_URL": "", "DJANGO_SETTINGS_MODULE": "config.settings.base", "LOG_LEVEL": "WARNING",
           "CONN_MAX_AGE": "60", "RATELIMIT_ENABLE": "false"}  # every bot comes from 127.0.0.1
    os.environ.update(env)
    admin_sql(args.pg, f'CREATE DATABASE "{db}"')
    server = None
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        import django

        django.setup()
        from study.bots import AnswerModel, HttpTransport, run_bot, stimulus_truth
        from study.models import Rating

        stimulus_set = make_stimuli()
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "config.wsgi:application", "-b", f"127.0.0.1:{port}", "-k", "gthread",
             "-w", str(args.workers), "--threads", str(args.threads), "--log-level", "warning"],
            cwd=ROOT, env=env,
        )
        import requests

        for _ in range(100):
            try:
                if requests.get(f"{base}/healthz", timeout=1).status_code in (200, 503):
                    break
            except requests.RequestException:
                time.sleep(0.2)
        else:
            raise SystemExit("gunicorn did not start")

        rows = []
        model = AnswerModel(decline_rate=0.0, rt_median_ms=0)
        for level in args.levels:
            study = make_study(f"bench-{level}", stimulus_set)
            truth = stimulus_truth(study=study)
            n_bots = max(4, level * 2)
            latencies: list[float] = []
            deadline = time.monotonic() + args.max_seconds

            def bot(i: int, study=study, truth=truth, deadline=deadline, latencies=latencies) -> int:
                if time.monotonic() > deadline:
                    return 0
                outcome = run_bot(transport=HttpTransport(base), slug=study.slug, pid=f"b{i}", model=model,
                                  truth=truth, rng=random.Random(i))
                latencies.extend(outcome.latencies_ms)
                return 1

            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=level) as pool:
                finished = sum(pool.map(bot, range(n_bots)))
            wall = time.perf_counter() - started
            ratings = Rating.objects.filter(trial__participant__study=study).count()
            rows.append((level, finished, len(latencies), statistics.median(latencies), percentile(latencies, 0.99),
                         ratings / wall, wall))

        print(f"\nstudy flow over HTTP: gunicorn gthread {args.workers}x{args.threads}, PostgreSQL, loopback, "
              f"{os.cpu_count()} CPUs (bots run on the same machine)")
        print(f"{'bots at once':>12} {'bots done':>9} {'trial POSTs':>11} {'median ms':>9} {'p99 ms':>8} "
              f"{'ratings/s':>9} {'wall s':>7}")
        for level, done, posts, median, p99, rate, wall in rows:
            print(f"{level:>12} {done:>9} {posts:>11} {median:>9.1f} {p99:>8.1f} {rate:>9.1f} {wall:>7.1f}")
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
        from django.db import connections

        connections.close_all()
        admin_sql(args.pg, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


if __name__ == "__main__":
    main()
