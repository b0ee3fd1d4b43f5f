"""Latent walks: frames between two latent seeds and/or two classes, plus an animated WebP and GIF.

Frame i of n uses t = i/(n-1) and interpolates z (and, for BigGAN, the class vector y) by lerp,
(1-t)·a + t·b, or slerp, sin((1-t)Ω)/sin Ω·a + sin(tΩ)/sin Ω·b. Between two one-hot class
vectors slerp gives the weights cos(tπ/2) and sin(tπ/2).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from PIL import Image

from generation.generators import GeneratorAdapter
from generation.pipeline import RenderedImage, render
from generation.recipes import Recipe
from generation.weights import atomic_write_bytes


def walk_recipes(start: Recipe, *, to_seed: int, to_class: int | None, frames: int, method: str) -> list[Recipe]:
    if frames < 2:
        raise ValueError("a walk needs at least 2 frames")
    if method not in ("lerp", "slerp"):
        raise ValueError(f"method must be lerp or slerp, not {method!r}")
    return [
        replace(
            start,
            walk={
                "to_seed": to_seed,
                "to_class": to_class if to_class is not None else start.class_index,
                "t": i / (frames - 1),
                "method": method,
            },
        )
        for i in range(frames)
    ]


def render_walk(adapter: GeneratorAdapter, recipes: list[Recipe], out_dir: Path, *, fps: float = 12.0) -> list[Path]:
    """Write frame_000.png…, walk.webp, walk.gif and walk.json (the frames' recipes) into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {r.recipe_id: out_dir / f"frame_{i:03d}.png" for i, r in enumerate(recipes)}
    frames: list[RenderedImage] = []
    render(adapter, recipes, destination=lambda r: paths[r.recipe_id], on_batch=frames.extend)
    images = [Image.open(paths[r.recipe_id]).convert("RGB") for r in recipes]
    duration = round(1000 / fps)
    for suffix, options in (("webp", {"lossless": True}), ("gif", {"optimize": False})):
        target = out_dir / f"walk.{suffix}"
        tmp = target.with_name(f".{target.name}.tmp")
        images[0].save(
            tmp, format=suffix.upper(), save_all=True, append_images=images[1:], duration=duration, loop=0, **options
        )
        tmp.replace(target)
    atomic_write_bytes(
        out_dir / "walk.json",
        (
            json.dumps(
                [
                    {
                        "frame": paths[r.recipe_id].name,
                        "recipe_id": r.recipe_id,
                        "recipe": r.to_dict(),
                        "sha256": f.sha256,
                    }
                    for r, f in zip(recipes, frames, strict=True)
                ],
                indent=2,
            )
            + "\n"
        ).encode(),
    )
    return [paths[r.recipe_id] for r in recipes]
