"""Stimulus sets, stimuli and the render jobs that produce them."""

from __future__ import annotations

import secrets

from django.db import models


def new_public_token() -> str:
    """An unguessable id for URLs and file names, so the condition never shows in either."""
    return secrets.token_urlsafe(12)


class BuildStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    PLANNING = "planning", "Planning"
    RENDERING = "rendering", "Rendering"
    FAILED = "failed", "Failed"


# One format per set (generation.files.FORMATS): a file type must not tell conditions apart.
IMAGE_FORMATS = [("png", "PNG"), ("webp", "WebP (lossless)")]


class StimulusSet(models.Model):
    class Source(models.TextChoices):
        RENDERED = "rendered", "Rendered from a generator"
        IMPORTED = "imported", "Imported images"

    name = models.SlugField(max_length=100, unique=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.RENDERED)
    spec = models.JSONField(default=dict, blank=True, help_text="The design file this set was rendered from.")
    model_id = models.CharField(max_length=255, blank=True)
    weights_sha256 = models.CharField(max_length=64, blank=True)
    untrained = models.BooleanField(
        default=False, help_text="Rendered with random (untrained) weights: a demo, not real stimuli."
    )
    description = models.TextField(blank=True)
    build_status = models.CharField(
        max_length=16,
        choices=BuildStatus.choices,
        blank=True,
        help_text="A set made from an uploaded design file: planning, then rendering (progress in its render jobs).",
    )
    build_error = models.TextField(blank=True, help_text="Why planning the uploaded design failed.")
    image_format = models.CharField(
        max_length=8,
        choices=IMAGE_FORMATS,
        default="png",
        help_text="Every image of the set is stored in this one format, without metadata (blinding).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class Stimulus(models.Model):
    stimulus_set = models.ForeignKey(StimulusSet, on_delete=models.CASCADE, related_name="stimuli")
    public_id = models.CharField(max_length=32, unique=True, default=new_public_token, editable=False)
    condition = models.CharField(max_length=100, db_index=True)
    class_index = models.IntegerField(null=True, blank=True, db_index=True)
    class_name = models.CharField(max_length=200, blank=True)
    seed = models.IntegerField(null=True, blank=True)
    epsilon = models.FloatField(null=True, blank=True)
    draw = models.IntegerField(null=True, blank=True)
    recipe = models.JSONField(default=dict, blank=True)
    recipe_id = models.CharField(max_length=64, blank=True, db_index=True)
    image = models.ImageField(upload_to="stimuli/", max_length=255, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    width = models.IntegerField(null=True, blank=True)
    height = models.IntegerField(null=True, blank=True)
    descriptors = models.JSONField(default=dict, blank=True)
    labels = models.JSONField(default=dict, blank=True, help_text="Extra labels of imported images.")
    provenance = models.JSONField(
        default=dict,
        blank=True,
        help_text="Where and how it was rendered (device, threads, torch version, source folder); not part of the "
        "recipe id.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["stimulus_set", "condition", "class_index", "seed", "draw"]
        constraints = [
            models.UniqueConstraint(fields=["stimulus_set", "recipe_id"], name="unique_recipe_per_set"),
        ]
        verbose_name_plural = "stimuli"

    def __str__(self) -> str:
        return f"{self.stimulus_set.name}:{self.condition}:{self.class_index}:{self.seed}"


class RenderJob(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    stimulus_set = models.ForeignKey(StimulusSet, on_delete=models.CASCADE, related_name="render_jobs")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    payload = models.JSONField(default=dict, help_text="The recipes this job renders.")
    total = models.IntegerField(default=0)
    done = models.IntegerField(default=0)
    error = models.TextField(blank=True)
    celery_task_id = models.CharField(max_length=64, blank=True)
    attempts = models.IntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.stimulus_set.name} job {self.pk} ({self.status})"
