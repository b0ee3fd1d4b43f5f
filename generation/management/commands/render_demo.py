"""`render_demo`: the README's demo set, from real weights if present, else a tiny random model (labelled)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from generation.generators import BIGGAN_PRETRAINED
from generation.management.commands.render_set import render_spec
from generation.models import StimulusSet
from generation.services import UNTRAINED_LABEL
from generation.spec import load_spec, parse_spec
from generation.weights import CONFIG_NAME, WEIGHTS_NAME, make_random, model_info

EXAMPLE = Path(settings.BASE_DIR) / "examples" / "stimuli.yaml"


class Command(BaseCommand):
    help = "Render examples/stimuli.yaml: with real BigGAN-deep weights if downloaded, else untrained tiny weights."

    def handle(self, *args, **options) -> None:
        weights_dir = Path(settings.WEIGHTS_DIR)
        real = [n for n in BIGGAN_PRETRAINED if (weights_dir / n / WEIGHTS_NAME).is_file()]
        if real:
            folder = weights_dir / real[0]
        else:
            folder = weights_dir / "tiny"
            if not (folder / WEIGHTS_NAME).is_file() or not (folder / CONFIG_NAME).is_file():
                make_random(folder, preset="tiny", seed=0)
                self.stdout.write(f"made the tiny random model in {folder}")
        spec = load_spec(EXAMPLE)
        spec = parse_spec({**spec.raw, "model": str(folder)})
        existing = StimulusSet.objects.filter(name=spec.name).first()
        if existing and existing.weights_sha256 and existing.weights_sha256 != model_info(folder).sha256:
            self.stdout.write(
                f"set {spec.name} exists from other weights ({existing.model_id}); delete it in the "
                "admin to re-render it with " + folder.name
            )
            return
        stimulus_set = render_spec(spec, out=None, stdout=self.stdout)
        if stimulus_set.untrained:
            self.stdout.write(
                self.style.WARNING(
                    f"set {stimulus_set.name}: {UNTRAINED_LABEL} "
                    "(download real weights: biggan_weights download biggan-deep-128)"
                )
            )
