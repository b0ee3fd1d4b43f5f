"""What one participant submission costs the server: closed-loop participants over HTTP at 1, 10 and 50 at once.

    .venv/bin/python bench/study.py [--task rating|pairwise|both] [--designs random adaptive] [--levels 1 10 50]
        [--seconds 20] [--pg postgres://postgres@127.0.0.1:5432]

The bench starts its own PostgreSQL cluster (pg_createcluster on a free port, trust auth, dropped at the end; or
uses --pg's server with a throw-away database) and gunicorn (gthread, DEBUG off) on loopback. Participants walk the
whole flow with zero think time (entry, consent, instructions, every trial, questionnaire, completion page); a
*submission* is one POST plus the GET it redirects to, as a person experiences it. Per level and study it prints
submissions/s, median and p99 submission latency, server CPU ms per submission (gunicorn master and workers plus
every PostgreSQL process of the cluster, read from /proc before and after the level), queries per submission (one
participant walked in-process with Django's query capture), and peak RSS per gunicorn worker (so far in the run);
below the table, the p99 latency by the step answered (consent, instructions, trials, questionnaire).
The load generator runs in its own processes on the same CPUs and is not counted as server CPU. Bounded in time,
loopback only.

Studies (`--task`): *rating*, 48 stimuli, 12 rated (`--trials`, the app's default) + 2 practice + 2 attention trials
on the two default dimensions (19 submissions per participant with consent, instructions and questionnaire; entry and
consent, once per participant, weigh less in a longer study); *pairwise*, one study per
`--designs` entry (random, balanced, adaptive), 60 stimuli (`--pair-stimuli`), one dimension, 20 pairs (`--pairs`)
+ 2 practice + 2 attention pairs (27 submissions). One dimension is the adaptive design's worst case: every consent
catches up the same posterior row with all answers since. The adaptive study's posterior starts past the balanced
burn-in (`analysis.pairs.ADAPTIVE_BURN_IN` comparisons per stimulus, applied in-process before the level), so every
participant's pairs are chosen adaptively, as in a study that has run a while. Pair pages are answered by a
Thurstone respondent (a fixed latent value per image URL plus noise; attention pairs as instructed). The studies
take turns within each level, so drift on a shared machine hits them alike (a level may be repeated, `--levels 50
50 50`, to see the spread); the line under the table gives the adaptive design's extra server CPU per submission
over each other design at each level, which is what adaptive pair selection (assignment at consent, after the
posterior caught up with the answers stored since) adds. Short levels overweight consent, the expensive step of the
adaptive design: every participant starts at once and at 50 few finish a 27-submission walk in 15 s.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import math
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
from dataclasses import dataclass
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


def make_stimuli(n: int):
    from django.core.files.base import ContentFile
    from PIL import Image

    from generation.models import Stimulus, StimulusSet

    stimulus_set = StimulusSet.objects.create(name=f"bench-stimuli-{n}", untrained=True)
    for i in range(n):
        buffer = io.BytesIO()
        Image.new("RGB", (64, 64), (i * 10 % 256, 80, 120)).save(buffer, format="PNG")
        condition = ["baseline", "artistic-0.5", "artistic-1.0", "symbolic"][i % 4]
        s = Stimulus(
            stimulus_set=stimulus_set,
            condition=condition,
            class_index=i // 8,
            seed=i % 2,
            epsilon=0.5,
            recipe_id=f"bench-{n}-{i}",
        )
        s.image.save(f"{secrets.token_urlsafe(12)}.png", ContentFile(buffer.getvalue()), save=False)
        s.save()
    return stimulus_set


@dataclass(frozen=True)
class StudyKind:
    """One study under test: a rating study, or a pairwise study with its pair design."""

    task: str
    design: str = ""

    @property
    def label(self) -> str:
        return f"pairs {self.design}" if self.task == "pairwise" else self.task


def make_study(*, slug: str, kind: StudyKind, stimulus_set, pairs: int, trials: int = 12):
    from study.models import DEFAULT_DIMENSIONS, PAIR_PROMPTS, RatingDimension, Study

    fields = {"trials_per_participant": trials}
    dimensions = DEFAULT_DIMENSIONS
    if kind.task == "pairwise":
        fields = {"task": Study.Task.PAIRWISE, "pair_design": kind.design, "pairs_per_participant": pairs}
        dimensions = [{"name": "artistry", "prompt": PAIR_PROMPTS["artistry"]}]
    study = Study.objects.create(
        slug=slug,
        title="Benchmark",
        status="live",
        consent_text="ok",
        instructions="ok",
        completion_code="BENCH",
        practice_trials=2,
        attention_checks=2,
        max_participants=100000,
        **fields,
    )
    study.stimulus_sets.add(stimulus_set)
    for order, d in enumerate(dimensions):
        RatingDimension.objects.create(study=study, order=order, **d)
    if kind.design == "adaptive":
        start_past_burn_in(study)
    return study


def start_past_burn_in(study) -> None:
    """Give each posterior the balanced burn-in's worth of answers, so every participant gets adaptive pairs."""
    import numpy as np

    from analysis.pairs import ADAPTIVE_BURN_IN, ScalePosterior, balanced_pairs
    from study import pairwise
    from study.selectors import study_stimuli

    stimuli = list(study_stimuli(study=study))
    items = [s.id for s in stimuli]
    truth = [latent(s.image.url) for s in stimuli]
    rng = np.random.default_rng(0)
    for dimension in study.dimensions.all():
        row = pairwise.posterior_get_or_create(study=study, dimension=dimension, items=items)
        posterior = ScalePosterior.prior(n_items=len(items), prior_sd=row.prior_sd)
        n_pairs = math.ceil(ADAPTIVE_BURN_IN * len(items) / 2)
        for a, b in balanced_pairs(n_items=len(items), n_pairs=n_pairs, rng=rng):
            a_wins = truth[a] + rng.normal() >= truth[b] + rng.normal()
            posterior.update(winner=a if a_wins else b, loser=b if a_wins else a)
        pairwise._store(row, posterior)  # the same encoding the catch-ups read and write
        row.save()


