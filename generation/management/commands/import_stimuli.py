"""`import_stimuli DIR --labels labels.csv --set NAME`: external images (artworks, style transfer) as stimuli.

Every image is re-encoded to the set's one format without metadata, so file type and chunks reveal no condition.
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandParser

from generation.files import FORMATS
from generation.services import stimuli_import


class Command(BaseCommand):
    help = "Import a folder of images with a labels CSV (columns filename, condition, any others → labels)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", type=Path)
        parser.add_argument("--labels", type=Path, required=True)
        parser.add_argument("--set", dest="set_name", required=True)
        parser.add_argument(
            "--format",
            dest="image_format",
            choices=sorted(FORMATS),
            default=None,
            help="format of a new set (default png); an existing set keeps its own",
        )

    def handle(self, *args, directory: Path, labels: Path, set_name: str, image_format: str | None, **options) -> None:
        created, skipped = stimuli_import(
            directory=directory, labels_csv=labels, set_name=set_name, image_format=image_format
        )
        self.stdout.write(f"set {set_name}: imported {created} images, {skipped} already there")
