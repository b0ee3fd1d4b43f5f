"""`biggan_weights make-random DIR --preset tiny --seed 0` and `biggan_weights download biggan-deep-256`."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from tqdm import tqdm

from generation.generators import BIGGAN_PRETRAINED
from generation.weights import PRESETS, download, make_random


class Command(BaseCommand):
    help = "Make a random-weight BigGAN folder (tests, offline demos) or download released BigGAN-deep weights."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        random = sub.add_parser("make-random", help="write DIR/config.json + DIR/pytorch_model.bin with random weights")
        random.add_argument("folder", type=Path)
        random.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
        random.add_argument("--seed", type=int, default=0)
        fetch = sub.add_parser("download", help="fetch released weights into WEIGHTS_DIR/<name>")
        fetch.add_argument("name", choices=BIGGAN_PRETRAINED)
        fetch.add_argument("--timeout", type=float, default=30.0, help="seconds without data before giving up")

    def handle(self, *args, action: str, **options) -> None:
        if action == "make-random":
            folder = options["folder"]
            sha = make_random(folder, preset=options["preset"], seed=options["seed"])
            self.stdout.write(
                f"wrote {folder} (preset {options['preset']}, seed {options['seed']}, "
                f"sha256 {sha[:12]}…): untrained random weights — for tests and demos only"
            )
            return
        weights_dir = Path(settings.WEIGHTS_DIR)
        bar = tqdm(unit="B", unit_scale=True, desc=options["name"], disable=None)

        def progress(n: int, total: int | None) -> None:
            if total and bar.total != total:
                bar.total = total
            bar.update(n)

        try:
            folder = download(options["name"], weights_dir=weights_dir, timeout=options["timeout"], progress=progress)
        finally:
            bar.close()
        self.stdout.write(f"downloaded {options['name']} into {folder} (sha256 recorded in weights.json)")