def latent(image_url: str) -> float:
    """The bench respondent's true value of an image (Thurstone scale, SD 1), fixed by its URL."""
    return random.Random(urlparse(image_url).path).gauss(0.0, 1.0)


def form_answers(page, rng: random.Random) -> dict[str, str]:
    """What a participant posts back from `page` (read by `study.bots.read_page`)."""
    data = dict(page.hidden)
    if page.step == "consent":
        data["choice"] = "agree"
    elif page.step == "trials" and page.pair_images:
        name = page.dimensions[0]["data-dimension"]
        left, right = (latent(page.pair_images[side]) + rng.gauss(0.0, 1.0) for side in ("left", "right"))
        side = page.instructed_side or ("left" if left >= right else "right")
        data.update({name: side, f"rt_ms_{name}": "900", "rt_ms": "900"})
    elif page.step == "trials":
        for d in page.dimensions:
            data[d["data-dimension"]] = str(rng.randint(int(d["data-min"]), int(d["data-max"])))
            data[f"rt_ms_{d['data-dimension']}"] = "900"
        if page.instructed is not None:
            data[page.dimensions[0]["data-dimension"]] = str(page.instructed)
        data["rt_ms"] = "900"
    elif page.step == "questionnaire":
        data.update({name: options[0] for name, options in page.radios.items()})
    elif page.step != "instructions":
        raise RuntimeError(f"unexpected page {page.step!r}")
    return data


# ---- the participant: a lean keep-alive HTTP client that walks the forms -------------------------------------------

HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


class Participant:
    """One closed-loop participant over one keep-alive connection, with its own cookie jar."""

    def __init__(self, host: str, port: int, rng: random.Random) -> None:
        self.conn = http.client.HTTPConnection(host, port, timeout=60)
        self.cookies: dict[str, str] = {}
        self.rng = rng
        self.reconnects = 0

    def request(self, method: str, url: str, body: str | None = None) -> tuple[int, str, str]:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            self.conn.request(method, url, body=body, headers=headers)
            response = self.conn.getresponse()
        except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
            # gunicorn closes keep-alive connections idle for 2 s, which a starved load thread can reach; resend on
            # a new connection as browsers do (safe here: an answer is stored once, a repeat is redirected on).
            self.conn.close()
            self.reconnects += 1
            self.conn.request(method, url, body=body, headers=headers)
            response = self.conn.getresponse()
        text = response.read().decode()
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name.strip()] = rest.split(";", 1)[0]
        location = response.getheader("Location", "")
        return response.status, urlparse(urljoin(url, location)).path if location else url, text

    def walk(self, slug: str, pid: str, deadline: float, latencies: list[tuple[str, float]]) -> bool:
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
            try:
                data = form_answers(page, self.rng)
            except RuntimeError as exc:
                raise RuntimeError(f"{exc} (HTTP {status}) at {url}") from None
            started = time.perf_counter()
            status, url, _ = self.request("POST", page.action or url, urlencode(data))
            if status != 303:
                raise RuntimeError(f"POST {page.step} answered HTTP {status}")
            status, url, text = self.request("GET", url)
            latencies.append((page.step, (time.perf_counter() - started) * 1000))
        return False


