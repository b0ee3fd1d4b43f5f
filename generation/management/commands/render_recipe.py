"""`render_recipe (PUBLIC_ID | recipe.json) --out FILE.png`: regenerate one image from its recipe and compare bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from generation.models import Stimulus
from generation.pipeline import configure_torch, pick_device, render
from generation.recipes import Recipe
from generation.services import device_preference
from generation.weights import load_generator, model_info, resolve_model_folder


class Command(BaseCommand):
    help = "Re-render a stimulus from its recorded recipe; reports whether the bytes equal the recorded sha256."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("source", help="a stimulus public id, or a JSON file holding one recipe")
        parser.add_argument("--out", type=Path, required=True)
        parser.add_argument("--model", help="model name or folder (default: where the stimulus was rendered from)")

    def handle(self, *args, source: str, out: Path, model: str | None, **options) -> None:
        expected = None
        if Path(source).is_file():
            recipe = Recipe.from_json(Path(source).read_text())
            origin = None
        else:
            stimulus = Stimulus.objects.filter(public_id=source).first()
            if stimulus is None or not stimulus.recipe.get("model"):
                raise CommandError(f"no rendered stimulus with public id {source!r}")
            recipe, expected = Recipe.from_dict(stimulus.recipe), stimulus.sha256
            origin = stimulus.provenance.get("source")
        folder = resolve_model_folder(model or origin or recipe.model["id"])
        info = model_info(folder, model_id=recipe.model["id"])
        if info.sha256 != recipe.model["sha256"]:
            raise CommandError(f"{folder} holds other weights than the recipe's (sha256 {info.sha256[:12]}… ≠ "
                               f"{recipe.model['sha256'][:12]}…)")
        configure_torch(int(settings.TORCH_NUM_THREADS))
        adapter = load_generator(info, device=pick_device(device_preference()), precision=recipe.precision)
        render(adapter, [recipe], destination=lambda r: out, on_batch=lambda batch: None)
        sha = hashlib.sha256(out.read_bytes()).hexdigest()
        verdict = "" if expected is None else (" — identical to the recorded image" if sha == expected
                                               else " — DIFFERS from the recorded image (other device/threads/torch?)")
        self.stdout.write(f"wrote {out} sha256 {sha}{verdict}")
