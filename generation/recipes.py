"""A recipe says everything that determines one image's bytes; it round-trips to JSON and hashes to an id."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

# Bump when the rendering arithmetic changes (inputs, interpolation, uint8 mapping, PNG encoding):
# the same recipe then means other bytes, so it must get another id.
# 2: random-embedding with ε = 0 returns the embedding untouched (it was renormalised, changing last
#    bits, so it did not render the baseline's bytes); recipes gained `arithmetic` and
#    perturbation.spectral_norm (absent = "frozen", the only behaviour of version 1).
CODE_VERSION = "2"


@dataclass(frozen=True)
class Recipe:
    """model (id, sha256, architecture), class, latent seed, truncation, perturbation, draw, output size,
    and the latent's construction: a walk frame (`walk`) or z arithmetic (`arithmetic`, then seed is None).

    `batch_size` and `precision` are part of it because they change the bytes: CPU kernels give
    last-bit differences between batch sizes, so every batch is padded to exactly `batch_size`.
    """

    model: dict[str, str]
    seed: int | None
    class_index: int | None = None
    truncation: float | None = None
    perturbation: dict[str, Any] | None = None
    draw: int = 0
    size: int = 0
    precision: str = "float32"
    batch_size: int = 8
    walk: dict[str, Any] | None = None
    arithmetic: dict[str, list[int]] | None = None
    code_version: str = field(default=CODE_VERSION)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> Recipe:
        return cls.from_dict(json.loads(text))

    @property
    def recipe_id(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    @property
    def epsilon(self) -> float:
        return float((self.perturbation or {}).get("epsilon", 0.0))

    def network_key(self) -> str:
        """Recipes with the same key run through the same (perturbed) network and can share batches."""
        weights = self.modifies_weights
        return json.dumps(
            [
                self.model,
                self.perturbation if weights else None,
                self.draw if weights else 0,
                self.precision,
                self.batch_size,
                self.truncation,
            ],
            sort_keys=True,
        )

    @property
    def modifies_weights(self) -> bool:
        p = self.perturbation or {}
        return p.get("kind") == "multiplicative" or p.get("mode") == "embedding-noise"
