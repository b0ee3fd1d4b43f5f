"""Writes of a researcher setting up studies in the admin: cloning a design, default dimensions."""

from __future__ import annotations

from django.db import transaction

from config.errors import SetupError
from study.models import DEFAULT_DIMENSIONS, RatingDimension, Study
from study.spec import SLUG

# Not copied by a clone: identity, state and history belong to the original study.
_NOT_COPIED = {
    "id",
    "slug",
    "title",
    "status",
    "pilot_token",
    "assignment_serial",
    "allocation_counts",
    "allocation_basis",
    "source",
    "created_at",
    "updated_at",
    "published_at",
}


def study_clone(*, study: Study, slug: str, title: str = "") -> Study:
    """A draft copy of the design (texts, stimulus sets, conditions, dimensions, counts, recruitment settings);
    no participants, no data, a fresh pilot link. Every other field is copied, so new design fields are too."""
    slug = slug.strip()
    if not SLUG.match(slug) or len(slug) > 100:
        raise SetupError(
            f"slug: {slug!r} must be lower-case letters, digits, - and _ (starting with a letter or digit)"
        )
    if Study.objects.filter(slug=slug).exists():
        raise SetupError(f"slug: a study named {slug!r} exists already")
    with transaction.atomic():
        copied = {
            f.attname: getattr(study, f.attname) for f in Study._meta.concrete_fields if f.attname not in _NOT_COPIED
        }
        clone = Study.objects.create(
            slug=slug, title=title.strip() or f"{study.title} (copy)", status=Study.Status.DRAFT, **copied
        )
        clone.stimulus_sets.set(study.stimulus_sets.all())
        RatingDimension.objects.bulk_create(
            [
                RatingDimension(
                    study=clone,
                    name=d.name,
                    prompt=d.prompt,
                    kind=d.kind,
                    points=d.points,
                    low_label=d.low_label,
                    high_label=d.high_label,
                    order=d.order,
                )
                for d in study.dimensions.all()
            ]
        )
    return clone


def study_dimensions_default(*, study: Study) -> int:
    """Give a study without dimensions the defaults (artistry, symbolism); returns how many were added."""
    if study.dimensions.exists():
        return 0
    RatingDimension.objects.bulk_create(
        [RatingDimension(study=study, order=i, **d) for i, d in enumerate(DEFAULT_DIMENSIONS)]
    )
    return len(DEFAULT_DIMENSIONS)
