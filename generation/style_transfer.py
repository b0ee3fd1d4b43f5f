"""Neural style transfer after Gatys, Ecker & Bethge (2016): optimise an image x so that its backbone features
match a content image's and its Gram matrices match a style image's.

    L(x) = w_c · Σ_{l ∈ content} mean((F_l(x) - F_l(c))²)
         + w_s · Σ_{l ∈ style}   mean((G_l(x) - G_l(s))²),    G_l = F_l F_lᵀ / (C_l·H_l·W_l)
         + w_tv · Σ ((x_{i+1,j} - x_{i,j})² + (x_{i,j+1} - x_{i,j})²)

F_l is layer l's output (C_l x H_l·W_l); all three terms are computed on the backbone's input tensor (what the
network sees: ImageNet-normalised RGB for VGG-19, Caffe BGR 0..255 for NIN), as neural-style does for its
Caffe models. x starts at the content image or at uniform noise U(0, 1) from torch.Generator(seed).

L-BFGS is our own (`LBFGS` below): torch's, without a line search as neural-style runs it, overshot to 1e23
and then stalled for good on NIN (input 0..255, a badly scaled quartic loss), and its strong-Wolfe search did
not recover from the infinite loss either. Ours backtracks (Armijo) so every iteration lowers the loss. Adam
is torch's, on the [0, 1] image (`learning_rate` in pixel units). One iteration is one step, so the image
after k iterations is the same whether the run stops at k or goes on: snapshots share bytes with shorter runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F

from generation.backbones import Backbone, to_input


def gram(features: torch.Tensor) -> torch.Tensor:
    n, c, h, w = features.shape
    flat = features.reshape(n * c, h * w)
    return flat @ flat.t() / (c * h * w)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    return ((x[:, :, 1:, :] - x[:, :, :-1, :]) ** 2).sum() + ((x[:, :, :, 1:] - x[:, :, :, :-1]) ** 2).sum()


class LBFGS:
    """L-BFGS (Nocedal & Wright 2006, algorithms 7.4-7.5) on a flat variable, with Armijo backtracking.

    Direction: the two-loop recursion over the last `history` pairs (s, y) with H0 = sᵀy / yᵀy; the first step
    (and any step after a non-descent direction) is -g scaled so its largest entry is `first_step`. Step length
    1, halved until L(x + t·d) ≤ L(x) + 1e-4·t·gᵀd (at most 40 times; then the point stays, as at a minimum).
    Pairs with sᵀy ≤ 1e-10·yᵀy are skipped, which keeps the inverse-Hessian estimate positive definite.
    """

    def __init__(
        self,
        x: torch.Tensor,
        evaluate: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
        *,
        history: int = 100,
        first_step: float = 1.0,
    ):
        self.x = x.detach().clone()
        self.evaluate = evaluate
        self.history = history
        self.first_step = first_step
        self.pairs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.loss, self.grad = evaluate(self.x)

    def direction(self) -> torch.Tensor:
        if not self.pairs:
            return -self.grad * (self.first_step / self.grad.abs().max().clamp_min(1e-30))
        q = -self.grad
        alphas = []
        for s, y, rho in reversed(self.pairs):
            alpha = rho * torch.dot(s, q)
            q = q - alpha * y
            alphas.append(alpha)
        s, y, _ = self.pairs[-1]
        q = q * (torch.dot(s, y) / torch.dot(y, y))
        for (s, y, rho), alpha in zip(self.pairs, reversed(alphas), strict=True):
            q = q + s * (alpha - rho * torch.dot(y, q))
        return q

    def step(self) -> None:
        d = self.direction()
        slope = torch.dot(self.grad, d)
        if not slope < 0:  # not a descent direction (numerically): restart from steepest descent
            self.pairs.clear()
            d = self.direction()
            slope = torch.dot(self.grad, d)
        t = 1.0
        for _ in range(40):
            candidate = self.x + t * d
            loss, grad = self.evaluate(candidate)
            if torch.isfinite(loss) and loss <= self.loss + 1e-4 * t * slope:
                break
            t *= 0.5
        else:
            return
        s, y = candidate - self.x, grad - self.grad
        sy, yy = torch.dot(s, y), torch.dot(y, y)
        if sy > 1e-10 * yy:
            self.pairs.append((s, y, 1.0 / sy))
            del self.pairs[: -self.history]
        self.x, self.loss, self.grad = candidate, loss, grad


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
    layers = [*dict.fromkeys([*content_layers, *style_layers])]
    wc, ws, wtv = params["content_weight"], params["style_weight"], params["tv_weight"]

    def loss_of(image: torch.Tensor) -> torch.Tensor:
        network_input = to_input(architecture, image)
        found = backbone.activations(network_input, layers, preprocessed=True)
        loss = image.new_zeros(())
        for name in content_layers:
            loss = loss + wc * F.mse_loss(found[name], content_targets[name])
        for name in style_layers:
            loss = loss + ws * F.mse_loss(gram(found[name]), style_targets[name])
        if wtv:
            loss = loss + wtv * total_variation(network_input)
        return loss

    shape = x.shape
    if params["optimiser"] == "lbfgs":
        # The variable is the image in 0..255 pixel units: the first step moves the most-changed pixel by one level.
        def evaluate(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            variable = flat.detach().requires_grad_(True)
            loss = loss_of(variable.view(shape) / 255)
            (gradient,) = torch.autograd.grad(loss, variable)
            return loss.detach(), gradient

        lbfgs = LBFGS((x * 255).reshape(-1), evaluate)
        step, current = lbfgs.step, lambda: lbfgs.x.view(shape) / 255
    else:
        variable = x.detach().clone().requires_grad_(True)
        adam = torch.optim.Adam([variable], lr=params["learning_rate"])

        def step() -> None:
            adam.zero_grad()
            loss_of(variable).backward()
            adam.step()

        def current() -> torch.Tensor:
            return variable.detach()

    for iteration in range(1, points[-1] + 1):
        step()
        if iteration in points:
            image = current()
            if not torch.isfinite(image).all():
                raise ValueError(
                    f"style transfer diverged (non-finite image at iteration {iteration}): lower "
                    "style_weight/content_weight or use optimiser adam"
                )
            on_snapshot(iteration, image.clamp(0, 1))
