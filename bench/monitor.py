"""Benchmark of the study monitor's selector on a study with ~100k ratings (PostgreSQL, or SQLite with --sqlite).

Usage: .venv/bin/python bench/monitor.py [--participants 3900] [--pg postgres://postgres@127.0.0.1:5432] [--sqlite]
Creates a throw-away database (dropped at the end), fills it with bulk inserts (no participant flow), then times
`study.monitor.study_monitor` (median of --repeat runs) and counts its queries.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CONDITIONS = ["baseline", "artistic-0.5", "artistic-1.0", "symbolic"]


def admin_sql(pg: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def fill(participants: int, stimuli: int) -> int:
    """One study, `stimuli` stimuli, `participants` completed participants with 12 rated trials x 2 dimensions and
    2 attention checks each; returns the number of ratings."""
    from django.db import transaction
    from django.utils import timezone

    from generation.models import Stimulus, StimulusSet
    from study.models import DEFAULT_DIMENSIONS, Participant, Rating, RatingDimension, Study, Trial

    rng = random.Random(1)
    stimulus_set = StimulusSet.objects.create(name="bench-monitor", untrained=True)
    pool = Stimulus.objects.bulk_create(
        [
            Stimulus(
                stimulus_set=stimulus_set,
                condition=CONDITIONS[i % 4],
                class_index=i // 8,
                seed=i,
                epsilon=0.5,
                recipe_id=f"bench-{i}",
                image=f"stimuli/bench-{i}.png",
            )
            for i in range(stimuli)
        ]
    )
    study = Study.objects.create(
        slug="bench-monitor",
        title="Monitor benchmark",
        status="live",
        consent_text="ok",
        instructions="ok",
        completion_code="BENCH",
        screen_out_after=2,
        screen_out_code="SO",
        time_limit_minutes=60,
    )
    study.stimulus_sets.add(stimulus_set)
    dims = [RatingDimension.objects.create(study=study, order=i, **d) for i, d in enumerate(DEFAULT_DIMENSIONS)]
    start = timezone.now() - timedelta(days=3)
    ratings = 0
    batch = 500
    for first in range(0, participants, batch):
        with transaction.atomic():
            people = Participant.objects.bulk_create(
                [
                    Participant(
                        study=study,
                        pseudonym=secrets.token_hex(20),
                        source="prolific",
                        step="done",
                        consented_at=start + timedelta(seconds=60 * i),
                        completed_at=start + timedelta(seconds=60 * i + rng.randint(300, 1500)),
                        attention_failures=int(rng.random() < 0.1),
                        trial_count=14,
                        position=14,
                    )
                    for i in range(first, min(first + batch, participants))
                ]
            )
            trials = []
            for p in people:
                chosen = rng.sample(pool, 14)
                trials += [
                    Trial(
                        participant=p,
                        index=k,
                        kind="rating" if k < 12 else "attention",
                        stimulus=chosen[k],
                        dimensions=[d.name for d in dims],
                        expected_value=None if k < 12 else 5,
                        attention_passed=None if k < 12 else True,
                        answered_at=p.consented_at,
                    )
                    for k in range(14)
                ]
            trials = Trial.objects.bulk_create(trials)
            rows = [
                Rating(trial=t, dimension=d, value=rng.randint(1, 7))
                for t in trials
                for d in (dims if t.kind == "rating" else dims[:1])
            ]
            Rating.objects.bulk_create(rows, batch_size=5000)
            ratings += len(rows)
    return ratings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=3900, help="3900 gives ~101k ratings")
    parser.add_argument("--stimuli", type=int, default=240)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432"))
    parser.add_argument("--sqlite", action="store_true", help="Use a temporary SQLite file instead of PostgreSQL.")
    args = parser.parse_args()

    var = Path(tempfile.mkdtemp(prefix="bench-monitor-"))
    db = f"h3_bench_monitor_{secrets.token_hex(4)}"
    url = f"sqlite:///{var / 'db.sqlite3'}" if args.sqlite else f"{args.pg}/{db}"
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "VAR_DIR": str(var),
        "DEBUG": "false",
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
    }
    os.environ.update(env)
    if not args.sqlite:
        admin_sql(args.pg, f'CREATE DATABASE "{db}"')
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        import django

        django.setup()
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        from study.models import Study
        from study.monitor import study_monitor

        began = time.perf_counter()
        ratings = fill(args.participants, args.stimuli)
        print(f"filled {ratings} ratings of {args.participants} participants in {time.perf_counter() - began:.1f} s")
        if not args.sqlite:
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        study = Study.objects.get(slug="bench-monitor")
        timings = []
        for _ in range(args.repeat):
            with CaptureQueriesContext(connection) as queries:
                began = time.perf_counter()
                data = study_monitor(study=study)
                timings.append((time.perf_counter() - began) * 1000)
        assert data["ratings"] == ratings, (data["ratings"], ratings)
        engine = "SQLite" if args.sqlite else "PostgreSQL"
        print(
            f"study_monitor on {engine}, {ratings} ratings: median {statistics.median(timings):.0f} ms, "
            f"min {min(timings):.0f} ms, max {max(timings):.0f} ms over {args.repeat} runs; "
            f"{len(queries.captured_queries)} queries per call"
        )
        from study import monitor, selectors

        parts = {
            "counts": lambda: monitor.participant_counts(study=study),
            "median duration": lambda: monitor.median_duration_s(study=study, completed=data["completed"]),
            "attention": lambda: monitor.attention_summary(study=study),
            "rating groups (total, per condition, per stimulus)": lambda: monitor.rating_groups(study=study),
            "over time": lambda: monitor.completions_over_time(study=study),
            "readiness": lambda: selectors.study_readiness_problems(study=study),
        }
        for name, part in parts.items():
            began = time.perf_counter()
            part()
            print(f"  {name}: {(time.perf_counter() - began) * 1000:.0f} ms")
    finally:
        if not args.sqlite:
            from django.db import connections

            connections.close_all()
            admin_sql(args.pg, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


if __name__ == "__main__":
    main()