def load_process(*, host: str, port: int, slug: str, tag: str, threads: int, seconds: float, seed: int, queue) -> None:
    """One generator process: `threads` participants in a closed loop until the time is up."""
    deadline = time.monotonic() + seconds
    latencies: list[tuple[str, float]] = []  # (the step answered, ms)
    completed: list[bool] = []  # one entry per walk (list.append is atomic; `x[0] += walk()` lost updates)
    errors: list[str] = []
    reconnects: list[int] = []

    def loop(t: int) -> None:
        n = 0
        while time.monotonic() < deadline:
            rng = random.Random(seed * 1000 + t * 100000 + n)
            try:
                pid = f"{tag}{seed}x{t}x{n}"  # distinct from the warm-up's, which would be resumed, not started
                participant = Participant(host, port, rng)
                completed.append(participant.walk(slug, pid, deadline, latencies))
                reconnects.append(participant.reconnects)
            except Exception as exc:  # noqa: BLE001 - reported, and the bench fails on it
                errors.append(repr(exc))
                return
            n += 1

    pool = [threading.Thread(target=loop, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    queue.put((latencies, sum(completed), errors, sum(reconnects)))


def run_level(
    *, host: str, port: int, slug: str, tag: str, level: int, seconds: float
) -> tuple[list[tuple[str, float]], int, list[str], int]:
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
                "tag": tag,
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
    return latencies, sum(r[1] for r in results), [e for r in results for e in r[2]], sum(r[3] for r in results)


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
        data = form_answers(page, rng)
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
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 2, help="gunicorn worker processes (default: one per CPU)"
    )
    parser.add_argument("--threads", type=int, default=8, help="threads per gunicorn worker")
    parser.add_argument("--task", choices=["rating", "pairwise", "both"], default="both", help="studies to serve")
    parser.add_argument(
        "--designs",
        nargs="+",
        choices=["random", "balanced", "adaptive"],
        default=["random", "adaptive"],
        help="pair designs, one pairwise study each",
    )
    parser.add_argument("--pair-stimuli", type=int, default=60, help="stimuli of the pairwise studies")
    parser.add_argument("--pairs", type=int, default=20, help="pairs per participant (one dimension)")
    parser.add_argument(
        "--trials", type=int, default=12, help="rated trials per participant in the rating study (the app's default)"
    )
    args = parser.parse_args()
    kinds = [StudyKind(task="rating")] if args.task in ("rating", "both") else []
    if args.task in ("pairwise", "both"):
        kinds += [StudyKind(task="pairwise", design=d) for d in dict.fromkeys(args.designs)]
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
        stimulus_sets = {
            task: make_stimuli(n)
            for task, n in (("rating", max(48, args.trials)), ("pairwise", args.pair_stimuli))
            if any(k.task == task for k in kinds)
        }

        def new_study(kind: StudyKind, slug: str):
            return make_study(
                slug=slug, kind=kind, stimulus_set=stimulus_sets[kind.task], pairs=args.pairs, trials=args.trials
            )

        queries = {
            kind: queries_per_submission(new_study(kind, f"queries-{kind.label}".replace(" ", "-"))) for kind in kinds
        }
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
                # write per event-loop turn, and under PostgreSQL's fsyncs it once stalled past gunicorn's timeout.
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

        rows: dict[tuple[StudyKind, int], tuple] = {}  # (study, position in --levels): a level may repeat
        for i, level in enumerate(args.levels):
            for kind in kinds:  # the studies take turns at each level, so drift on a shared machine hits them alike
                study = new_study(kind, f"bench-{i}-{level}-{kind.label}".replace(" ", "-"))
                connections.close_all()
                rows[kind, i] = measure(
                    server=server, postmaster=postmaster, port=port, slug=study.slug, level=level, args=args
                )

        print(
            f"\nparticipant submissions over HTTP (POST + redirected GET), zero think time; gunicorn gthread "
            f"{args.workers}x{args.threads}, PostgreSQL {'(own cluster)' if not args.pg else ''}, DEBUG off, "
            f"{os.cpu_count()} CPUs shared with the load generator, {args.seconds:.0f} s per level"
        )
        print(
            f"{'study':<15} {'at once':>7} {'completed':>9} {'submits':>8} {'submits/s':>9} {'median ms':>9} "
            f"{'p99 ms':>8} {'web ms/sub':>10} {'db ms/sub':>9} {'server ms/sub':>13} {'queries/sub':>11} "
            f"{'worker RSS MB':>13}"
        )
        for kind in kinds:
            for i, level in enumerate(args.levels):
                completed, n, rate, median, p99, web, dbs, both, rss, _ = rows[kind, i]
                print(
                    f"{kind.label:<15} {level:>7} {completed:>9} {n:>8} {rate:>9.1f} {median:>9.1f} {p99:>8.1f} "
                    f"{web:>10.2f} {dbs:>9.2f} {both:>13.2f} {queries[kind][0]:>11.1f} {rss:>13.0f}"
                )
        adaptive = StudyKind(task="pairwise", design="adaptive")
        others = [k for k in kinds if k.task == "pairwise" and k != adaptive] if adaptive in kinds else []
        print()
        for other in others:  # what adaptive pair selection adds per submission at the same load
            extra = ", ".join(
                f"{level} at once {rows[adaptive, i][7] - rows[other, i][7]:+.2f} ms"
                for i, level in enumerate(args.levels)
            )
            print(f"adaptive minus {other.design}, server ms per submission: {extra}")
        # Which steps make the tail: a consent is one submission in 19 of the default walk but the costliest.
        print("\np99 ms by step answered (submissions of that step):")
        for kind in kinds:
            for i, level in enumerate(args.levels):
                steps = rows[kind, i][9]
                print(f"  {kind.label} at {level}: " + ", ".join(f"{step} {ms:.0f}" for step, ms in steps.items()))
        print("\nqueries per page (max over the walk):")
        for kind in kinds:
            print(f"  {kind.label}: " + ", ".join(f"{k} {v}" for k, v in queries[kind][1].items()))


def release_walked_away(*, slug: str) -> None:
    """Release the participants earlier levels and the warm-up left mid-walk, as `time_limit_minutes` would.

    Otherwise every level starts with up to 50 phantom participants whose unanswered pairs the balanced and
    adaptive designs keep counting as pending, and each level of a pairwise study pays more at consent than the last.
    """
    from django.db import connections

    from study.models import Participant
    from study.services import participants_release

    participants_release(participants=Participant.objects.filter(study__slug=slug))
    connections.close_all()


def measure(
    *, server: subprocess.Popen, postmaster: int, port: int, slug: str, level: int, args: argparse.Namespace
) -> tuple:
    """One level: (completed, submissions, per s, median, p99, web, db, server ms, RSS MB, p99 ms by step)."""
    # A short warm-up so every worker has loaded its code and opened its connection.
    run_level(host="127.0.0.1", port=port, slug=slug, tag="w", level=min(level, args.workers * 2), seconds=2)
    release_walked_away(slug=slug)
    cpu_web, cpu_db = tree_cpu_seconds(server.pid), tree_cpu_seconds(postmaster)
    started = time.perf_counter()
    stepped, completed, errors, reconnects = run_level(
        host="127.0.0.1", port=port, slug=slug, tag="p", level=level, seconds=args.seconds
    )
    latencies = [ms for _, ms in stepped]
    by_step: dict[str, list[float]] = {}
    for step, ms in stepped:
        by_step.setdefault(step, []).append(ms)
    wall = time.perf_counter() - started
    web = tree_cpu_seconds(server.pid) - cpu_web
    dbs = tree_cpu_seconds(postmaster) - cpu_db
    if errors:
        raise SystemExit(f"error: {len(errors)} participant(s) failed, e.g. {errors[0]}")
    if reconnects:
        print(f"{slug}: {reconnects} request(s) resent on a new connection (keep-alive closed by the server)")
    n = len(latencies)
    rss = max(peak_rss_mb(w) for w in children(server.pid))
    return (
        completed,
        n,
        n / wall,
        statistics.median(latencies),
        _p99(latencies),
        1000 * web / n,
        1000 * dbs / n,
        1000 * (web + dbs) / n,
        rss,
        {step: _p99(values) for step, values in by_step.items()},
    )


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


if __name__ == "__main__":
    main()
