"""Runs style-transfer and DeepDream recipes: load inputs, optimise, encode each snapshot. No database.

Images enter as RGB uint8, resized with Lanczos so the longer side is the recipe's size, and become float32 in
[0, 1]; results leave as floor(clip(x, 0, 1)·255 + 0.5), PNG-encoded like generator stimuli.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from generation.backbones import Backbone
from generation.descriptors import describe, png_bytes
from generation.optimisations import OptimisationRecipe
from generation.pipeline import RenderedImage
from generation.weights import atomic_write_bytes

# An input image as RGB uint8 for a role's source ({"path", "sha256"} or {"recipe"}).
InputLoader = Callable[[dict[str, Any]], np.ndarray]


def fit(rgb: np.ndarray, size: int | None) -> np.ndarray:
    """Resize (Lanczos) so that the longer side is `size`, keeping the aspect ratio; no-op when it already is."""
    if not size:
        return rgb
    height, width = rgb.shape[:2]
    scale = size / max(height, width)
    target = (max(1, round(width * scale)), max(1, round(height * scale)))
    if target == (width, height):
        return rgb
    return np.asarray(Image.fromarray(rgb, "RGB").resize(target, Image.Resampling.LANCZOS))


def read_image(path: Path, *, sha256: str | None = None) -> np.ndarray:
    data = path.read_bytes()
    if sha256 and hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError(f"input {path} changed: its sha256 is not the recipe's {sha256[:12]}…")
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def to_tensor(rgb: np.ndarray, device: torch.device | str) -> torch.Tensor:
    return torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(2, 0, 1).unsqueeze(0).contiguous().to(device)


def to_rgb(x: torch.Tensor) -> np.ndarray:
    scaled = torch.floor(x.detach().float().clamp(0, 1) * 255 + 0.5).to(torch.uint8)
    return scaled[0].permute(1, 2, 0).cpu().numpy()


def encode(recipe: OptimisationRecipe, rgb: np.ndarray, destination: Path) -> RenderedImage:
    data = png_bytes(rgb)
    atomic_write_bytes(destination, data)
    return RenderedImage(
        recipe=recipe,
        path=destination,
        sha256=hashlib.sha256(data).hexdigest(),  # type: ignore[arg-type]
        width=rgb.shape[1],
        height=rgb.shape[0],
        descriptors=describe(rgb, png_size=len(data)),
    )


def group_runs(recipes: Sequence[OptimisationRecipe]) -> list[list[OptimisationRecipe]]:
    """Snapshots of one run (same everything but the iteration count) are computed by one optimisation."""
    runs: dict[str, list[OptimisationRecipe]] = {}
    for recipe in recipes:
        runs.setdefault(recipe.run_key(), []).append(recipe)
    return list(runs.values())


def render_optimisations(
    recipes: Sequence[OptimisationRecipe],
    *,
    backbone: Callable[[OptimisationRecipe], Backbone],
    load_input: InputLoader,
    destination: Callable[[OptimisationRecipe], Path],
    on_image: Callable[[RenderedImage], None],
) -> None:
    """Render the recipes run by run; each finished image (already written) goes to on_image."""
    for run in group_runs(recipes):
        first = run[0]
        network = backbone(first)
        device = network.device
        by_iteration = {r.iteration: r for r in run}
        if first.kind == "style-transfer":
            size = first.params["size"]
            content = to_tensor(fit(load_input(first.inputs["content"]), size), device)
            style = to_tensor(fit(load_input(first.inputs["style"]), size), device)
            from generation.style_transfer import style_transfer

            def snapshot(iteration: int, image: torch.Tensor, by_iteration=by_iteration) -> None:
                recipe = by_iteration[iteration]
                on_image(encode(recipe, to_rgb(image), destination(recipe)))

            style_transfer(
                network, content=content, style=style, params=first.params, snapshots=by_iteration, on_snapshot=snapshot
            )
        else:
            from generation.deepdream import deepdream

            base = to_tensor(fit(load_input(first.inputs["base"]), first.params.get("size")), device)
            for recipe in run:  # a DeepDream run has no snapshots: each recipe is its own run
                image = deepdream(network, base=base, params=recipe.params)
                on_image(encode(recipe, to_rgb(image), destination(recipe)))
