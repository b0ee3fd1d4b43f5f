"""Writes of the generation app: plan a stimulus set, split it into render jobs, run, export, import."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import logging
import os
import shutil
import socket
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.crypto import salted_hmac
from PIL import Image, UnidentifiedImageError

from analysis.schema import DESCRIPTOR_COLUMNS
from config.errors import SetupError
from generation.atomic_files import atomic_write_bytes
from generation.classes import class_name
from generation.effects import refuse_identical_conditions
from generation.files import (
    DEFAULT_FORMAT,
    FORMATS,
    STIMULI_DIR,
    STIMULUS_MTIME,
    normalize_image,
    write_stimulus_file,
)
from generation.latents import check_against_model as check_latents_against_model
from generation.latents import stimulus_inputs
from generation.models import RenderJob, Stimulus, StimulusSet
from generation.optimisations import is_optimisation, plan_optimisation, store_input
from generation.recipes import Recipe
from generation.spec import SpecError, StimulusSpec

# The admin and every command import this module (Django's admin autodiscovery), so torch and the
# renderer are imported inside the functions that render or plan against a model, never at import time:
# the web process stays light (~0.1 s and ~70 MB instead of ~1.5 s and ~320 MB per process start).
if TYPE_CHECKING:
    from generation.generators import GeneratorAdapter
    from generation.pipeline import RenderedImage
    from generation.weights import ModelInfo

logger = logging.getLogger(__name__)

UNTRAINED_LABEL = "untrained random weights — demo only"
MANIFEST_COLUMNS = [
    "stimulus_id",
    "condition",
    "class_index",
    "class_name",
    "seed",
    "epsilon",
    "draw",
    "path",
    "sha256",
    "width",
    "height",
    "recipe_id",
]
DESCRIPTOR_KEYS = list(DESCRIPTOR_COLUMNS)  # the ratings schema's descriptor names, in the manifest's order


def stimulus_token(set_name: str, recipe_id: str) -> str:
    """The public id and file name of a stimulus: a keyed hash, so nobody can infer the condition from
    it, yet stable across retries (a resumed render overwrites its own half-finished file, no orphans)."""
    digest = salted_hmac("generation.stimulus-token", f"{set_name}/{recipe_id}", algorithm="sha256").digest()
    return base64.urlsafe_b64encode(digest[:12]).decode()


# --- planning ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedStimulus:
    condition: str
    recipe: Recipe


@dataclass(frozen=True)
class SetPlan:
    info: ModelInfo
    items: list[PlannedStimulus]
    inputs: list[dict[str, Any]] = field(default_factory=list)  # image files of style transfer / DeepDream
    untrained_backbones: list[str] = field(default_factory=list)  # random-weight backbones: a demo set

    @property
    def untrained(self) -> bool:
        return self.info.untrained or bool(self.untrained_backbones)


def model_id_for(model: str, folder: Path) -> str:
    from generation.generators import BIGGAN_PRETRAINED

    return model if model in BIGGAN_PRETRAINED else folder.name


def set_plan(*, spec: StimulusSpec, cwd: Path | None = None) -> SetPlan:
    """Resolve the model and expand the design into recipes; every error comes before any work."""
    from generation.weights import meta_adapter, model_info, resolve_model_folder

    folder = resolve_model_folder(spec.model, cwd=cwd)
    info = model_info(folder, model_id=model_id_for(spec.model, folder))
    adapter = meta_adapter(info)
    _check_against_model(spec, adapter)
    model = {"id": info.model_id, "sha256": info.sha256, "architecture": info.architecture}
    size = spec.size or adapter.native_size
    items = []
    for condition in spec.conditions:
        if condition.optimisation is not None:
            continue  # planned below, once the generator conditions they may draw on are known
        points = stimulus_inputs(condition, classes=spec.classes, seeds=spec.seeds)
        for draw in range(condition.draws):
            for item in points:
                recipe = Recipe(
                    model=model,
                    truncation=spec.truncation,
                    perturbation=condition.perturbation,
                    draw=draw,
                    size=size,
                    precision=spec.precision,
                    batch_size=spec.batch_size,
                    **item,
                )
                items.append(PlannedStimulus(condition=condition.name, recipe=recipe))
    inputs: list[dict[str, Any]] = []
    untrained: list[str] = []
    by_condition: dict[str, list[PlannedStimulus]] = {}
    for item in items:
        by_condition.setdefault(item.condition, []).append(item)
    for index, condition in enumerate(spec.conditions):
        if condition.optimisation is not None:
            planned, files = plan_optimisation(
                index=index,
                condition=condition.name,
                optimisation=condition.optimisation,
                weights_dir=Path(settings.WEIGHTS_DIR),
                base_dir=cwd,
                generator_items=by_condition,
            )
            items += planned  # type: ignore[arg-type]
            inputs += files
            untrained += [p.recipe.backbone["id"] for p in planned[:1] if p.job_extra["backbone_untrained"]]
    return SetPlan(info=info, items=items, inputs=inputs, untrained_backbones=untrained)


def _check_against_model(spec: StimulusSpec, adapter: GeneratorAdapter) -> None:
    from generation.pipeline import pick_device

    if adapter.conditional:
        if spec.truncation is None:
            raise SpecError("truncation", f"missing (required for {adapter.architecture}, e.g. 0.4)")
        if spec.classes == (None,):
            raise SpecError("classes", f"missing (required for the class-conditional {adapter.architecture})")
        for i, index in enumerate(spec.classes):
            if index >= adapter.num_classes:
                raise SpecError(f"classes[{i}]", f"{index} is outside 0..{adapter.num_classes - 1}")
    else:
        if spec.truncation is not None:
            raise SpecError("truncation", f"{adapter.architecture} has no truncation; remove the key")
        if spec.classes != (None,):
            raise SpecError("classes", f"{adapter.architecture} is unconditional; remove the key")
    for i, condition in enumerate(spec.conditions):
        p = condition.perturbation or {}
        where = f"conditions[{i}].perturbation"
        try:
            if p.get("kind") == "multiplicative":
                adapter.target_names(p["targets"])
            elif p.get("kind") == "semantic":
                adapter.embedding_names()
        except ValueError as exc:
            key = f"{where}.targets" if p.get("kind") == "multiplicative" else f"{where}.mode"
            raise SpecError(key, str(exc)) from None
    check_latents_against_model(spec, adapter)
    refuse_identical_conditions(spec, adapter)
    if spec.precision == "bfloat16" and pick_device(device_preference()) == "cpu":
        logger.warning("bfloat16 on CPU is slow; it is meant for GPUs")


def job_resume(*, job: RenderJob, recipes: list, on_progress: Callable[[int], None] | None) -> tuple[dict, list]:
    """Stimulus rows the job already has (recipe id -> image), and the recipes still to render.

    A retried job resumes: recipes whose image file exists count as done at once; a row whose file is missing is
    rendered again (and updated, not duplicated, by the caller).
    """
    media = Path(settings.MEDIA_ROOT)
    ids = [r.recipe_id for r in recipes]
    existing = dict(job.stimulus_set.stimuli.filter(recipe_id__in=ids).values_list("recipe_id", "image"))
    finished = {rid for rid, image in existing.items() if image and (media / image).is_file()}
    if finished:
        RenderJob.objects.filter(pk=job.pk).update(done=F("done") + len(finished))
        if on_progress:
            on_progress(len(finished))
    return existing, [r for r in recipes if r.recipe_id not in finished]


def device_preference() -> str:
    return getattr(settings, "GENERATION_DEVICE", None) or os.environ.get("GENERATION_DEVICE", "auto")


# --- sets and jobs -------------------------------------------------------------------------------


def stimulus_set_prepare(*, spec: StimulusSpec, plan: SetPlan) -> tuple[StimulusSet, list[PlannedStimulus]]:
    """Create or reuse the set; return the planned stimuli that still need rendering."""
    with transaction.atomic():
        stimulus_set, created = StimulusSet.objects.select_for_update().get_or_create(
            name=spec.name,
            defaults={
                "source": StimulusSet.Source.RENDERED,
                "spec": spec.raw,
                "model_id": plan.info.model_id,
                "weights_sha256": plan.info.sha256,
                "untrained": plan.untrained,
                "description": spec.description,
            },
        )
        if not created:
            if stimulus_set.source != StimulusSet.Source.RENDERED:
                raise SetupError(f"set {spec.name!r} holds imported images; choose another name")
            if stimulus_set.weights_sha256 and stimulus_set.weights_sha256 != plan.info.sha256:
                raise SetupError(
                    f"set {spec.name!r} was rendered with other weights ({stimulus_set.model_id}, sha256 "
                    f"{stimulus_set.weights_sha256[:12]}…); this spec's model has {plan.info.sha256[:12]}… — "
                    "use a new set name"
                )
            stimulus_set.spec = spec.raw
            stimulus_set.description = spec.description or stimulus_set.description
            stimulus_set.untrained = stimulus_set.untrained or plan.untrained
            stimulus_set.save(update_fields=["spec", "description", "untrained"])
    for source in plan.inputs:
        store_input(Path(settings.MEDIA_ROOT), source)
    done = {
        recipe_id
        for recipe_id, image in stimulus_set.stimuli.values_list("recipe_id", "image")
        if image and (Path(settings.MEDIA_ROOT) / image).is_file()
    }
    return stimulus_set, [item for item in plan.items if item.recipe.recipe_id not in done]


def render_jobs_create(
    *, stimulus_set: StimulusSet, items: list[PlannedStimulus], model_folder: Path, job_size: int = 64
) -> list[RenderJob]:
    """One job per perturbed network (condition x draw), split into chunks of at most job_size images."""
    groups: dict[str, list[PlannedStimulus]] = {}
    for item in items:
        groups.setdefault(item.recipe.network_key(), []).append(item)
    jobs = []
    for group in groups.values():
        per_job = max(job_size // group[0].recipe.batch_size, 1) * group[0].recipe.batch_size
        for start in range(0, len(group), per_job):
            chunk = group[start : start + per_job]
            payload = {
                "model_folder": str(model_folder),
                "items": [
                    {"condition": i.condition, "recipe": i.recipe.to_dict(), **getattr(i, "job_extra", {})}
                    for i in chunk
                ],
            }
            jobs.append(RenderJob(stimulus_set=stimulus_set, payload=payload, total=len(chunk)))
    return RenderJob.objects.bulk_create(jobs)


def render_jobs_abandon_stale(*, stimulus_set: StimulusSet) -> int:
    """In-process runs only: jobs left pending/running by a crashed run can never finish; say so."""
    return stimulus_set.render_jobs.filter(status__in=[RenderJob.Status.PENDING, RenderJob.Status.RUNNING]).update(
        status=RenderJob.Status.FAILED,
        error="interrupted (the run that owned it stopped); superseded by a new run",
        finished_at=timezone.now(),
    )


def runs_in_process() -> bool:
    from config.celery import app

    return settings.CELERY_BROKER_URL is None or bool(app.conf.task_always_eager)


def render_job_dispatch(*, job: RenderJob, on_progress: Callable[[int], None] | None = None) -> None:
    """Run in this process when there is no broker; otherwise queue it (on the GPU queue if configured).

    Call config.celery.require_broker() once before dispatching a batch of jobs.
    """
    if runs_in_process():
        render_job_run(job_id=job.pk, on_progress=on_progress)
        return
    from generation.tasks import render_job

    queue = getattr(settings, "CELERY_GPU_QUEUE", None)
    result = render_job.apply_async(args=[job.pk], **({"queue": queue} if queue else {}))
    RenderJob.objects.filter(pk=job.pk).update(celery_task_id=result.id)


def render_job_retry(*, job: RenderJob) -> None:
    if job.status != RenderJob.Status.FAILED:
        raise SetupError(f"job {job.pk} is {job.status}; only failed jobs are retried")
    RenderJob.objects.filter(pk=job.pk).update(status=RenderJob.Status.PENDING, error="", finished_at=None)
    job.refresh_from_db()
    render_job_dispatch(job=job)


_ADAPTER_CACHE: dict[tuple[str, str, str, str], GeneratorAdapter] = {}


def adapter_for(folder: Path, *, sha256: str, precision: str, device: str) -> GeneratorAdapter:
    """One loaded model per worker process, reused across jobs (perturbations are always undone)."""
    from generation.weights import load_generator, model_info

    key = (str(folder), sha256, precision, device)
    if key not in _ADAPTER_CACHE:
        _ADAPTER_CACHE.clear()
        info = model_info(folder)
        if info.sha256 != sha256:
            raise SetupError(
                f"weights in {folder} changed since the set was planned (sha256 {info.sha256[:12]}… ≠ {sha256[:12]}…)"
            )
        _ADAPTER_CACHE[key] = load_generator(info, device=device, precision=precision)
    return _ADAPTER_CACHE[key]


def render_job_run(*, job_id: int, on_progress: Callable[[int], None] | None = None) -> RenderJob:
    """Render a job's missing stimuli and record them batch by batch; failures land in job.error."""
    job = RenderJob.objects.select_related("stimulus_set").get(pk=job_id)
    RenderJob.objects.filter(pk=job.pk).update(
        status=RenderJob.Status.RUNNING, started_at=timezone.now(), attempts=F("attempts") + 1, error="", done=0
    )
    try:
        _render_job_items(job, on_progress)
    except Exception:
        logger.exception("render job %s failed", job.pk)
        RenderJob.objects.filter(pk=job.pk).update(
            status=RenderJob.Status.FAILED, error=traceback.format_exc()[-4000:], finished_at=timezone.now()
        )
    else:
        RenderJob.objects.filter(pk=job.pk).update(status=RenderJob.Status.DONE, finished_at=timezone.now())
    job.refresh_from_db()
    return job


