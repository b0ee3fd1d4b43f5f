"""Neural style transfer after Gatys, Ecker & Bethge (2016): optimise an image x so that its backbone features
match a content image's and its Gram matrices match a style image's.

    L(x) = w_c · Σ_{l ∈ content} mean((F_l(x) - F_l(c))²)
         + w_s · Σ_{l ∈ style}   mean((G_l(x) - G_l(s))²),    G_l = F_l F_lᵀ / (C_l·H_l·W_l)
         + w_tv · Σ ((x_{i+1,j} - x_{i,j})² + (x_{i,j+1} - x_{i,j})²)

F_l is layer l's output (C_l x H_l·W_l); all three terms are computed on the backbone's input tensor (what the
network sees: ImageNet-normalised RGB for VGG-19, Caffe BGR 0..255 for NIN), as neural-style does for its
Caffe models. x starts at the content image or at uniform noise U(0, 1) from torch.Generator(seed).

L-BFGS (lr 1, no line search, history 100) optimises the backbone's input tensor, as neural-style does; in
[0, 1] pixel units its second step overflowed on NIN (input 0..255), and torch's strong-Wolfe line search did
not recover from the infinite loss either. Adam optimises the [0, 1] image, so `learning_rate` is in pixel
units for every backbone. One iteration is one optimiser step (L-BFGS: one `step` call with max_iter 1), so
the image after k iterations is the same whether the run stops at k or goes on: snapshots share bytes with
shorter runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F

from generation.backbones import Backbone, from_input, to_input


def gram(features: torch.Tensor) -> torch.Tensor:
    n, c, h, w = features.shape
    flat = features.reshape(n * c, h * w)
    return flat @ flat.t() / (c * h * w)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    return ((x[:, :, 1:, :] - x[:, :, :-1, :]) ** 2).sum() + ((x[:, :, :, 1:] - x[:, :, :, :-1]) ** 2).sum()


def style_transfer(
    backbone: Backbone,
    *,
    content: torch.Tensor,
    style: torch.Tensor,
    params: dict[str, Any],
    snapshots: Iterable[int],
    on_snapshot: Callable[[int, torch.Tensor], None],
) -> None:
    """Run the optimisation; at each snapshot iteration hand the image (1, 3, H, W) in [0, 1] to on_snapshot.

    content and style are RGB in [0, 1] on the backbone's device, content already at the output size.
    """
    points = sorted(set(snapshots))
    content_layers, style_layers = params["content_layers"], params["style_layers"]
    with torch.no_grad():
        content_targets = backbone.activations(content, content_layers)
        style_targets = {name: gram(a) for name, a in backbone.activations(style, style_layers).items()}
    if params["init"] == "noise":
        noise = torch.rand(content.shape, generator=torch.Generator().manual_seed(int(params["seed"])))
        x = noise.to(content.device)
    else:
        x = content.clone()
    architecture = backbone.architecture
    lbfgs = params["optimiser"] == "lbfgs"
    variable = (to_input(architecture, x) if lbfgs else x).detach().requires_grad_(True)
    layers = [*dict.fromkeys([*content_layers, *style_layers])]
    wc, ws, wtv = params["content_weight"], params["style_weight"], params["tv_weight"]

    def loss_of() -> torch.Tensor:
        network_input = variable if lbfgs else to_input(architecture, variable)
        found = backbone.activations(network_input, layers, preprocessed=True)
        loss = variable.new_zeros(())
        for name in content_layers:
            loss = loss + wc * F.mse_loss(found[name], content_targets[name])
        for name in style_layers:
            loss = loss + ws * F.mse_loss(gram(found[name]), style_targets[name])
        if wtv:
            loss = loss + wtv * total_variation(network_input)
        return loss

    if lbfgs:
        optimiser: torch.optim.Optimizer = torch.optim.LBFGS(
            [variable], lr=1, max_iter=1, history_size=100, tolerance_grad=0.0, tolerance_change=0.0
        )
    else:
        optimiser = torch.optim.Adam([variable], lr=params["learning_rate"])

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = loss_of()
        loss.backward()
        return loss

    for iteration in range(1, points[-1] + 1):
        optimiser.step(closure)
        if iteration in points:
            image = from_input(architecture, variable.detach()) if lbfgs else variable.detach()
            if not torch.isfinite(image).all():
                raise ValueError(
                    f"style transfer diverged (non-finite image at iteration {iteration}): lower "
                    "style_weight/content_weight or use optimiser adam"
                )
            on_snapshot(iteration, image.clamp(0, 1))
