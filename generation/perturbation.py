"""Multiplicative weight perturbation of any torch module, by parameter name, applied in place and undone exactly.

For every targeted parameter W:  W ← W ⊙ (1 + ε·ξ),  ξ element-wise N(0, 1) (or uniform on
[-√3, √3], also unit variance). ξ for a tensor is drawn from a torch generator seeded by
(perturbation seed, draw, parameter name), so it does not depend on which other tensors are
targeted or on their order, and draw d of a condition is the same network in every process.

Only the targeted tensors are copied before the change; leaving the context copies them back
(`copy_`), so the model is bit-identical afterwards and no per-image deepcopy is needed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from generation.generators import stable_seed

NOISE_KINDS = ("normal", "uniform")


def noise_like(parameter: torch.Tensor, *, seed: int, draw: int, name: str, noise: str) -> torch.Tensor:
    """ξ for one parameter, float32 on the CPU (so it is the same on every device), unit variance."""
    generator = torch.Generator().manual_seed(stable_seed("multiplicative", seed, draw, name))
    if noise == "normal":
        return torch.randn(parameter.shape, generator=generator, dtype=torch.float32)
    if noise == "uniform":
        return (torch.rand(parameter.shape, generator=generator, dtype=torch.float32) * 2 - 1) * math.sqrt(3)
    raise ValueError(f"noise must be one of {NOISE_KINDS}, not {noise!r}")


@contextmanager
def perturbed(model: nn.Module, names: Sequence[str], *, epsilon: float, seed: int, draw: int,
              noise: str = "normal") -> Iterator[dict[str, torch.Tensor]]:
    """Perturb the named parameters in place for the duration of the block; yields the saved originals."""
    parameters = dict(model.named_parameters())
    saved: dict[str, torch.Tensor] = {}
    try:
        with torch.no_grad():
            for name in names:
                parameter = parameters[name]
                saved[name] = parameter.detach().clone()
                xi = noise_like(parameter, seed=seed, draw=draw, name=name, noise=noise).to(parameter.device)
                factor = xi.mul_(epsilon).add_(1.0)
                parameter.copy_((saved[name].float() * factor).to(parameter.dtype))
        yield saved
    finally:
        with torch.no_grad():
            for name, original in saved.items():
                parameters[name].copy_(original)