def _render_job_items(job: RenderJob, on_progress: Callable[[int], None] | None) -> None:
    if job.payload["items"] and is_optimisation(job.payload["items"][0]["recipe"]):
        from generation.optimisation_jobs import render_optimisation_job

        render_optimisation_job(job, on_progress)
        return
    import torch

    from generation.pipeline import configure_torch, pick_device, render

    stimulus_set = job.stimulus_set
    conditions = {}
    recipes = []
    for item in job.payload["items"]:
        recipe = Recipe.from_dict(item["recipe"])
        conditions[recipe.recipe_id] = item["condition"]
        recipes.append(recipe)
    media = Path(settings.MEDIA_ROOT)
    existing, todo = job_resume(job=job, recipes=recipes, on_progress=on_progress)
    if not todo:
        return
    threads = int(getattr(settings, "TORCH_NUM_THREADS", 1))
    configure_torch(threads)
    device = pick_device(device_preference())
    adapter = adapter_for(
        Path(job.payload["model_folder"]), sha256=todo[0].model["sha256"], precision=todo[0].precision, device=device
    )
    provenance = {
        "device": device,
        "torch": torch.__version__,
        "threads": threads,
        "source": adapter.source,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "job": job.pk,
    }

    def relative_name(recipe: Recipe) -> str:
        return f"{STIMULI_DIR}/{stimulus_token(stimulus_set.name, recipe.recipe_id)}.png"

    def record(batch: list[RenderedImage]) -> None:
        rows = [
            _stimulus_row(stimulus_set, conditions[img.recipe.recipe_id], img, relative_name(img.recipe), provenance)
            for img in batch
        ]
        with transaction.atomic():
            stale = {rid for rid in existing if rid in {row.recipe_id for row in rows}}
            fresh = [row for row in rows if row.recipe_id not in stale]
            Stimulus.objects.bulk_create(fresh, ignore_conflicts=True)
            for row in rows:
                if row.recipe_id in stale:
                    Stimulus.objects.filter(stimulus_set=stimulus_set, recipe_id=row.recipe_id).update(
                        image=row.image.name,
                        sha256=row.sha256,
                        width=row.width,
                        height=row.height,
                        descriptors=row.descriptors,
                        provenance=row.provenance,
                    )
            RenderJob.objects.filter(pk=job.pk).update(done=F("done") + len(rows))
        if on_progress:
            on_progress(len(rows))

    render(adapter, todo, destination=lambda r: media / relative_name(r), on_batch=record)


