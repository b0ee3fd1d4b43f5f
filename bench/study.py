"""What one participant submission costs the server: closed-loop participants over HTTP at 1, 10 and 50 at once.

    .venv/bin/python bench/study.py [--levels 1 10 50] [--seconds 20] [--pg postgres://postgres@127.0.0.1:5432]

The bench starts its own PostgreSQL cluster (pg_createcluster on a free port, trust auth, dropped at the end; or
uses --pg's server with a throw-away database) and gunicorn (gthread, DEBUG off) on loopback. Participants walk the
whole flow with zero think time (entry, consent, instructions, every trial, questionnaire, completion page); a
*submission* is one POST plus the GET it redirects to, as a person experiences it. Per level it prints
submissions/s, median and p99 submission latency, server CPU ms per submission (gunicorn master and workers plus
every PostgreSQL process of the cluster, read from /proc before and after the level), queries per submission (one
participant walked in-process with Django's query capture), and peak RSS per gunicorn worker. The load generator
runs in its own processes on the same CPUs and is not counted as server CPU. Bounded in time, loopback only.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import multiprocessing as mp
import os
import random
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode, urljoin, urlparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- CPU and memory from /proc -------------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def tree_cpu_seconds(root_pid: int) -> float:
    """CPU (user + system) of a process, its reaped children and its live children, in seconds."""
    fields = _stat_fields(root_pid)
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime, stime, cutime, cstime
    for child in children(root_pid):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            f = _stat_fields(child)
            ticks += int(f[11]) + int(f[12])
    return ticks / CLK_TCK


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ---- PostgreSQL: an own cluster, or a database on a given server ---------------------------------------------------


class OwnCluster:
    """A throw-away PostgreSQL cluster, so its CPU is this bench's alone."""

    def __init__(self) -> None:
        self.version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
        self.name = f"bench{os.getpid()}"
        self.port = free_port()

    def __enter__(self) -> OwnCluster:
        subprocess.run(
            ["pg_createcluster", self.version, self.name, "-p", str(self.port), "--start", "--", "--auth=trust"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        self.url = f"postgres://postgres@127.0.0.1:{self.port}"
        pid_file = Path(f"/var/lib/postgresql/{self.version}/{self.name}/postmaster.pid")
        self.postmaster = int(pid_file.read_text().split()[0])
        return self

    def __exit__(self, *exc) -> None:
        subprocess.run(["pg_dropcluster", "--stop", self.version, self.name], check=False)


def admin_sql(pg: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def postmaster_pid(pg: str) -> int:
    import psycopg

    with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
        backend = conn.execute("select pg_backend_pid()").fetchone()[0]
    return int(_stat_fields(backend)[0])  # the parent of a backend is the postmaster


# ---- the study under test ------------------------------------------------------------------------------------------


def make_stimuli():
    from django.core.files.base import ContentFile
    from PIL import Image

    from generation.models import Stimulus, StimulusSet

    stimulus_set = StimulusSet.objects.create(name="bench-stimuli", untrained=True)
    for i in range(48):
        buffer = io.BytesIO()
        Image.new("RGB", (64, 64), (i * 10 % 256, 80, 120)).save(buffer, format="PNG")
        condition = ["baseline", "artistic-0.5", "artistic-1.0", "symbolic"][i % 4]
        s = Stimulus(
            stimulus_set=stimulus_set,
            condition=condition,
            class_index=i // 8,
            seed=i % 2,
            epsilon=0.5,
            recipe_id=f"bench-{i}",
        )
        s.image.save(f"{secrets.token_urlsafe(12)}.png", ContentFile(buffer.getvalue()), save=False)
        s.save()
    return stimulus_set


def make_study(slug: str, stimulus_set):
    from study.models import DEFAULT_DIMENSIONS, RatingDimension, Study

    study = Study.objects.create(
        slug=slug,
        title="Benchmark",
        status="live",
        consent_text="ok",
        instructions="ok",
        completion_code="BENCH",
        trials_per_participant=12,
        practice_trials=2,
        attention_checks=2,
        max_participants=100000,
    )
    study.stimulus_sets.add(stimulus_set)
    for order, d in enumerate(DEFAULT_DIMENSIONS):
        RatingDimension.objects.create(study=study, order=order, **d)
    return study


# ---- the participant: a lean keep-alive HTTP client that walks the forms -------------------------------------------

HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


class Participant:
    """One closed-loop participant over one keep-alive connection, with its own cookie jar."""

    def __init__(self, host: str, port: int, rng: random.Random) -> None:
        self.conn = http.client.HTTPConnection(host, port, timeout=60)
        self.cookies: dict[str, str] = {}
        self.rng = rng

    def request(self, method: str, url: str, body: str | None = None) -> tuple[int, str, str]:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.conn.request(method, url, body=body, headers=headers)
        response = self.conn.getresponse()
        text = response.read().decode()
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name.strip()] = rest.split(";", 1)[0]
        location = response.getheader("Location", "")
        return response.status, urlparse(urljoin(url, location)).path if location else url, text

    def walk(self, slug: str, pid: str, deadline: float, latencies: list[float]) -> bool:
        """The whole flow; True when the completion page was reached before the deadline."""
        from study.bots import read_page

        query = urlencode({"PROLIFIC_PID": pid, "STUDY_ID": "bench", "SESSION_ID": pid})
        status, url, text = self.request("GET", f"/s/{slug}/?{query}")
        while status in (301, 302, 303):
            status, url, text = self.request("GET", url)
        while time.monotonic() < deadline:
            page = read_page(text)
            if page.step == "done":
                return True
            data = dict(page.hidden)
            if page.step == "consent":
                data["choice"] = "agree"
            elif page.step == "trials":
                for d in page.dimensions:
                    data[d["data-dimension"]] = str(self.rng.randint(int(d["data-min"]), int(d["data-max"])))
                    data[f"rt_ms_{d['data-dimension']}"] = "900"
                if page.instructed is not None:
                    data[page.dimensions[0]["data-dimension"]] = str(page.instructed)
                data["rt_ms"] = "900"
            elif page.step == "questionnaire":
                data.update({name: options[0] for name, options in page.radios.items()})
            elif page.step != "instructions":
                raise RuntimeError(f"unexpected page {page.step!r} (HTTP {status}) at {url}")
            started = time.perf_counter()
            status, url, _ = self.request("POST", page.action or url, urlencode(data))
            if status != 303:
                raise RuntimeError(f"POST {page.step} answered HTTP {status}")
            status, url, text = self.request("GET", url)
            latencies.append((time.perf_counter() - started) * 1000)
        return False


def load_process(*, host: str, port: int, slug: str, threads: int, seconds: float, seed: int, queue) -> None:
    """One generator process: `threads` participants in a closed loop until the time is up."""
    deadline = time.monotonic() + seconds
    latencies: list[float] = []
    completed = [0]
    errors: list[str] = []

    def loop(t: int) -> None:
        n = 0
        while time.monotonic() < deadline:
            rng = random.Random(seed * 1000 + t * 100000 + n)
            try:
                completed[0] += Participant(host, port, rng).walk(slug, f"p{seed}x{t}x{n}", deadline, latencies)
            except Exception as exc:  # noqa: BLE001 - reported, and the bench fails on it
                errors.append(repr(exc))
                return
            n += 1

    pool = [threading.Thread(target=loop, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    queue.put((latencies, completed[0], errors))


def run_level(*, host: str, port: int, slug: str, level: int, seconds: float) -> tuple[list[float], int, list[str]]:
    processes = min(level, 4)
    share = [level // processes + (i < level % processes) for i in range(processes)]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [
        ctx.Process(
            target=load_process,
            kwargs={
                "host": host,
                "port": port,
                "slug": slug,
                "threads": n,
                "seconds": seconds,
                "seed": i,
                "queue": queue,
            },
        )
        for i, n in enumerate(share)
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join()
    latencies = [v for r in results for v in r[0]]
    return latencies, sum(r[1] for r in results), [e for r in results for e in r[2]]


def queries_per_submission(study) -> tuple[float, dict[str, int]]:
    """Walk one participant in-process with the query log on: mean queries per submission and the max per page."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from study.bots import read_page

    client = Client()
    per_page: dict[str, int] = {}
    total, submissions = 0, 0
    rng = random.Random(0)
    with CaptureQueriesContext(connection) as log:
        response = client.get(f"/s/{study.slug}/?PROLIFIC_PID=queries&STUDY_ID=q&SESSION_ID=q")
    per_page["entry"] = len(log)
    url = response["Location"]
    with CaptureQueriesContext(connection) as log:
        text = client.get(url).content.decode()
    per_page["first page GET"] = len(log)
    while True:
        page = read_page(text)
        if page.step == "done":
            break
        data = dict(page.hidden)
        if page.step == "consent":
            data["choice"] = "agree"
        elif page.step == "trials":
            for d in page.dimensions:
                data[d["data-dimension"]] = str(rng.randint(int(d["data-min"]), int(d["data-max"])))
            if page.instructed is not None:
                data[page.dimensions[0]["data-dimension"]] = str(page.instructed)
            data["rt_ms"] = "900"
        elif page.step == "questionnaire":
            data.update({name: options[0] for name, options in page.radios.items()})
        with CaptureQueriesContext(connection) as post_log:
            response = client.post(page.action or url, data)
        with CaptureQueriesContext(connection) as get_log:
            text = client.get(response["Location"]).content.decode()
        key = f"{page.step} POST+GET"
        per_page[key] = max(per_page.get(key, 0), len(post_log) + len(get_log))
        total += len(post_log) + len(get_log)
        submissions += 1
    return total / submissions, per_page


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of each level")
    parser.add_argument(
        "--pg", default="", help="use this server (no own cluster), e.g. postgres://postgres@127.0.0.1:5432"
    )
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=8, help="threads per gunicorn worker")
    args = parser.parse_args()
    if not args.pg and not shutil.which("pg_createcluster"):
        raise SystemExit("error: pg_createcluster not found: pass --pg postgres://USER@HOST:PORT to use a server")

    with contextlib.ExitStack() as stack:
        if args.pg:
            pg = args.pg.rstrip("/")
            postmaster = postmaster_pid(pg)
        else:
            cluster = stack.enter_context(OwnCluster())
            pg, postmaster = cluster.url, cluster.postmaster
        db = f"bench_study_{os.getpid()}"
        var = Path(tempfile.mkdtemp(prefix="bench-study-"))
        stack.callback(shutil.rmtree, var, True)
        env = {
            **os.environ,
            "DATABASE_URL": f"{pg}/{db}",
            "VAR_DIR": str(var),
            "DEBUG": "false",
            "CELERY_BROKER_URL": "",
            "DJANGO_SETTINGS_MODULE": "config.settings.base",
            "LOG_LEVEL": "WARNING",
            "RATELIMIT_ENABLE": "false",
        }  # every participant comes from 127.0.0.1
        os.environ.update(env)
        admin_sql(pg, f'CREATE DATABASE "{db}"')
        stack.callback(admin_sql, pg, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        import django

        django.setup()
        from django.db import connections

        stack.callback(connections.close_all)
        stimulus_set = make_stimuli()
        q_per_submission, q_pages = queries_per_submission(make_study("bench-queries", stimulus_set))
        connections.close_all()

        port = free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi:application",
                "-b",
                f"127.0.0.1:{port}",
                "-k",
                "gthread",
                "-w",
                str(args.workers),
                "--threads",
                str(args.threads),
                "--log-level",
                "warning",
                # The workers' heartbeat file on tmpfs, as docker/entrypoint.sh does: on a disk it costs a metadata
                # write per event-loop turn.
                *(["--worker-tmp-dir", "/dev/shm"] if Path("/dev/shm").is_dir() else []),
            ],
            cwd=ROOT,
            env=env,
        )
        stack.callback(stop, server)
        for _ in range(150):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/healthz")
                conn.getresponse().read()
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise SystemExit("gunicorn did not start")

        rows = []
        for level in args.levels:
            study = make_study(f"bench-{level}", stimulus_set)
            # A short warm-up so every worker has loaded its code and opened its connection.
            run_level(host="127.0.0.1", port=port, slug=study.slug, level=min(level, args.workers * 2), seconds=2)
            cpu_web, cpu_db = tree_cpu_seconds(server.pid), tree_cpu_seconds(postmaster)
            started = time.perf_counter()
            latencies, completed, errors = run_level(
                host="127.0.0.1", port=port, slug=study.slug, level=level, seconds=args.seconds
            )
            wall = time.perf_counter() - started
            web = tree_cpu_seconds(server.pid) - cpu_web
            dbs = tree_cpu_seconds(postmaster) - cpu_db
            if errors:
                raise SystemExit(f"error: {len(errors)} participant(s) failed, e.g. {errors[0]}")
            n = len(latencies)
            rss = max(peak_rss_mb(w) for w in children(server.pid))
            rows.append(
                (
                    level,
                    completed,
                    n,
                    n / wall,
                    statistics.median(latencies),
                    sorted(latencies)[min(n - 1, round(0.99 * (n - 1)))],
                    1000 * web / n,
                    1000 * dbs / n,
                    1000 * (web + dbs) / n,
                    rss,
                )
            )

        print(
            f"\nparticipant submissions over HTTP (POST + redirected GET), zero think time; gunicorn gthread "
            f"{args.workers}x{args.threads}, PostgreSQL {'(own cluster)' if not args.pg else ''}, DEBUG off, "
            f"{os.cpu_count()} CPUs shared with the load generator, {args.seconds:.0f} s per level"
        )
        print(
            f"{'at once':>7} {'completed':>9} {'submits':>8} {'submits/s':>9} {'median ms':>9} {'p99 ms':>8} "
            f"{'web ms/sub':>10} {'db ms/sub':>9} {'server ms/sub':>13} {'queries/sub':>11} {'worker RSS MB':>13}"
        )
        for level, completed, n, rate, median, p99, web, dbs, both, rss in rows:
            print(
                f"{level:>7} {completed:>9} {n:>8} {rate:>9.1f} {median:>9.1f} {p99:>8.1f} {web:>10.2f} "
                f"{dbs:>9.2f} {both:>13.2f} {q_per_submission:>11.1f} {rss:>13.0f}"
            )
        print("\nqueries per page (max over the walk): " + ", ".join(f"{k} {v}" for k, v in q_pages.items()))


if __name__ == "__main__":
    main()
