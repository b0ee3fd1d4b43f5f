"""What one consent (the assignment, under the study's lock) costs as a study grows, with and without kept counts.

    .venv/bin/python bench/consent.py [--participants 100 400 1000] [--consents 40] [--trials 12]
        [--pg postgres://postgres@127.0.0.1:5432]

Fills a rating study in a throw-away PostgreSQL database with N consented participants (through the service, as
real consents), then times `--consents` more at that size, one at a time, two ways taking turns: with the
allocation counts the assignment keeps on the study row ("kept"), and with them marked stale before each consent,
so it aggregates every trial of the study as every consent did before ("aggregate"). Per way it prints the
median wall time of the consent service, its Python CPU, and the PostgreSQL backend's CPU (from /proc, summed
over the consents). Consents of one study run one at a time on its row lock, so 1000 / wall ms bounds how many
consents per second one study can take.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.study import admin_sql  # noqa: E402 - after the path set-up above

CLK_TCK = os.sysconf("SC_CLK_TCK")


def backend_cpu_seconds() -> float:
    from django.db import connection

    connection.ensure_connection()
    text = Path(f"/proc/{connection.connection.info.backend_pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def measure(*, study, n_consents: int, tag: str) -> dict[str, dict[str, float]]:
    from study import services
    from study.models import Study

    ways = {"kept": {"wall": [], "cpu": [], "db": 0.0}, "aggregate": {"wall": [], "cpu": [], "db": 0.0}}
    for i in range(n_consents):
        way = ("kept", "aggregate")[i % 2]
        participant = services.participant_enter(study=study, source="prolific", external_id=f"{tag}-{i}")
        if way == "aggregate":
            Study.objects.filter(pk=study.pk).update(allocation_basis=-1)
        db0, cpu0, wall0 = backend_cpu_seconds(), time.process_time(), time.perf_counter()
        services.participant_consent(participant=participant)
        wall, cpu, db = time.perf_counter() - wall0, time.process_time() - cpu0, backend_cpu_seconds() - db0
        ways[way]["wall"].append(wall)
        ways[way]["cpu"].append(cpu)
        ways[way]["db"] += db
    return {
        way: {
            "wall": 1000 * statistics.median(v["wall"]),
            "cpu": 1000 * statistics.median(v["cpu"]),
            "db": 1000 * v["db"] / len(v["wall"]),
        }
        for way, v in ways.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, nargs="+", default=[100, 400, 1000])
    parser.add_argument("--consents", type=int, default=40, help="timed consents per size, half each way")
    parser.add_argument("--trials", type=int, default=12, help="rated trials per participant")
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432"))
    args = parser.parse_args()
    name = f"bench_consent_{secrets.token_hex(4)}"
    admin_sql(args.pg, f"CREATE DATABASE {name}")
    var = tempfile.mkdtemp(prefix="bench-consent-")
    os.environ.update(
        {
            "DATABASE_URL": f"{args.pg}/{name}",
            "VAR_DIR": var,
            "DEBUG": "false",
            "CELERY_BROKER_URL": "",
            "DJANGO_SETTINGS_MODULE": "config.settings.base",
            "LOG_LEVEL": "WARNING",
        }
    )
    try:
        import django

        django.setup()
        from django.core.management import call_command

        from bench.study import StudyKind, make_stimuli, make_study
        from study import services

        call_command("migrate", verbosity=0)
        study = make_study(
            slug="bench-consent",
            kind=StudyKind(task="rating"),
            stimulus_set=make_stimuli(max(48, args.trials)),
            pairs=0,
            trials=args.trials,
        )
        print(
            f"one consent at a time, rating study, {args.trials} rated + 2 practice + 2 attention trials, PostgreSQL; "
            "median ms per consent (database CPU: mean)"
        )
        print(f"{'participants':>12} {'way':>10} {'wall ms':>8} {'python ms':>10} {'database ms':>12}")
        filled = 0
        for size in sorted(args.participants):
            for i in tqdm(range(filled, size), desc=f"filling to {size}", leave=False):
                p = services.participant_enter(study=study, source="prolific", external_id=f"fill-{i}")
                services.participant_consent(participant=p)
            filled = size
            for way, row in measure(study=study, n_consents=args.consents, tag=f"m{size}").items():
                print(f"{size:>12} {way:>10} {row['wall']:>8.2f} {row['cpu']:>10.2f} {row['db']:>12.2f}")
            filled += args.consents
    finally:
        from django.db import connections

        connections.close_all()
        admin_sql(args.pg, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