def _stimulus_row(
    stimulus_set: StimulusSet, condition: str, image: RenderedImage, name: str, provenance: dict[str, Any]
) -> Stimulus:
    recipe = image.recipe
    return Stimulus(
        stimulus_set=stimulus_set,
        public_id=stimulus_token(stimulus_set.name, recipe.recipe_id),
        condition=condition,
        class_index=recipe.class_index,
        class_name=class_name(recipe.class_index),
        seed=recipe.seed,
        epsilon=recipe.epsilon,
        draw=recipe.draw,
        recipe=recipe.to_dict(),
        recipe_id=recipe.recipe_id,
        image=name,
        sha256=image.sha256,
        width=image.width,
        height=image.height,
        descriptors=image.descriptors,
        provenance={**provenance, **image.extra},
    )


# --- export and import ---------------------------------------------------------------------------


def stimulus_set_export(*, stimulus_set: StimulusSet, out_dir: Path) -> Path:
    """Copy the set's images (named by public id) and write manifest.csv; re-running copies only what changed."""

    out_dir.mkdir(parents=True, exist_ok=True)
    media = Path(settings.MEDIA_ROOT)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS + DESCRIPTOR_KEYS + MANIFEST_RECIPE_COLUMNS)
    recipes = {}
    for stimulus in stimulus_set.stimuli.order_by("condition", "draw", "class_index", "seed", "public_id"):
        source = media / stimulus.image.name
        target = out_dir / Path(stimulus.image.name).name
        if not target.is_file() or target.stat().st_size != source.stat().st_size:
            tmp = target.with_name(f".{target.name}.tmp")
            shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        writer.writerow(
            [
                stimulus.public_id,
                stimulus.condition,
                _blank(stimulus.class_index),
                stimulus.class_name,
                _blank(stimulus.seed),
                _blank(stimulus.epsilon),
                _blank(stimulus.draw),
                target.name,
                stimulus.sha256,
                stimulus.width,
                stimulus.height,
                stimulus.recipe_id,
            ]
            + [stimulus.descriptors.get(k, "") for k in DESCRIPTOR_KEYS]
            + recipe_summary(stimulus.recipe)
        )
        recipes[stimulus.public_id] = stimulus.recipe
    manifest = out_dir / "manifest.csv"
    atomic_write_bytes(manifest, buffer.getvalue().encode())
    atomic_write_bytes(out_dir / "recipes.json", (json.dumps(recipes, indent=1, sort_keys=True) + "\n").encode())
    return manifest


