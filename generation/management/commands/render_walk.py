"""`render_walk MODEL --out DIR`: a latent walk between two seeds and/or classes (PNG frames + WebP + GIF)."""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from generation.classes import class_index
from generation.pipeline import configure_torch, pick_device
from generation.recipes import Recipe
from generation.services import device_preference, model_id_for
from generation.spec import SpecError, parse_condition
from generation.walks import render_walk, walk_recipes
from generation.weights import load_generator, model_info, resolve_model_folder


def _class(value: str | None) -> int | None:
    if value is None:
        return None
    if value.isdigit():
        return int(value)
    try:
        return class_index(value)
    except ValueError as exc:
        raise SpecError("class", str(exc)) from None


class Command(BaseCommand):
    help = "Render a latent walk: interpolate z (and the class) from one seed/class to another."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("model", help="pretrained name or model folder")
        parser.add_argument("--out", type=Path, required=True)
        parser.add_argument("--from-seed", type=int, default=0)
        parser.add_argument("--to-seed", type=int, default=1)
        parser.add_argument("--from-class", help="ImageNet index or name (BigGAN)")
        parser.add_argument("--to-class", help="default: the start class")
        parser.add_argument("--frames", type=int, default=16)
        parser.add_argument("--method", choices=["lerp", "slerp"], default="slerp")
        parser.add_argument("--truncation", type=float, default=0.4, help="BigGAN only")
        parser.add_argument("--fps", type=float, default=12.0)
        parser.add_argument("--batch-size", type=int, default=8)
        parser.add_argument(
            "--perturbation",
            help='walk through a perturbed network, e.g. \'{"kind": '
            '"multiplicative", "epsilon": 0.5, "spectral_norm": "renormalise"}\' (draw 0)',
        )

    def handle(self, *args, **o) -> None:
        folder = resolve_model_folder(o["model"])
        info = model_info(folder, model_id=model_id_for(o["model"], folder))
        configure_torch(int(settings.TORCH_NUM_THREADS))
        adapter = load_generator(info, device=pick_device(device_preference()))
        start_class = _class(o["from_class"])
        if adapter.conditional and start_class is None:
            raise SpecError("--from-class", f"required for {adapter.architecture}")
        perturbation = None
        if o["perturbation"]:
            try:
                data = json.loads(o["perturbation"])
            except ValueError as exc:
                raise SpecError("--perturbation", f"is not JSON: {exc}") from None
            try:
                perturbation = parse_condition({"name": "walk", "perturbation": data}, "walk").perturbation
            except SpecError as exc:
                key = "--perturbation" + exc.key.removeprefix("walk.perturbation")
                raise SpecError(key, str(exc).removeprefix(f"{exc.key}: ")) from None
            try:
                if perturbation["kind"] == "multiplicative":
                    adapter.target_names(perturbation["targets"])
                else:
                    adapter.embedding_names()
            except ValueError as exc:
                raise SpecError("--perturbation", str(exc)) from None
        start = Recipe(
            model={"id": info.model_id, "sha256": info.sha256, "architecture": info.architecture},
            seed=o["from_seed"],
            class_index=start_class,
            truncation=o["truncation"] if adapter.conditional else None,
            size=adapter.native_size,
            batch_size=o["batch_size"],
            perturbation=perturbation,
        )
        recipes = walk_recipes(
            start, to_seed=o["to_seed"], to_class=_class(o["to_class"]), frames=o["frames"], method=o["method"]
        )
        frames = render_walk(adapter, recipes, o["out"], fps=o["fps"])
        self.stdout.write(f"wrote {len(frames)} frames, walk.webp and walk.gif to {o['out']}")
