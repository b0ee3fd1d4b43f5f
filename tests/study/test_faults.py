"""Short forms of bench/faults.py: fuzzing real gunicorn workers, killing one with SIGKILL under concurrent
participants, and bots that reload through dropped connections. Each compares what the site acknowledged with the
database. The bench runs the long forms (10,000 fuzzed requests; PostgreSQL restarted on a private cluster)."""

from __future__ import annotations

import contextlib
import itertools
import random
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from bench.faults import (
    Chaos,
    drive_participants,
    fuzz,
    kill_a_worker,
    log_tracebacks,
    reconcile,
    start_gunicorn,
    stop,
    wait_until_serving,
)
from study.models import Participant, Rating
from tests.conftest import database_url_for_test_db, subprocess_env
from tests.study.factories import make_study

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def gunicorn(tmp_path) -> Iterator[tuple[str, object, Path]]:
    """Two gunicorn workers on the test database (committed data only: transactional tests)."""
    port = free_port()
    log = tmp_path / "gunicorn.log"
    env = subprocess_env(
        DATABASE_URL=database_url_for_test_db(),
        DEBUG="false",
        RATELIMIT_ENABLE="false",
        LOG_LEVEL="WARNING",
        SECRET_KEY=settings.SECRET_KEY,
        PSEUDONYM_KEY=settings.PSEUDONYM_KEY,
        MEDIA_ROOT=str(settings.MEDIA_ROOT),
        VAR_DIR=str(tmp_path),
        CELERY_BROKER_URL="",
    )
    process = start_gunicorn(env=env, port=port, workers=2, threads=4, log_path=log)
    try:
        wait_until_serving(f"http://127.0.0.1:{port}", process=process)
        yield f"http://127.0.0.1:{port}", process, log
    finally:
        stop(process)


def test_fuzzing_the_participant_endpoints_gives_no_5xx_and_no_traceback(gunicorn, stimulus_set):
    base, _, log = gunicorn
    study = make_study(stimulus_set=stimulus_set)
    result = fuzz(base_url=base, study=study, n=1000, seed=11, threads=4, progress=False)
    assert result.requests == 1000
    assert result.server_errors == 0, result.failures[:3]
    assert result.failures == []
    assert log_tracebacks(log.read_text(errors="replace")) == []
    assert sum(n for status, n in result.statuses.items() if 400 <= status < 500) > 500  # mostly refused
    assert result.statuses[303] > 0  # and some real answers went through


def test_killing_a_worker_under_concurrent_participants_loses_and_duplicates_nothing(gunicorn, stimulus_set):
    base, master, _ = gunicorn
    study = make_study(stimulus_set=stimulus_set)
    n = 8
    expected = n * (study.trials_per_participant + study.practice_trials + study.attention_checks)
    rng = random.Random(5)
    with Chaos(
        plan=[("kill", 0.25), ("kill", 0.6)],
        expected_ratings=expected,
        log=lambda _line: None,
        actions={"kill": lambda: f"worker {kill_a_worker(master, rng)}"},
    ) as chaos:
        outcomes = drive_participants(
            base_url=base, study=study, n=n, concurrency=n, on_rating=chaos.rating_done, progress=False, seed=3
        )
    assert len(chaos.fired) == 2 and all("worker None" not in f for f in chaos.fired), chaos.fired
    report = reconcile(study=study, outcomes=outcomes)
    assert report.bot_errors == []
    assert report.bots_completed == n
    assert (report.lost, report.duplicated, report.unacknowledged) == (0, 0, 0)
    assert report.acknowledged == report.stored == Rating.objects.filter(trial__participant__study=study).count()
    trials = Rating.objects.filter(trial__participant__study=study).values("trial").distinct().count()
    assert trials == expected  # every screen of every participant answered once, none lost to the kills


class DroppingProxy:
    """Loopback TCP proxy that loses every `every`-th response: the server did the work, the client never hears.

    That is what a participant sees when a connection drops mid-answer; the bots must reload and carry on.
    """

    def __init__(self, upstream: tuple[str, int], every: int) -> None:
        self.upstream = upstream
        self.every = every
        self.responses = itertools.count(1)
        self.dropped = 0
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.closing = False
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closing:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(self.upstream)
        self.open += [client, upstream]

        def forward() -> None:
            try:
                while data := client.recv(65536):
                    upstream.sendall(data)
            except OSError:
                pass

        threading.Thread(target=forward, daemon=True).start()
        try:
            while data := upstream.recv(65536):
                if re.match(rb"HTTP/1\.[01] \d{3}", data) and next(self.responses) % self.every == 0:
                    self.dropped += 1
                    break  # the answer is lost
                client.sendall(data)
        except OSError:
            pass
        finally:
            # shutdown, not just close: another thread is blocked in recv() on these sockets, and close() alone
            # would not send the FIN until that call returns, leaving the bot waiting for its timeout.
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def close(self) -> None:
        """Stop, and end every proxied connection so the server's threads (and their database sessions) end."""
        self.closing = True
        self.server.close()
        for sock in self.open:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def test_run_bots_over_http_survive_dropped_connections(live_server, stimulus_set, capsys):
    study = make_study(stimulus_set=stimulus_set)
    host, port = live_server.url.removeprefix("http://").split(":")
    proxy = DroppingProxy((host, int(port)), every=7)
    try:
        call_command(
            "run_bots",
            study.slug,
            "--participants",
            "4",
            "--base-url",
            f"http://127.0.0.1:{proxy.port}",
            "--concurrency",
            "2",
            "--seed",
            "9",
        )
    finally:
        proxy.close()
    out = capsys.readouterr().out
    assert proxy.dropped >= 5
    assert "completed: 4" in out and "error" not in out
    reloaded = int(re.search(r"(\d+) pages reloaded", out).group(1))
    assert reloaded >= proxy.dropped
    trials = study.trials_per_participant + study.practice_trials + study.attention_checks
    assert Participant.objects.filter(study=study, step="done").count() == 4
    for participant in Participant.objects.filter(study=study):
        # every trial answered exactly once although some answers' responses were lost on the way
        assert participant.trials.filter(answered_at__isnull=False).count() == trials
        assert Rating.objects.filter(trial__participant=participant).values("trial").distinct().count() == trials


def test_the_bench_restarts_its_own_database_and_loses_nothing(tmp_path):
    """bench/faults.py in short form: a private cluster restarted (a crash) and a worker killed under 6 people."""
    import subprocess
    import sys

    from bench.faults import PrivateCluster
    from tests.conftest import ROOT

    if not PrivateCluster.available():
        pytest.skip("needs root and pg_createcluster (Debian's postgresql-common) for a restartable cluster")
    result = subprocess.run(
        [
            sys.executable,
            "bench/faults.py",
            "--participants",
            "6",
            "--fuzz",
            "200",
            "--workers",
            "2",
            "--kills",
            "1",
            "--port",
            "0",
            "--pg-port",
            "0",
            "--max-seconds",
            "400",
        ],
        cwd=ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=450,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "restart (" in result.stdout and "kill (" in result.stdout
    assert "lost: 0, duplicated: 0, stored without acknowledgement: 0" in result.stdout
    assert "fuzz: 200 requests" in result.stdout and " 0 x 5xx" in result.stdout
