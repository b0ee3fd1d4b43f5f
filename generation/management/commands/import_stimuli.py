"""`import_stimuli DIR --labels labels.csv --set NAME`: external images (artworks, style transfer) as stimuli."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandParser

from generation.services import stimuli_import


class Command(BaseCommand):
    help = "Import a folder of images with a labels CSV (columns filename, condition, any others → labels)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", type=Path)
        parser.add_argument("--labels", type=Path, required=True)
        parser.add_argument("--set", dest="set_name", required=True)

    def handle(self, *args, directory: Path, labels: Path, set_name: str, **options) -> None:
        created, skipped = stimuli_import(directory=directory, labels_csv=labels, set_name=set_name)
        self.stdout.write(f"set {set_name}: imported {created} images, {skipped} already there")
