"""Fault-and-fuzz suite: gunicorn workers killed -9 and PostgreSQL restarted under concurrent participants, and a
bounded fuzzer of the participant endpoints.

Usage: .venv/bin/python bench/faults.py [--participants 50] [--fuzz 10000] [--workers 4] [--port 2150]

1. Creates its own PostgreSQL cluster on --pg-port (pg_createcluster, as root), so that it can restart it without
   touching the shared server; with --shared-pg URL (or without pg_createcluster) it uses a throw-away database on
   that server and does not restart it.
2. Serves the app with gunicorn (several workers) on loopback only.
3. Fuzz: --fuzz requests of malformed participant traffic (NaN/inf/huge numbers, NUL, undecodable bodies, odd
   charsets, wrong methods, oversized bodies, forged cookies and hosts); fails on any 5xx, or a traceback in a
   response or in the server log.
4. Faults: --participants bots walk the whole study at once over HTTP while a chaos thread kills a gunicorn worker
   with SIGKILL (several times) and restarts the database; bots retry like people who reload. Afterwards every
   acknowledged answer is compared with the database: lost / duplicated / stored-without-acknowledgement must all
   be 0.
Bounded (fixed request and participant counts, a --max-seconds watchdog), stops by itself, cleans up what it
created.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlencode

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# --- processes: gunicorn and a private PostgreSQL cluster ------------------------------------------------------------


def start_gunicorn(
    *, env: dict[str, str], port: int, workers: int, log_path: Path, threads: int = 4
) -> subprocess.Popen:
    """gunicorn on 127.0.0.1 only; its log (Django's too) goes to `log_path` for the traceback scan."""
    log = log_path.open("ab")
    process = subprocess.Popen(
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
            str(workers),
            "--threads",
            str(threads),
            "--timeout",
            "30",
            "--graceful-timeout",
            "5",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    return process


def wait_until_serving(base_url: str, *, timeout: float = 60.0, process: subprocess.Popen | None = None) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}")
        try:
            requests.get(f"{base_url}/healthz", timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError(f"{base_url} did not answer within {timeout:.0f} s")


def stop(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def worker_pids(master: subprocess.Popen) -> list[int]:
    """gunicorn's worker processes: the master's children (read from /proc, Linux)."""
    children = Path(f"/proc/{master.pid}/task/{master.pid}/children")
    try:
        return [int(pid) for pid in children.read_text().split()]
    except OSError:
        return []


def kill_a_worker(master: subprocess.Popen, rng: random.Random) -> int | None:
    """SIGKILL one worker (the master starts a new one); returns its pid."""
    pids = worker_pids(master)
    if not pids:
        return None
    pid = rng.choice(pids)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return None
    return pid


@dataclass
class PrivateCluster:
    """A PostgreSQL cluster of our own (Debian's pg_createcluster), so a test can restart it."""

    port: int
    name: str = field(default_factory=lambda: f"faults{os.getpid()}")
    version: str = ""

    @staticmethod
    def available() -> bool:
        return shutil.which("pg_createcluster") is not None and os.geteuid() == 0

    def __post_init__(self) -> None:
        if not self.version:
            versions = sorted(
                Path("/usr/lib/postgresql").iterdir(), key=lambda p: int(p.name) if p.name.isdigit() else 0
            )
            self.version = versions[-1].name

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}"

    def create(self) -> None:
        subprocess.run(
            [
                "pg_createcluster",
                self.version,
                self.name,
                "-p",
                str(self.port),
                "--start",
                "--",
                "--auth-host=trust",
                "--auth-local=trust",
            ],
            check=True,
            capture_output=True,
        )

    def restart(self) -> None:
        # immediate: like a crash (no checkpoint), so recovery from the WAL is part of the test.
        subprocess.run(
            ["pg_ctlcluster", self.version, self.name, "restart", "-m", "immediate"], check=True, capture_output=True
        )

    def drop(self) -> None:
        subprocess.run(["pg_dropcluster", self.version, self.name, "--stop"], capture_output=True)


# --- traceback scan ------------------------------------------------------------------------------------------------

RECORD_START = re.compile(r"^\[?\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d", re.MULTILINE)


def log_tracebacks(text: str) -> list[str]:
    """Log records (Django's or gunicorn's) that carry a traceback or report a server error."""
    starts = [m.start() for m in RECORD_START.finditer(text)] or [0]
    records = [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]
    if starts[0] > 0:
        records.insert(0, text[: starts[0]])
    return [
        r.strip()[:2000]
        for r in records
        if "Traceback (most recent call last)" in r or "Internal Server Error" in r or "[ERROR]" in r
    ]


# --- participants under faults -------------------------------------------------------------------------------------


@dataclass
class Reconciliation:
    acknowledged: int  # answers (trial x dimension) the site acknowledged to a bot
    stored: int  # ratings of these bots in the database
    lost: int  # acknowledged but missing, or stored with another value
    duplicated: int  # more than one stored rating for a (participant, trial, dimension)
    unacknowledged: int  # stored although no bot was told so
    bots_completed: int
    bot_errors: list[str]
    reloads: int

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicated == 0 and self.unacknowledged == 0 and not self.bot_errors


def drive_participants(
    *,
    base_url: str,
    study,
    n: int,
    concurrency: int,
    on_rating: Callable[[], None] | None = None,
    progress: bool = True,
    seed: int = 0,
) -> list:
    """Walk n bots through the study over HTTP at once; returns each bot's outcome (a failed bot's too)."""
    from tqdm import tqdm

    from study.bots import AnswerModel, BotError, HttpTransport, Patience, run_bot, stimulus_truth

    truth = stimulus_truth(study=study)
    model = AnswerModel(decline_rate=0.0, rt_median_ms=900)
    patience = Patience(attempts=60, first_wait_s=0.2, max_wait_s=2.0)

    def one(i: int):
        try:
            return run_bot(
                transport=HttpTransport(base_url, timeout=20),
                slug=study.slug,
                pid=f"fault-{seed}-{i:04d}",
                model=model,
                truth=truth,
                rng=random.Random(f"{seed}:{i}"),
                patience=patience,
                on_rating=(lambda _latency: on_rating()) if on_rating else None,
            )
        except BotError as exc:
            return exc

    outcomes = []
    with (
        ThreadPoolExecutor(max_workers=concurrency) as pool,
        tqdm(total=n, desc="participants", disable=not progress, leave=False) as bar,
    ):
        for future in as_completed([pool.submit(one, i) for i in range(n)]):
            outcomes.append(future.result())
            bar.update(1)
    return outcomes


def reconcile(*, study, outcomes: list) -> Reconciliation:
    """Compare every answer the bots were told was stored with what the database holds."""
    from django.db.models import Count

    from study.models import Participant, Rating
    from study.services import pseudonym_for

    expected: dict[tuple[str, int, str], int] = {}
    errors, completed, reloads = [], 0, 0
    pids = []
    for outcome in outcomes:
        result = getattr(outcome, "outcome", outcome)  # a BotError carries the outcome so far
        if isinstance(outcome, Exception):
            errors.append(str(outcome))
        if result is None:
            continue
        pids.append(result.pid)
        completed += result.result == "completed"
        reloads += result.reloads
        pseudonym = pseudonym_for(source="prolific", external_id=result.pid)
        for index, values in result.acknowledged.items():
            for dimension, value in values.items():
                expected[(pseudonym, index, dimension)] = value
    pseudonyms = {pseudonym_for(source="prolific", external_id=pid) for pid in pids}
    ratings = Rating.objects.filter(trial__participant__study=study, trial__participant__pseudonym__in=pseudonyms)
    stored = {
        (p, i, d): v
        for p, i, d, v in ratings.values_list(
            "trial__participant__pseudonym", "trial__index", "dimension__name", "value"
        )
    }
    duplicated = sum(
        row["n"] - 1 for row in ratings.values("trial_id", "dimension_id").annotate(n=Count("pk")) if row["n"] > 1
    )
    duplicated += sum(
        row["n"] - 1
        for row in Participant.objects.filter(study=study).values("pseudonym").annotate(n=Count("pk"))
        if row["n"] > 1
    )
    lost = sum(1 for key, value in expected.items() if key not in stored or stored[key] != value)
    unacknowledged = sum(1 for key in stored if key not in expected)
    return Reconciliation(
        acknowledged=len(expected),
        stored=ratings.count(),
        lost=lost,
        duplicated=duplicated,
        unacknowledged=unacknowledged,
        bots_completed=completed,
        bot_errors=errors,
        reloads=reloads,
    )


class Chaos:
    """Fires faults when the run reaches fractions of its expected answered screens: ("kill", 0.2), ("restart", 0.4)."""

    def __init__(
        self,
        *,
        plan: list[tuple[str, float]],
        expected_ratings: int,
        actions: dict[str, Callable[[], str]],
        log: Callable[[str], None] = print,
    ) -> None:
        self.plan = sorted(plan, key=lambda item: item[1])
        self.expected = max(1, expected_ratings)
        self.actions = actions
        self.log = log
        self.count = 0
        self.fired: list[str] = []
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._wake = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Chaos:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done = True
        self._wake.set()
        self._thread.join(timeout=60)

    def rating_done(self) -> None:
        with self._lock:
            self.count += 1
            while self.plan and self.count >= self.plan[0][1] * self.expected:
                self._pending.append(self.plan.pop(0)[0])
                self._wake.set()

    def _run(self) -> None:
        # Faults run on this thread, never on a bot's, so a slow restart does not stall that one bot.
        while not self._done:
            self._wake.wait(timeout=0.5)
            self._wake.clear()
            while self._pending:
                with self._lock:
                    action = self._pending.pop(0)
                detail = self.actions[action]()
                self.fired.append(f"{action} ({detail}) at {self.count}/{self.expected} answered screens")
                self.log(f"  fault: {self.fired[-1]}")


# --- fuzzing -------------------------------------------------------------------------------------------------------

NASTY_NUMBERS = [
    "inf",
    "-inf",
    "Infinity",
    "nan",
    "NaN",
    "1e400",
    "-1e400",
    "9" * 5000,
    "1" * 100,
    "",
    "0x10",
    "\u0663",
    "1_000",
    "3.5",
    "-0",
    "+3",
    "3 ",
    " ",
    "4\x00",
    "\x00",
    "1e-400",
    "2e9",
    "-2147483649",
    "9223372036854775808",
    "<script>",
    "'; DROP TABLE study_rating; --",
    "a" * 70_000,
    "3",
    "4",
    "1",
    "7",
    "0",
    "100",
    "50",
]
NASTY_TEXT = [
    "",
    "\x00",
    "a\x00b",
    "\u202e",
    "\ud7ff",
    "x" * 300,
    "x" * 5000,
    "%00",
    "../../etc/passwd",
    "é",
    "🙂",
    "<b>",
    "${jndi:ldap://x}",
    "\r\nSet-Cookie: a=b",
    "consent",
    "trials",
    "questionnaire",
    "agree",
]
RAW_BYTES = [b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\x00", b"\x80", b"%FF%FE", b"%00", b"%C3%28"]
CHARSETS = [
    "",
    "; charset=utf-8",
    "; charset=UTF8",
    "; charset=utf-16",
    "; charset=utf-16-le",
    "; charset=utf-32",
    "; charset=latin-1",
    "; charset=cp1252",
    "; charset=nonsense",
    "; charset=",
    '; charset="utf-8"',
    "; charset=utf-7",
    "; charset=rot13",
    "; charset=idna",
    "; charset=base64",
]
METHODS = ["PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "BREW", "CONNECT"]
STEPS = ["consent", "instructions", "trials", "questionnaire", "done", "declined", "junk", "", "\x00"]


@dataclass
class Identity:
    """A real participant the fuzzer impersonates: its page, cookies and CSRF token."""

    page: str
    cookies: dict[str, str]
    csrf: str


@dataclass
class FuzzResult:
    requests: int = 0
    statuses: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)  # 5xx or a traceback in the response
    no_answer: int = 0  # connection closed without a response (only gunicorn's own refusals; counted, not failed)
    no_answer_examples: list[str] = field(default_factory=list)

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)


def raw_request(host: str, port: int, request: bytes, *, timeout: float = 20.0) -> tuple[int | None, bytes]:
    """Send bytes exactly as given (no client-side quoting or validation); returns (status, body)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        # A server that refuses an oversized body (413) answers and closes before reading it all: read the answer.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        chunks = []
        while True:
            try:
                data = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not data:
                break
            chunks.append(data)
    response = b"".join(chunks)
    match = re.match(rb"HTTP/1\.[01] (\d{3})", response)
    return (int(match.group(1)) if match else None), response


def make_identities(*, base_url: str, slug: str, n: int, rng: random.Random) -> list[Identity]:
    """Real participants at various steps (consent, instructions, trials) to aim the fuzz at the views' code."""
    import requests

    from study.bots import read_page

    identities = []
    for i in range(n):
        session = requests.Session()
        page = session.get(f"{base_url}/s/{slug}/", params={"PROLIFIC_PID": f"fuzz-{rng.randrange(10**9)}-{i}"})
        steps = i % 3
        for _ in range(steps):
            reader = read_page(page.text)
            data = {**reader.hidden, "choice": "agree"}
            page = session.post(page.url, data=data)
        reader = read_page(page.text)
        path = page.url.removeprefix(base_url)
        identities.append(
            Identity(page=path, cookies=session.cookies.get_dict(), csrf=reader.hidden.get("csrfmiddlewaretoken", ""))
        )
    return identities


class Fuzzer:
    """Builds one malformed (or valid) participant request at a time from a seeded random generator."""

    def __init__(self, *, slug: str, identities: list[Identity], pilot_token: str, host: str, rng: random.Random):
        self.slug = slug
        self.identities = identities
        self.pilot_token = pilot_token
        self.host = host
        self.rng = rng

    def _value(self) -> str:
        return self.rng.choice(NASTY_NUMBERS if self.rng.random() < 0.7 else NASTY_TEXT)

    def _path(self, identity: Identity) -> bytes:
        r = self.rng.random()
        if r < 0.5:
            return identity.page.encode()
        if r < 0.65:
            query = urlencode(
                {
                    self.rng.choice(["PROLIFIC_PID", "pid", "STUDY_ID", "SESSION_ID", "x"]): self._value()
                    for _ in range(self.rng.randint(1, 4))
                }
            )
            return f"/s/{self.slug}/?{query}".encode()
        if r < 0.72:
            return f"/s/{self.slug}/preview/{self.rng.choice([self.pilot_token, quote(self._value())])}/".encode()
        junk = self.rng.choice(RAW_BYTES)
        return self.rng.choice(
            [
                b"/s/" + self.slug.encode() + b"/p/" + junk + b"/",
                b"/s/" + self.slug.encode() + b"/p/" + quote(self._value()).encode() + b"/",
                b"/s/" + junk + b"/",
                b"/s/" + self.slug.encode() + b"/?PROLIFIC_PID=" + junk,
                b"/s/" + self.slug.encode() + b"/p/" + b"A" * self.rng.choice([63, 64, 65, 300, 3000]) + b"/",
                identity.page.encode() + b"?" + junk + b"=" + junk,
                b"/s/" + self.slug.encode() + b"//p//",
                b"/s/" + self.slug.encode() + b"/p/%2e%2e/%2e%2e/",
            ]
        )

    def _form(self, identity: Identity) -> bytes:
        fields: list[tuple[str, str]] = []
        if self.rng.random() < 0.85:
            fields.append(("csrfmiddlewaretoken", identity.csrf))
        fields.append(("step", self.rng.choice(STEPS)))
        for name in [
            "trial",
            "artistry",
            "symbolism",
            "rt_ms",
            "rt_ms_artistry",
            "rt_ms_symbolism",
            "choice",
            "age_band",
            "gender",
            "art_training",
            "art_expertise",
            "comment",
        ]:
            if self.rng.random() < 0.5:
                fields.append((name, self._value()))
        for _ in range(self.rng.choice([0, 0, 0, 1, 5, 50, 1500])):
            fields.append((self._value()[:20] or "k", "v"))
        body = urlencode(fields, encoding="utf-8", errors="surrogatepass").encode()
        if self.rng.random() < 0.2:
            body += b"&" + self.rng.choice(RAW_BYTES) + b"=" + self.rng.choice(RAW_BYTES)
        if self.rng.random() < 0.05:
            body += b"&comment=" + b"x" * self.rng.choice([70_000, 300_000, 3_000_000])
        return body

    def request(self) -> bytes:
        rng = self.rng
        identity = rng.choice(self.identities)
        r = rng.random()
        method = b"POST" if r < 0.55 else b"GET" if r < 0.85 else rng.choice(METHODS).encode()
        path = self._path(identity)
        headers = [
            b"Host: "
            + (
                self.host.encode()
                if rng.random() < 0.97
                else rng.choice([b"evil.example", b"127.0.0.1:1", b"\xff", b"a" * 300])
            )
        ]
        if rng.random() < 0.85:
            cookies = dict(identity.cookies)
            if rng.random() < 0.1:
                cookies = {k: rng.choice([v[::-1], v + "x", self._value()[:100], ""]) for k, v in cookies.items()}
            cookie = "; ".join(f"{k}={v}" for k, v in cookies.items()).encode("utf-8", "surrogatepass")
            headers.append(b"Cookie: " + cookie.replace(b"\r", b"").replace(b"\n", b""))
        body = b""
        if method in {b"POST", b"PUT", b"PATCH", b"DELETE"} or rng.random() < 0.05:
            kind = rng.random()
            if kind < 0.7:
                charset = rng.choice(CHARSETS) if rng.random() < 0.3 else ""
                content_type = "application/x-www-form-urlencoded" + charset
                body = self._form(identity)
                if "utf-16" in content_type and rng.random() < 0.5:
                    body = body.decode("utf-8", "replace").encode("utf-16")
            elif kind < 0.85:
                boundary = rng.choice(["b0undary", "", "x" * 80, "\x00"])
                content_type = f"multipart/form-data; boundary={boundary}"
                body = (
                    f'--{boundary}\r\nContent-Disposition: form-data; name="step"\r\n\r\ntrials\r\n'
                    f'--{boundary}\r\nContent-Disposition: form-data; name="artistry"\r\n\r\n{self._value()}'
                    f"\r\n" + rng.choice([f"--{boundary}--\r\n", "", "--"])
                ).encode("utf-8", "surrogatepass")
            else:
                content_type = rng.choice(
                    [
                        "application/json",
                        "text/plain; charset=utf-16",
                        "",
                        "x/y; a=b",
                        "application/x-www-form-urlencoded; charset=utf-16; boundary=x",
                    ]
                )
                body = rng.choice([b'{"step": "trials"}', b"\x00" * 100, b"\xff" * 1000, b"step=trials"])
            headers.append(b"Content-Type: " + content_type.encode("utf-8", "surrogatepass"))
            length = len(body)
            if rng.random() < 0.03:
                length = rng.choice([-1, 0, max(0, len(body) - 3)])  # never longer than the body: no hanging
            headers.append(b"Content-Length: " + str(length).encode())
        headers.append(b"Connection: close")
        return method + b" " + path + b" HTTP/1.1\r\n" + b"\r\n".join(headers) + b"\r\n\r\n" + body


def fuzz(
    *, base_url: str, study, n: int, seed: int = 0, threads: int = 4, progress: bool = True, identities: int = 9
) -> FuzzResult:
    """Send n fuzzed requests to the participant endpoints; every 5xx or traceback in a response is a failure."""
    from tqdm import tqdm

    host, port = base_url.removeprefix("http://").split(":")
    rng = random.Random(seed)
    people = make_identities(base_url=base_url, slug=study.slug, n=identities, rng=rng)
    result = FuzzResult()
    lock = threading.Lock()
    requests_to_send = []
    fuzzer = Fuzzer(slug=study.slug, identities=people, pilot_token=study.pilot_token, host=f"{host}:{port}", rng=rng)
    for _ in range(n):
        requests_to_send.append(fuzzer.request())

    def send(raw: bytes) -> None:
        try:
            status, response = raw_request(host, int(port), raw)
        except OSError as exc:
            status, response = None, str(exc).encode()
        with lock:
            result.requests += 1
            if status is None:
                result.no_answer += 1
                if len(result.no_answer_examples) < 3:
                    result.no_answer_examples.append(f"{raw[:200]!r} -> {response[:200]!r}")
                return
            result.statuses[status] += 1
            if status >= 500 or b"Traceback (most recent call last)" in response:
                result.failures.append(f"{status}: {raw[:300]!r} -> {response[:300]!r}")

    with (
        ThreadPoolExecutor(max_workers=threads) as pool,
        tqdm(total=n, desc="fuzz", disable=not progress, leave=False) as bar,
    ):
        for future in as_completed([pool.submit(send, raw) for raw in requests_to_send]):
            future.result()
            bar.update(1)
    return result


# --- the bench -----------------------------------------------------------------------------------------------------


def free_port(preferred: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
        except OSError:
            s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def database(args) -> Iterator[tuple[str, PrivateCluster | None]]:
    """A throw-away database: on a private cluster (restartable) when possible, else on the shared server."""
    import psycopg

    cluster = None
    if not args.shared_pg and PrivateCluster.available():
        cluster = PrivateCluster(port=free_port(args.pg_port))
        print(f"private PostgreSQL {cluster.version} cluster {cluster.name!r} on port {cluster.port}")
        cluster.create()
        server = cluster.url
    else:
        server = args.shared_pg or "postgres://postgres@127.0.0.1:5432"
        reason = "as asked" if args.shared_pg else "pg_createcluster is missing or we are not root"
        print(f"shared server {server} ({reason}): the database is not restarted")
    name = f"faults_{os.getpid()}"
    try:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        yield f"{server}/{name}", cluster
    finally:
        from django.db import connections

        connections.close_all()
        if cluster is not None:
            cluster.drop()
        else:
            with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=50, help="concurrent bots in the fault run (0: skip)")
    parser.add_argument("--fuzz", type=int, default=10_000, help="fuzzed requests (0: skip)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--port", type=int, default=2150, help="gunicorn port on 127.0.0.1")
    parser.add_argument("--pg-port", type=int, default=2151, help="port of the private PostgreSQL cluster")
    parser.add_argument("--shared-pg", default="", help="use this server (no restart) instead of a private cluster")
    parser.add_argument("--kills", type=int, default=3, help="workers killed with SIGKILL during the fault run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-seconds", type=int, default=1800, help="give up (and clean up) after this long")
    args = parser.parse_args()

    def out_of_time(_signum, _frame) -> None:
        raise SystemExit(f"FAIL: still running after {args.max_seconds} s")

    signal.signal(signal.SIGALRM, out_of_time)  # SystemExit unwinds through the finally blocks: nothing is left
    signal.alarm(args.max_seconds)

    var = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    log_path = var / "gunicorn.log"
    server = None
    with database(args) as (database_url, cluster):
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "VAR_DIR": str(var),
            "DEBUG": "false",
            "CELERY_BROKER_URL": "",
            "DJANGO_SETTINGS_MODULE": "config.settings.base",
            "LOG_LEVEL": "WARNING",
            "CONN_MAX_AGE": "60",
            "SECRET_KEY": f"faults-{os.getpid()}-" + "k" * 50,
            "PSEUDONYM_KEY": "faults-pseudonyms",
            "RATELIMIT_ENABLE": "false",
            "PYTHONUNBUFFERED": "1",
        }
        os.environ.update(env)
        try:
            subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
            import django

            django.setup()
            from bench.study import StudyKind, make_stimuli, make_study

            stimulus_set = make_stimuli(48)
            rating = StudyKind(task="rating")
            port = free_port(args.port)
            base = f"http://127.0.0.1:{port}"
            server = start_gunicorn(env=env, port=port, workers=args.workers, log_path=log_path)
            wait_until_serving(base, process=server)
            ok = True

            if args.fuzz:
                study = make_study(slug="fuzz", kind=rating, stimulus_set=stimulus_set, pairs=0)
                started = time.perf_counter()
                result = fuzz(base_url=base, study=study, n=args.fuzz, seed=args.seed)
                logged = log_tracebacks(log_path.read_text(errors="replace"))
                print(
                    f"\nfuzz: {result.requests} requests in {time.perf_counter() - started:.0f} s, "
                    f"{result.server_errors} x 5xx, {len(logged)} tracebacks/errors in the server log, "
                    f"{result.no_answer} closed without an answer"
                )
                print("  statuses: " + ", ".join(f"{s}: {n}" for s, n in sorted(result.statuses.items())))
                for example in result.no_answer_examples:
                    print(f"  closed without an answer: {example}")
                for failure in (result.failures + logged)[:5]:
                    print(f"  FAIL {failure[:600]}")
                ok &= not result.failures and not logged

            if not args.participants:
                print("\nPASS" if ok else "\nFAIL")
                return 0 if ok else 1
            study = make_study(slug="faults", kind=rating, stimulus_set=stimulus_set, pairs=0)
            trials = study.trials_per_participant + study.practice_trials + study.attention_checks
            expected_ratings = args.participants * trials
            rng = random.Random(args.seed)
            restarts = 1 if cluster is not None else 0
            plan = [("kill", (i + 1) / (args.kills + 1)) for i in range(args.kills)]
            plan += [("restart", 0.4 + 0.3 * i) for i in range(restarts)]

            def kill() -> str:
                return f"worker {kill_a_worker(server, rng)}"

            def restart() -> str:
                began = time.perf_counter()
                cluster.restart()
                return f"{time.perf_counter() - began:.1f} s"

            started = time.perf_counter()
            with Chaos(
                plan=plan, expected_ratings=expected_ratings, actions={"kill": kill, "restart": restart}
            ) as chaos:
                outcomes = drive_participants(
                    base_url=base,
                    study=study,
                    n=args.participants,
                    concurrency=args.participants,
                    on_rating=chaos.rating_done,
                )
            from django.db import connections

            connections.close_all()  # ours died with the restart; health checks only run inside requests
            report = reconcile(study=study, outcomes=outcomes)
            print(
                f"\nfaults: {args.participants} participants at once, gunicorn {args.workers} workers, "
                f"{len(chaos.fired)} faults ({', '.join(chaos.fired) or 'none'}), "
                f"{time.perf_counter() - started:.0f} s"
            )
            print(
                f"  {report.bots_completed}/{args.participants} completed, {report.reloads} reloads, "
                f"{report.acknowledged} acknowledged answers, {report.stored} stored"
            )
            print(
                f"  lost: {report.lost}, duplicated: {report.duplicated}, "
                f"stored without acknowledgement: {report.unacknowledged}"
            )
            for error in report.bot_errors[:5]:
                print(f"  bot failed: {error}")
            ok &= report.ok and len(chaos.fired) == len(plan)
            print("\nPASS" if ok else "\nFAIL")
            return 0 if ok else 1
        finally:
            stop(server)
            shutil.rmtree(var, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
