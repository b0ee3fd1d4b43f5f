"""The render-job side of style transfer and DeepDream: run a job's optimisation recipes and record stimuli.

Called by services.render_job_run for jobs whose recipes are optimisations, so these jobs share the generator
jobs' queue (the GPU queue when configured), progress, retry and resume.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from django.conf import settings
from django.db import transaction
from django.db.models import F
from PIL import Image

from generation.backbones import Backbone, backbone_for
from generation.classes import class_name
from generation.models import RenderJob, Stimulus
from generation.optimisation_render import read_image, render_optimisations
from generation.optimisations import OptimisationRecipe, input_file, recipe_labels
from generation.pipeline import RenderedImage, configure_torch, network_context, pick_device, to_uint8
from generation.recipes import Recipe


def generator_image(recipe_data: dict[str, Any], *, model_folder: Path, device: str) -> np.ndarray:
    """A generator stimulus re-rendered in memory: the same pixels as its stored PNG (same recipe, same bytes)."""
    from generation.services import adapter_for

    recipe = Recipe.from_dict(recipe_data)
    adapter = adapter_for(model_folder, sha256=recipe.model["sha256"], precision=recipe.precision, device=device)
    with network_context(adapter, recipe):
        rgb = to_uint8(adapter.generate([recipe], recipe.batch_size))[0]
    if recipe.size and recipe.size != rgb.shape[0]:
        rgb = np.asarray(Image.fromarray(rgb, "RGB").resize((recipe.size, recipe.size), Image.Resampling.LANCZOS))
    return rgb


def render_optimisation_job(job: RenderJob, on_progress: Callable[[int], None] | None) -> None:
    from generation.services import STIMULI_DIR, device_preference, job_resume, stimulus_token

    stimulus_set = job.stimulus_set
    items = job.payload["items"]
    conditions = {}
    folders = {}
    recipes = []
    for item in items:
        recipe = OptimisationRecipe.from_dict(item["recipe"])
        conditions[recipe.recipe_id] = item["condition"]
        folders[recipe.recipe_id] = Path(item["backbone_folder"])
        recipes.append(recipe)
    media = Path(settings.MEDIA_ROOT)
    _existing, todo = job_resume(job=job, recipes=recipes, on_progress=on_progress)
    if not todo:
        return
    threads = int(getattr(settings, "TORCH_NUM_THREADS", 1))
    configure_torch(threads)
    device = pick_device(device_preference())
    weights_dir = Path(settings.WEIGHTS_DIR)
    model_folder = Path(job.payload["model_folder"]) if job.payload.get("model_folder") else None
    provenance = {
        "device": device,
        "torch": torch.__version__,
        "threads": threads,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "job": job.pk,
    }

    def backbone(recipe: OptimisationRecipe) -> Backbone:
        return backbone_for(
            folders[recipe.recipe_id], sha256=recipe.backbone["sha256"], device=device, weights_dir=weights_dir
        )

    def load_input(source: dict[str, Any]) -> np.ndarray:
        if "recipe" in source:
            if model_folder is None:
                raise ValueError("this job has no generator folder to render its input stimulus")
            return generator_image(source["recipe"], model_folder=model_folder, device=device)
        return read_image(input_file(media, source["sha256"], Path(source["path"]).suffix), sha256=source["sha256"])

    def relative_name(recipe: OptimisationRecipe) -> str:
        return f"{STIMULI_DIR}/{stimulus_token(stimulus_set.name, recipe.recipe_id)}.png"

    def record(image: RenderedImage) -> None:
        recipe: OptimisationRecipe = image.recipe  # type: ignore[assignment]
        base = next((s["recipe"] for s in recipe.inputs.values() if "recipe" in s), None)
        class_index = base.get("class_index") if base else None
        fields = {
            "image": relative_name(recipe),
            "sha256": image.sha256,
            "width": image.width,
            "height": image.height,
            "descriptors": image.descriptors,
            "provenance": {**provenance, "backbone_folder": str(folders[recipe.recipe_id])},
        }
        with transaction.atomic():
            updated = Stimulus.objects.filter(stimulus_set=stimulus_set, recipe_id=recipe.recipe_id).update(**fields)
            if not updated:
                Stimulus.objects.create(
                    stimulus_set=stimulus_set,
                    public_id=stimulus_token(stimulus_set.name, recipe.recipe_id),
                    condition=conditions[recipe.recipe_id],
                    class_index=class_index,
                    class_name=class_name(class_index),
                    seed=base["seed"] if base else recipe.seed,
                    epsilon=None,
                    draw=base.get("draw", 0) if base else 0,
                    recipe=recipe.to_dict(),
                    recipe_id=recipe.recipe_id,
                    labels=recipe_labels(recipe),
                    **fields,
                )
            RenderJob.objects.filter(pk=job.pk).update(done=F("done") + 1)
        if on_progress:
            on_progress(1)

    render_optimisations(
        todo, backbone=backbone, load_input=load_input, destination=lambda r: media / relative_name(r), on_image=record
    )


def render_optimisation_recipe(
    recipe: OptimisationRecipe, *, out: Path, backbone_folder: Path, inputs_dir: Path, model_folder: Path | None
) -> RenderedImage:
    """Regenerate one style-transfer/DeepDream image from its recipe (render_recipe); inputs by sha256."""
    from generation.services import device_preference

    configure_torch(int(getattr(settings, "TORCH_NUM_THREADS", 1)))
    device = pick_device(device_preference())
    network = backbone_for(
        backbone_folder, sha256=recipe.backbone["sha256"], device=device, weights_dir=Path(settings.WEIGHTS_DIR)
    )

    def load_input(source: dict[str, Any]) -> np.ndarray:
        if "recipe" in source:
            if model_folder is None:
                raise ValueError("this recipe starts from a generator stimulus: give --model")
            return generator_image(source["recipe"], model_folder=model_folder, device=device)
        return read_image(_find_input(inputs_dir, source), sha256=source["sha256"])

    images: list[RenderedImage] = []
    render_optimisations(
        [recipe], backbone=lambda r: network, load_input=load_input, destination=lambda r: out, on_image=images.append
    )
    return images[0]


def _find_input(inputs_dir: Path, source: dict[str, Any]) -> Path:
    """An input stored by sha256 (MEDIA_ROOT/generation-inputs) or, failing that, by its recorded path."""
    stored = inputs_dir / f"{source['sha256']}{Path(source['path']).suffix.lower()}"
    if stored.is_file():
        return stored
    return Path(source["path"])