MANIFEST_RECIPE_COLUMNS = ["kind", "parameters"]


def recipe_summary(recipe: dict[str, Any]) -> list[str]:
    """The manifest's kind and parameters (compact JSON) columns; the full recipes go to recipes.json."""
    if is_optimisation(recipe):
        inputs = {
            role: source.get("path")
            or {"class_index": source["recipe"].get("class_index"), "seed": source["recipe"].get("seed")}
            for role, source in recipe["inputs"].items()
        }
        parameters = {"backbone": recipe["backbone"]["id"], **recipe["params"], **inputs}
        return [recipe["kind"], json.dumps(parameters, sort_keys=True, separators=(",", ":"))]
    if recipe.get("kind") == "imported":
        return ["imported", json.dumps({"source_file": recipe.get("source_file")}, separators=(",", ":"))]
    perturbation = recipe.get("perturbation")
    if not perturbation:
        return ["baseline" if recipe else "", ""]
    return [perturbation.get("kind", ""), json.dumps(perturbation, sort_keys=True, separators=(",", ":"))]


def _blank(value: Any) -> Any:
    return "" if value is None else value


IMPORT_FIELDS = {"filename", "condition"}


def stimuli_import(
    *, directory: Path, labels_csv: Path, set_name: str, image_format: str | None = None
) -> tuple[int, int]:
    """Import external images as stimuli of a set; returns (created, already there). All rows are
    checked (columns, files, readable images) before anything is written.

    Every image is re-encoded to the set's one format (generation.files.normalize_image): no metadata, no source
    extension in the URL; the original file name and hash stay in the database (recipe, provenance) only.
    """

    from generation.descriptors import describe

    if image_format is not None and image_format not in FORMATS:
        raise SetupError(f"unknown image format {image_format!r}; use one of {', '.join(FORMATS)}")
    try:
        with labels_csv.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            rows = list(reader)
    except OSError as exc:
        raise SetupError(f"cannot read labels {labels_csv}: {exc.strerror}") from None
    missing = IMPORT_FIELDS - set(columns)
    if missing:
        raise SetupError(
            f"labels {labels_csv} lacks column(s) {', '.join(sorted(missing))} (found: {', '.join(columns) or 'none'})"
        )
    problems = []
    for number, row in enumerate(rows, start=2):
        path = directory / (row["filename"] or "")
        if not row["filename"] or not path.is_file():
            problems.append(f"line {number}: no file {path}")
        elif not row["condition"]:
            problems.append(f"line {number}: empty condition")
        else:
            try:
                with Image.open(path) as image:
                    image.verify()
            except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
                problems.append(f"line {number}: {path.name} is not a readable image ({exc})")
    if not rows:
        problems.append("no rows")
    if problems:
        raise SetupError(
            f"cannot import {labels_csv}: {'; '.join(problems[:5])}"
            + (f" and {len(problems) - 5} more" if len(problems) > 5 else "")
        )
    stimulus_set, _ = StimulusSet.objects.get_or_create(
        name=set_name,
        defaults={
            "source": StimulusSet.Source.IMPORTED,
            "description": f"imported from {directory}",
            "image_format": image_format or DEFAULT_FORMAT,
        },
    )
    if stimulus_set.source != StimulusSet.Source.IMPORTED:
        raise SetupError(f"set {set_name!r} holds rendered stimuli; import into another set")
    if image_format is not None and image_format != stimulus_set.image_format:
        raise SetupError(f"set {set_name!r} stores {stimulus_set.image_format} images; one set has one format")
    existing = set(stimulus_set.stimuli.values_list("recipe_id", flat=True))
    media = Path(settings.MEDIA_ROOT)
    created = skipped = 0
    for row in rows:
        data = (directory / row["filename"]).read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        recipe = {"kind": "imported", "source_file": row["filename"], "sha256": sha}
        recipe_id = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()
        if recipe_id in existing:
            skipped += 1
            continue
        encoded = normalize_image(data, image_format=stimulus_set.image_format)
        token = stimulus_token(set_name, recipe_id)
        name = f"{STIMULI_DIR}/{token}.{encoded.extension}"
        write_stimulus_file(media / name, encoded.data)
        labels = {k: v for k, v in row.items() if k not in IMPORT_FIELDS and k is not None}
        index = row.get("class_index")
        Stimulus.objects.create(
            stimulus_set=stimulus_set,
            public_id=token,
            condition=row["condition"],
            class_index=int(index) if index not in (None, "") and str(index).strip().isdigit() else None,
            class_name=row.get("class_name") or "",
            recipe=recipe,
            recipe_id=recipe_id,
            image=name,
            sha256=encoded.sha256,
            width=encoded.rgb.shape[1],
            height=encoded.rgb.shape[0],
            descriptors=describe(encoded.rgb),
            labels=labels,
            provenance={
                "source": "import",
                "original_file": row["filename"],
                "original_sha256": sha,
                **{f"original_{k}": v for k, v in encoded.original.items()},
            },
        )
        existing.add(recipe_id)
        created += 1
    return created, skipped


