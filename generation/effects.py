"""Which conditions of a design render identical images, decided by what they change, not by how they are written.

A rendered image is fixed by its network and its inputs. A condition's draw d changes

- the network: for each parameter tensor it touches, the noise stream (perturbation seed, draw,
  noise kind, parameter name) times ε, plus the spectral-norm policy when one of the tensors is a
  spectral-norm weight (elsewhere the policy changes nothing); multiplicative noise on
  `embedding` and the semantic `embedding-noise` mode with the same seed are the same change;
- the inputs: class-mix (seed, draw, k, ε), random-embedding (seed, draw, ε), the walk, the
  arithmetic.

Two conditions whose (network, inputs) coincide for some pair of draws render the same images and
are refused. A condition with ε = 0 changes nothing; it is allowed on purpose (it renders the
baseline's bytes, a check of the pipeline). Not detected: a tensor whose values are all zero (noise
leaves it unchanged); planning sees parameter names, not values.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from generation.spec import Condition, SpecError, StimulusSpec

if TYPE_CHECKING:  # the generators import torch; planning code stays light
    from generation.generators import GeneratorAdapter

PER_IMAGE_MODES = ("class-mix", "random-embedding")


def network_change(
    p: dict[str, Any] | None, draw: int, *, adapter: GeneratorAdapter, spectral_norm_weights: set[str]
) -> tuple | None:
    """What a draw does to the network's parameters; None when it leaves them as they are."""
    if not p or p.get("epsilon") == 0:
        return None
    if p.get("kind") == "multiplicative":
        names = adapter.target_names(p["targets"])
    elif p.get("mode") == "embedding-noise":
        names = adapter.embedding_names()
    elif p.get("kind") == "semantic":
        return None  # per-image modes change inputs (input_change), not weights
    else:  # a kind this module does not model: the same normalised parameters are the same images
        return ("kind", json.dumps(p, sort_keys=True), draw)
    touches_sn = any(name in spectral_norm_weights for name in names)
    policy = p.get("spectral_norm", "frozen") if touches_sn else None
    return (tuple(sorted(names)), p["seed"], draw, p.get("noise", "normal"), p["epsilon"], policy)


def input_change(condition: Condition, draw: int) -> str:
    """What a draw does to the inputs (class vector, embedding, latent), as canonical text."""
    p = condition.perturbation or {}
    per_image = None
    if p.get("mode") in PER_IMAGE_MODES and p["epsilon"] != 0:
        per_image = {"mode": p["mode"], "seed": p["seed"], "draw": draw, "epsilon": p["epsilon"], "k": p.get("k")}
    return json.dumps(
        {"per_image": per_image, "walk": condition.walk, "arithmetic": list(condition.arithmetic or [])}, sort_keys=True
    )


def refuse_identical_conditions(spec: StimulusSpec, adapter: GeneratorAdapter) -> None:
    """Raise SpecError naming the later of two conditions that would render the same images."""
    from generation.perturbation import spectral_norm_layers

    spectral_norm_weights = set(spectral_norm_layers(adapter.model))
    seen: dict[tuple, str] = {}
    for i, condition in enumerate(spec.conditions):
        if condition.explicit_zero or condition.optimisation is not None:
            continue  # optimisation kinds render no generator images (compared by optimisations.check_distinct)
        keys = {
            (
                network_change(
                    condition.perturbation, draw, adapter=adapter, spectral_norm_weights=spectral_norm_weights
                ),
                input_change(condition, draw),
            ): draw
            for draw in range(condition.draws)
        }
        for key, draw in keys.items():
            if key in seen:
                which = f" (draw {draw})" if condition.draws > 1 else ""
                raise SpecError(
                    f"conditions[{i}]",
                    f"{condition.name!r}{which} renders the same images as condition {seen[key]}: it "
                    "changes the same parameters with the same noise (or nothing) and the same inputs",
                )
        for key, draw in keys.items():
            seen[key] = repr(condition.name) + (f" (draw {draw})" if condition.draws > 1 else "")
