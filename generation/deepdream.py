"""DeepDream (Mordvintsev, Olah & Tyka 2015): gradient ascent on the image to amplify what a layer sees.

Objective J(x): `activation` = mean(a_l(x)²) over a layer's output; `channel` = mean of one channel of it;
`class` = the logit of one ImageNet class. Octaves run from small to full size (each 1/octave_scale of the
next, bilinear); what the ascent added (the detail) is carried up to the next octave. Each iteration rolls the
image by a random shift in [-jitter, jitter]² (torch.Generator(seed)), takes the gradient g of J there, rolls g
back and steps

    x ← clip(x + step_size · g / mean|g|, 0, 1)

so the step is step_size in [0, 1] pixel units whatever the objective's scale.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from generation.backbones import Backbone


def objective(backbone: Backbone, x: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
    layer = params["layer"]
    activation = backbone.activations(x, [layer])[layer]
    kind = params["objective"]
    if kind == "class":
        if params["class"] >= activation.shape[1]:
            raise ValueError(f"class {params['class']} is outside 0..{activation.shape[1] - 1} of this backbone")
        return activation[:, params["class"]].sum()
    if kind == "channel":
        if params["channel"] >= activation.shape[1]:
            raise ValueError(f"channel {params['channel']} is outside 0..{activation.shape[1] - 1} of layer {layer}")
        return activation[:, params["channel"]].mean()
    return (activation**2).mean()


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def deepdream(backbone: Backbone, *, base: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
    """The dreamed image (1, 3, H, W) in [0, 1] for an RGB base image in [0, 1] on the backbone's device."""
    generator = torch.Generator().manual_seed(int(params["seed"]))
    height, width = base.shape[-2:]
    octaves = int(params["octaves"])
    sizes = [
        (max(1, round(height / params["octave_scale"] ** k)), max(1, round(width / params["octave_scale"] ** k)))
        for k in range(octaves)
    ]
    pyramid = [_resize(base, size) for size in sizes]
    jitter = int(params["jitter"])
    detail = torch.zeros_like(pyramid[-1])
    x = base
    for octave_base in reversed(pyramid):
        x = (octave_base + _resize(detail, tuple(octave_base.shape[-2:]))).detach()
        for _ in range(int(params["iterations"])):
            dy, dx = torch.randint(-jitter, jitter + 1, (2,), generator=generator).tolist() if jitter else (0, 0)
            shifted = torch.roll(x, shifts=(dy, dx), dims=(2, 3)).requires_grad_(True)
            try:
                value = objective(backbone, shifted, params)
            except RuntimeError as exc:  # a pooling window larger than the octave's map
                raise ValueError(
                    f"octave of {tuple(x.shape[-2:])} px is too small for layer {params['layer']} of "
                    f"{backbone.architecture} ({str(exc).splitlines()[0]}): use fewer octaves, a smaller "
                    "octave_scale or a larger size"
                ) from None
            (gradient,) = torch.autograd.grad(value, shifted)
            gradient = torch.roll(gradient, shifts=(-dy, -dx), dims=(2, 3))
            x = (x + params["step_size"] / (gradient.abs().mean() + 1e-8) * gradient).clamp(0, 1).detach()
        detail = x - octave_base
    return x
