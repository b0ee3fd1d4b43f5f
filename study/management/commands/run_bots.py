"""`manage.py run_bots SLUG --participants N`: simulated participants through the real pages."""

from __future__ import annotations

import random
import statistics
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml
from django.core.management.base import BaseCommand
from tqdm import tqdm

from config.errors import SetupError
from study.bots import AnswerModel, BotError, DjangoClientTransport, HttpTransport, run_bot, stimulus_truth
from study.models import Study


class Command(BaseCommand):
    help = "Walk N bots through the study (in-process by default, or over HTTP with --base-url)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--participants", type=int, default=10)
        parser.add_argument("--seed", type=int, default=0, help="Bots with the same seed reuse the same ids.")
        parser.add_argument("--base-url", default="", help="e.g. http://127.0.0.1:8000 (default: in-process)")
        parser.add_argument("--concurrency", type=int, default=1, help="Parallel bots (with --base-url).")
        parser.add_argument("--model", type=Path, help="YAML answer model (default: the study file's bots: section)")

    def handle(
        self,
        *args,
        slug: str,
        participants: int,
        seed: int,
        base_url: str,
        concurrency: int,
        model: Path | None,
        **options,
    ) -> None:
        study = Study.objects.filter(slug=slug).first()
        if study is None:
            raise SetupError(f"no study {slug!r}; load it first: python manage.py load_study STUDY.yaml")
        if study.status not in {Study.Status.LIVE, Study.Status.PILOT}:
            raise SetupError(
                f"study {slug!r} is {study.status}; bots need it live or pilot "
                "(python manage.py load_study FILE --publish, or the admin's publish action)"
            )
        settings = yaml.safe_load(model.read_text()) if model else (study.source or {}).get("bots")
        try:
            answer_model = AnswerModel.from_mapping(settings)
        except ValueError as exc:
            raise SetupError(str(exc)) from None
        truth = stimulus_truth(study=study)

        def one(i: int):
            transport = HttpTransport(base_url) if base_url else DjangoClientTransport()
            rng = random.Random(f"{seed}:{i}")
            return run_bot(
                transport=transport, slug=slug, pid=f"bot-s{seed}-{i:05d}", model=answer_model, truth=truth, rng=rng
            )

        results = Counter()
        latencies: list[float] = []
        ratings = failed_checks = reloads = 0
        errors: list[str] = []

        def collect(get_outcome) -> None:
            nonlocal ratings, failed_checks, reloads
            try:
                outcome = get_outcome()
            except BotError as exc:
                errors.append(str(exc))
                results["error"] += 1
                reloads += exc.outcome.reloads if exc.outcome else 0
            else:
                reloads += outcome.reloads
                results[outcome.result] += 1
                ratings += outcome.ratings
                failed_checks += outcome.attention_failed
                latencies.extend(outcome.latencies_ms)

        with tqdm(total=participants, desc="bots") as bar:
            if base_url and concurrency > 1:
                with ThreadPoolExecutor(max_workers=concurrency) as pool:
                    for future in [pool.submit(one, i) for i in range(participants)]:
                        collect(future.result)
                        bar.update(1)
            else:
                # In-process bots stay on this thread: its database connection is the one that sees the data.
                for i in range(participants):
                    collect(lambda i=i: one(i))
                    bar.update(1)
        summary = ", ".join(f"{k}: {v}" for k, v in sorted(results.items()))
        self.stdout.write(
            f"{participants} bots on {slug!r}: {summary}; {ratings} ratings; "
            f"{failed_checks} attention checks failed; {reloads} pages reloaded after a failure"
        )
        if latencies:
            self.stdout.write(
                f"rating submission latency: median {statistics.median(latencies):.1f} ms, "
                f"max {max(latencies):.1f} ms over {len(latencies)} trials"
            )
        if errors:
            raise SetupError(f"{len(errors)} bot(s) failed, first: {errors[0]}")
