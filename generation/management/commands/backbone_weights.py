"""`backbone_weights download vgg19|nin|googlenet`, `backbone_weights make-random DIR --architecture vgg19`,
`backbone_weights list`: the classification backbones of style transfer and DeepDream."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from tqdm import tqdm

from generation.backbone_catalog import PUBLISHED, resolve_backbone


class Command(BaseCommand):
    help = "Download published backbone weights (VGG-19, NIN, GoogLeNet) or make random-weight ones for tests."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        random = sub.add_parser("make-random", help="write DIR/config.json + DIR/pytorch_model.bin, random weights")
        random.add_argument("folder", type=Path)
        random.add_argument(
            "--architecture", choices=sorted({p.architecture for p in PUBLISHED.values()}), required=True
        )
        random.add_argument(
            "--preset",
            choices=["tiny", "full"],
            default="tiny",
            help="tiny: same keys, few channels (tests); full: the published shapes",
        )
        random.add_argument("--seed", type=int, default=0)
        fetch = sub.add_parser("download", help="fetch published weights into WEIGHTS_DIR/<name>")
        fetch.add_argument("name", choices=sorted(PUBLISHED))
        fetch.add_argument("--timeout", type=float, default=30.0, help="seconds without data before giving up")
        sub.add_parser("list", help="published backbones and whether they are in WEIGHTS_DIR")

    def handle(self, *args, action: str, **options) -> None:
        weights_dir = Path(settings.WEIGHTS_DIR)
        if action == "list":
            for name, published in PUBLISHED.items():
                try:
                    info = resolve_backbone(name, weights_dir=weights_dir)
                    state = f"installed (sha256 {info.sha256[:12]}…{', untrained' if info.untrained else ''})"
                except Exception as exc:  # noqa: BLE001 - any problem is reported as "not installed: why"
                    state = f"not installed: {str(exc).split(':', 1)[0]}"
                self.stdout.write(f"{name:10} ~{published.approx_mb} MB  {published.note}\n           {state}")
            return
        from generation.backbones import download, make_random

        if action == "make-random":
            folder = options["folder"]
            sha = make_random(
                folder, architecture=options["architecture"], preset=options["preset"], seed=options["seed"]
            )
            self.stdout.write(
                f"wrote {folder} ({options['architecture']} {options['preset']}, seed {options['seed']}, "
                f"sha256 {sha[:12]}…): untrained random weights — for tests and demos only"
            )
            return
        name = options["name"]
        bar = tqdm(unit="B", unit_scale=True, desc=name, disable=None)

        def progress(n: int, total: int | None) -> None:
            if total and bar.total != total:
                bar.total = total
            bar.update(n)

        try:
            folder = download(name, weights_dir=weights_dir, timeout=options["timeout"], progress=progress)
        finally:
            bar.close()
        self.stdout.write(f"downloaded {name} into {folder} (sha256 recorded in weights.json)")
