"""`render_recipe (PUBLIC_ID | recipe.json) --out FILE.png`: regenerate one image from its recipe and compare bytes."""

from __future__ import annotations

import hashlib
import json
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
        parser.add_argument(
            "--backbone",
            help="style transfer/DeepDream: backbone name or folder (default: the "
            "recipe's backbone in WEIGHTS_DIR, or where the stimulus was rendered from)",
        )

    def handle(self, *args, source: str, out: Path, model: str | None, **options) -> None:
        if _optimisation_source(source):
            self.stdout.write(render_optimisation(source, out=out, model=model, backbone=options.get("backbone")))
            return
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
            raise CommandError(
                f"{folder} holds other weights than the recipe's (sha256 {info.sha256[:12]}… ≠ "
                f"{recipe.model['sha256'][:12]}…)"
            )
        configure_torch(int(settings.TORCH_NUM_THREADS))
        adapter = load_generator(info, device=pick_device(device_preference()), precision=recipe.precision)
        render(adapter, [recipe], destination=lambda r: out, on_batch=lambda batch: None)
        sha = hashlib.sha256(out.read_bytes()).hexdigest()
        verdict = (
            ""
            if expected is None
            else (
                " — identical to the recorded image"
                if sha == expected
                else " — DIFFERS from the recorded image (other device/threads/torch?)"
            )
        )
        self.stdout.write(f"wrote {out} sha256 {sha}{verdict}")


def _optimisation_source(source: str) -> bool:
    from generation.optimisations import is_optimisation

    if Path(source).is_file():
        try:
            return is_optimisation(json.loads(Path(source).read_text()))
        except ValueError:
            return False
    stimulus = Stimulus.objects.filter(public_id=source).first()
    return stimulus is not None and is_optimisation(stimulus.recipe)


def render_optimisation(source: str, *, out: Path, model: str | None, backbone: str | None) -> str:
    """Style transfer / DeepDream: inputs come from MEDIA_ROOT/generation-inputs by sha256."""
    from generation.backbone_catalog import resolve_backbone
    from generation.optimisation_jobs import render_optimisation_recipe
    from generation.optimisations import INPUTS_DIR, OptimisationRecipe

    expected = origin = None
    if Path(source).is_file():
        recipe = OptimisationRecipe.from_json(Path(source).read_text())
    else:
        stimulus = Stimulus.objects.get(public_id=source)
        recipe, expected = OptimisationRecipe.from_dict(stimulus.recipe), stimulus.sha256
        origin = stimulus.provenance.get("backbone_folder")
    info = resolve_backbone(backbone or origin or recipe.backbone["id"], weights_dir=Path(settings.WEIGHTS_DIR))
    folder = resolve_model_folder(model) if model else None
    image = render_optimisation_recipe(
        recipe,
        out=out,
        backbone_folder=info.folder,
        inputs_dir=Path(settings.MEDIA_ROOT) / INPUTS_DIR,
        model_folder=folder,
    )
    verdict = (
        ""
        if expected is None
        else (
            " — identical to the recorded image"
            if image.sha256 == expected
            else " — DIFFERS from the recorded image (other device/threads/torch?)"
        )
    )
    return f"wrote {out} sha256 {image.sha256}{verdict}"
