"""Small factories: stimulus sets with tiny PNGs under MEDIA_ROOT, and studies over them."""

from __future__ import annotations

import hashlib
import io
import itertools
import secrets

from django.core.files.base import ContentFile
from PIL import Image

from generation.models import Stimulus, StimulusSet
from study.models import DEFAULT_DIMENSIONS, RatingDimension, Study

CONDITIONS = ["baseline", "artistic-0.5", "artistic-1.0", "symbolic"]
EPSILON = {"baseline": 0.0, "artistic-0.5": 0.5, "artistic-1.0": 1.0, "symbolic": 1.0}
_counter = itertools.count()


def tiny_png(seed: int) -> bytes:
    rng = secrets.SystemRandom() if seed < 0 else None
    colour = tuple((seed * k + 40) % 256 for k in (37, 91, 53)) if rng is None else (128, 128, 128)
    image = Image.new("RGB", (16, 16), colour)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def make_stimulus_set(
    *, name: str | None = None, conditions=CONDITIONS, classes=(1, 207, 11), seeds=(0, 1)
) -> StimulusSet:
    name = name or f"set-{next(_counter)}-{secrets.token_hex(3)}"
    stimulus_set = StimulusSet.objects.create(name=name, untrained=True)
    for i, (condition, class_index, seed) in enumerate(itertools.product(conditions, classes, seeds)):
        data = tiny_png(i + 1)
        stimulus = Stimulus(
            stimulus_set=stimulus_set,
            condition=condition,
            class_index=class_index,
            class_name=f"class {class_index}",
            seed=seed,
            epsilon=EPSILON.get(condition, 0.0),
            draw=0,
            recipe={"condition": condition},
            recipe_id=hashlib.sha256(f"{name}:{i}".encode()).hexdigest(),
            sha256=hashlib.sha256(data).hexdigest(),
            width=16,
            height=16,
            descriptors={
                "colorfulness": 1.0 + i,
                "saturation": 0.5,
                "rms_contrast": 0.1,
                "luminance_entropy": 2.0,
                "edge_density": 0.0,
                "compression_ratio": 0.3,
            },
        )
        stimulus.image.save(f"{secrets.token_urlsafe(12)}.png", ContentFile(data), save=False)
        stimulus.save()
    return stimulus_set


def make_study(
    *, stimulus_set: StimulusSet | None = None, slug: str | None = None, status: str = "live", dimensions=None, **fields
) -> Study:
    stimulus_set = stimulus_set or make_stimulus_set()
    defaults = {
        "title": "Rating images",
        "consent_text": "You agree to rate images.",
        "instructions": "Rate each image.",
        "debrief": "Thanks.",
        "completion_code": "C0MPL3TE",
        "completion_url_template": "https://app.prolific.com/submissions/complete?cc={code}",
        "no_consent_url": "https://app.prolific.com/submissions/complete?cc=NOCONSENT",
        "trials_per_participant": 8,
        "practice_trials": 1,
        "attention_checks": 1,
    }
    defaults.update(fields)
    study = Study.objects.create(slug=slug or f"study-{next(_counter)}", status=status, **defaults)
    study.stimulus_sets.add(stimulus_set)
    for order, d in enumerate(dimensions or DEFAULT_DIMENSIONS):
        RatingDimension.objects.create(study=study, order=order, **d)
    return study