def stimuli_make_uniform(*, stimulus_sets: list[StimulusSet]) -> tuple[int, int]:
    """Bring files stored by older versions to today's rules; returns (re-encoded, re-dated).

    Imported images are re-encoded to their set's format without metadata (name: token + the set's extension);
    every stimulus file gets the constant mtime. Rendered PNGs already carry no metadata; their bytes stay.
    """
    media = Path(settings.MEDIA_ROOT)
    encoded_count = dated = 0
    for stimulus_set in stimulus_sets:
        for stimulus in stimulus_set.stimuli.exclude(image=""):
            path = media / stimulus.image.name
            if not path.is_file():
                continue
            if stimulus_set.source == StimulusSet.Source.IMPORTED:
                data = path.read_bytes()
                encoded = normalize_image(data, image_format=stimulus_set.image_format)
                name = f"{STIMULI_DIR}/{stimulus.public_id}.{encoded.extension}"
                if name != stimulus.image.name or encoded.data != data:
                    write_stimulus_file(media / name, encoded.data)
                    provenance = {
                        "original_sha256": stimulus.sha256,
                        **stimulus.provenance,
                        **{
                            f"original_{k}": v
                            for k, v in encoded.original.items()
                            if f"original_{k}" not in stimulus.provenance
                        },
                    }
                    Stimulus.objects.filter(pk=stimulus.pk).update(
                        image=name, sha256=encoded.sha256, provenance=provenance
                    )
                    if name != stimulus.image.name:
                        path.unlink()
                    encoded_count += 1
                    continue
            if int(path.stat().st_mtime) != STIMULUS_MTIME:
                os.utime(path, (STIMULUS_MTIME, STIMULUS_MTIME))
                dated += 1
    return encoded_count, dated
