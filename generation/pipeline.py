"""The render loop: perturb a network once, run its recipes in fixed-size batches, encode while computing.

Knows nothing of the database: `render` hands finished images (already written atomically) to a
callback, which the Celery task uses to record stimuli and the benchmark uses to count.
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from generation.descriptors import describe, png_bytes
from generation.files import write_stimulus_file
from generation.generators import GeneratorAdapter
from generation.perturbation import perturbed
from generation.recipes import Recipe


@dataclass
class RenderedImage:
    recipe: Recipe
    path: Path
    sha256: str
    width: int
    height: int
    descriptors: dict[str, float]
    extra: dict[str, Any] = field(default_factory=dict)


def configure_torch(threads: int) -> None:
    """Bytes are only reproducible at a fixed thread count (1 and 2 threads differ), and with
    deterministic cuDNN kernels on a GPU."""
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


def pick_device(preference: str = "auto") -> str:
    if preference == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return preference


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[-1, 1] → uint8 as the package's convert_to_images does: floor(clip((x + 1)/2 · 256, 0, 255))."""
    scaled = ((images.float() + 1) * 128).clamp_(0, 255).to(torch.uint8)
    return scaled.permute(0, 2, 3, 1).cpu().numpy()


def encode_image(recipe: Recipe, rgb: np.ndarray, destination: Path) -> RenderedImage:
    """Resize if asked, PNG-encode, write atomically, describe. Runs in the encoder threads."""
    if recipe.size and recipe.size != rgb.shape[0]:
        rgb = np.asarray(Image.fromarray(rgb, "RGB").resize((recipe.size, recipe.size), Image.Resampling.LANCZOS))
    data = png_bytes(rgb)
    write_stimulus_file(destination, data)
    return RenderedImage(
        recipe=recipe,
        path=destination,
        sha256=hashlib.sha256(data).hexdigest(),
        width=rgb.shape[1],
        height=rgb.shape[0],
        descriptors=describe(rgb, png_size=len(data)),
    )


def network_context(adapter: GeneratorAdapter, recipe: Recipe) -> AbstractContextManager:
    """The perturbed network a recipe needs (a no-op for baseline and per-image semantic modes)."""
    if not recipe.modifies_weights:
        return nullcontext()
    p = recipe.perturbation
    names = adapter.target_names(p["targets"]) if p["kind"] == "multiplicative" else adapter.embedding_names()
    return perturbed(
        adapter.model,
        names,
        epsilon=p["epsilon"],
        seed=p["seed"],
        draw=recipe.draw,
        noise=p.get("noise", "normal"),
        spectral_norm=p.get("spectral_norm", "frozen"),
    )


def group_by_network(recipes: Iterable[Recipe]) -> list[list[Recipe]]:
    groups: dict[str, list[Recipe]] = {}
    for recipe in recipes:
        groups.setdefault(recipe.network_key(), []).append(recipe)
    return list(groups.values())


def _chunks(items: Sequence[Recipe], size: int) -> Iterator[Sequence[Recipe]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def render(
    adapter: GeneratorAdapter,
    recipes: Sequence[Recipe],
    *,
    destination: Callable[[Recipe], Path],
    on_batch: Callable[[list[RenderedImage]], None],
    encode_workers: int | None = None,
    lookahead: int = 2,
) -> None:
    """Render the recipes; each finished batch (files already in place) goes to on_batch, in order.

    While the network computes batch n+1, threads encode, write and describe batch n; at most
    `lookahead` batches wait, which bounds memory.
    """
    if encode_workers is None:  # measured on 2 cores with 1 torch thread: 2 encoders beat 1 by 1.6x
        encode_workers = max(2, min(4, (os.cpu_count() or 2) - torch.get_num_threads()))
    with ThreadPoolExecutor(max_workers=encode_workers, thread_name_prefix="encode") as pool:
        pending: deque[list[Future[RenderedImage]]] = deque()

        def flush(keep: int) -> None:
            while len(pending) > keep:
                finished = [future.result() for future in pending.popleft()]
                for image in finished:
                    if (image.recipe.perturbation or {}).get("mode") == "class-mix":
                        image.extra["mix_classes"] = adapter.mix_classes(image.recipe)
                on_batch(finished)

        for group in group_by_network(recipes):
            batch_size = group[0].batch_size
            with network_context(adapter, group[0]):
                for chunk in _chunks(group, batch_size):
                    arrays = to_uint8(adapter.generate(chunk, batch_size))
                    pending.append(
                        [
                            pool.submit(encode_image, recipe, rgb, destination(recipe))
                            for recipe, rgb in zip(chunk, arrays, strict=True)
                        ]
                    )
                    flush(lookahead)
        flush(0)
