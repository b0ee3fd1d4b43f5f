"""Generator adapters: BigGAN-deep (default) and DCGAN, behind one small interface.

An adapter owns a `torch.nn.Module` in eval mode and turns recipes into input tensors and image
tensors in [-1, 1]. The perturbation engine (perturbation.py) only sees parameter names, so any
module works; an adapter adds named target presets and, for class-conditional models, the
semantic (class-pathway) modes.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from generation.recipes import Recipe


def stable_seed(*parts: object) -> int:
    """A 63-bit seed derived from the parts, identical in every process and on every platform."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def interpolate(a: torch.Tensor, b: torch.Tensor, t: float, method: str) -> torch.Tensor:
    """lerp: (1-t)a + tb. slerp: sin((1-t)Ω)/sin Ω · a + sin(tΩ)/sin Ω · b, Ω the angle between a and b."""
    if method == "lerp":
        return (1 - t) * a + t * b
    cos = torch.clamp(torch.dot(a.flatten(), b.flatten()) / (a.norm() * b.norm()), -1.0, 1.0)
    omega = torch.arccos(cos)
    if omega.abs() < 1e-6:
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


class GeneratorAdapter:
    """What the renderer needs from a generator; subclasses fill in the model specifics."""

    architecture = ""
    conditional = False
    presets: dict[str, str] = {}

    def __init__(self, model: nn.Module, *, config: dict[str, Any], model_id: str, sha256: str, source: str):
        self.model = model.eval()
        self.config = config
        self.model_id = model_id
        self.sha256 = sha256
        self.source = source

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def native_size(self) -> int:
        raise NotImplementedError

    @property
    def num_classes(self) -> int:
        return 0

    def parameter_names(self) -> list[str]:
        return [name for name, _ in self.model.named_parameters()]

    def target_names(self, targets: Sequence[str]) -> list[str]:
        """Parameter names selected by presets, `block:N`, or `re:<regex>` (searched in each name).

        Raises ValueError when an entry is unknown or selects nothing.
        """
        names = self.parameter_names()
        chosen: set[str] = set()
        for target in targets:
            pattern = self.target_pattern(target)
            hits = {n for n in names if re.search(pattern, n)}
            if not hits:
                raise ValueError(f"target {target!r} selects no parameter of {self.architecture} {self.model_id}")
            chosen |= hits
        return [n for n in names if n in chosen]

    def target_pattern(self, target: str) -> str:
        if target.startswith("re:"):
            try:
                re.compile(target[3:])
            except re.error as exc:
                raise ValueError(f"target {target!r}: bad regular expression ({exc})") from None
            return target[3:]
        if target.startswith("block:"):
            number = target.split(":", 1)[1]
            if not number.isdigit():
                raise ValueError(f"target {target!r}: block:N needs a number")
            return self.block_pattern(int(number))
        if target in self.presets:
            return self.presets[target]
        known = ", ".join([*self.presets, "block:N", "re:<regex>"])
        raise ValueError(f"unknown target {target!r} for {self.architecture} (known: {known})")

    def block_pattern(self, number: int) -> str:
        raise NotImplementedError

    def embedding_names(self) -> list[str]:
        raise ValueError(f"{self.architecture} has no class embedding: semantic perturbations need BigGAN")

    def latent(self, seed: int, truncation: float | None) -> torch.Tensor:
        raise NotImplementedError

    def generate(self, recipes: Sequence[Recipe], batch_size: int) -> torch.Tensor:
        """Images in [-1, 1] (N, 3, H, W) for the recipes, run as one batch padded to batch_size.

        Padding matters for bit-exactness: CPU kernels give last-bit differences between batch
        sizes (measured), while at a fixed batch size a sample's output does not depend on its
        position or its batch mates. So every batch runs at exactly the recipe's batch size.
        """
        raise NotImplementedError

    def recipe_latent(self, recipe: Recipe) -> torch.Tensor:
        if recipe.arithmetic:
            z = self.arithmetic_latent(recipe.arithmetic, recipe.truncation)
        else:
            z = self.latent(recipe.seed, recipe.truncation)
        if recipe.walk:
            z = interpolate(
                z, self.latent(recipe.walk["to_seed"], recipe.truncation), recipe.walk["t"], recipe.walk["method"]
            )
        return z

    def arithmetic_latent(self, terms: dict[str, list[int]], truncation: float | None) -> torch.Tensor:
        """z = z̄(a) - z̄(b) + z̄(c), each term the mean z of its seeds (Radford et al., DCGAN).

        No re-truncation: for BigGAN each z(s) is already truncation·truncnorm(-2, 2), and the sum is fed as is.
        """

        def mean(seeds: list[int]) -> torch.Tensor:
            return torch.stack([self.latent(seed, truncation) for seed in seeds]).mean(dim=0)

        return mean(terms["a"]) - mean(terms["b"]) + mean(terms["c"])


# --- BigGAN-deep ---------------------------------------------------------------------------------

BIGGAN_PRETRAINED = ("biggan-deep-128", "biggan-deep-256", "biggan-deep-512")


def _corrected_batchnorm_class():
    from pytorch_pretrained_biggan.model import BigGANBatchNorm

    class TruncationCorrectedBatchNorm(BigGANBatchNorm):
        """BigGANBatchNorm with the truncation statistics looked up correctly.

        The package computes modf(t / 0.02) and mixes rows as means[i]·f + means[i+1]·(1-f): the
        weights are reversed, and float error puts t = 0.14, 0.28, 0.56, 0.58, 0.94 off the grid
        (0.58 then gets the statistics of 0.56). Here a t within 1e-9 of the grid uses its row
        exactly, and other t interpolate as means[i]·(1-f) + means[i+1]·f.
        """

        def _stats(self, truncation: float) -> tuple[torch.Tensor, torch.Tensor]:
            position = truncation / self.step_size
            nearest = round(position)
            if abs(position - nearest) < 1e-9:
                return self.running_means[nearest], self.running_vars[nearest]
            start = math.floor(position)
            frac = position - start
            return (
                self.running_means[start] * (1 - frac) + self.running_means[start + 1] * frac,
                self.running_vars[start] * (1 - frac) + self.running_vars[start + 1] * frac,
            )

        def forward(self, x, truncation, condition_vector=None):
            running_mean, running_var = self._stats(truncation)
            if not self.conditional:
                return torch.nn.functional.batch_norm(
                    x, running_mean, running_var, self.weight, self.bias, training=False, momentum=0.0, eps=self.eps
                )
            running_mean = running_mean[None, :, None, None]
            running_var = running_var[None, :, None, None]
            weight = 1 + self.scale(condition_vector)[:, :, None, None]
            bias = self.offset(condition_vector)[:, :, None, None]
            return (x - running_mean) / torch.sqrt(running_var + self.eps) * weight + bias

    return TruncationCorrectedBatchNorm


@contextmanager
def _skip_init(skip: bool) -> Iterator[None]:
    """Leave weights uninitialised while building a module whose state_dict is loaded right after
    (random init of 50M parameters costs ~0.5 s; the meta device is slower still for spectral norm)."""
    if not skip:
        yield
        return
    saved = (nn.Linear.reset_parameters, nn.modules.conv._ConvNd.reset_parameters)
    nn.Linear.reset_parameters = nn.modules.conv._ConvNd.reset_parameters = lambda self: None
    try:
        yield
    finally:
        nn.Linear.reset_parameters, nn.modules.conv._ConvNd.reset_parameters = saved


def build_biggan(config: dict[str, Any], *, init: bool = True) -> nn.Module:
    """A BigGAN module (CPU) for a config dict, with the truncation lookup corrected, in eval mode."""
    from pytorch_pretrained_biggan import BigGAN, BigGANConfig
    from pytorch_pretrained_biggan.model import BigGANBatchNorm

    corrected = _corrected_batchnorm_class()
    with _skip_init(not init):
        model = BigGAN(BigGANConfig.from_dict(config))
    for module in model.modules():
        if type(module) is BigGANBatchNorm:
            module.__class__ = corrected
    return model.eval()


class BigGANAdapter(GeneratorAdapter):
    """BigGAN-deep from pytorch-pretrained-biggan: conditional on an ImageNet class vector."""

    architecture = "biggan-deep"
    conditional = True
    presets = {
        "all": r"",
        "convs": r"^generator\.(layers\.\d+\.conv_\d|conv_to_rgb)\.",
        "conditional-bn": r"^generator\.layers\.\d+\.bn_\d\.(scale|offset)\.",
        "embedding": r"^embeddings\.",
        "gen_z": r"^generator\.gen_z\.",
        "attention": r"^generator\.layers\.\d+\.(snconv1x1_\w+\.|gamma$)",
    }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._latents: dict[tuple[int, float | None], torch.Tensor] = {}

    @property
    def native_size(self) -> int:
        return 4 * 2 ** sum(1 for layer in self.config["layers"] if layer[0])

    @property
    def num_classes(self) -> int:
        return int(self.config.get("num_classes", 1000))

    @property
    def z_dim(self) -> int:
        return int(self.config.get("z_dim", 128))

    def block_pattern(self, number: int) -> str:
        count = len(self.model.generator.layers)
        if number >= count:
            raise ValueError(f"target block:{number}: {self.model_id} has generator.layers 0..{count - 1}")
        return rf"^generator\.layers\.{number}\."

    def embedding_names(self) -> list[str]:
        return ["embeddings.weight"]

    def latent(self, seed: int, truncation: float | None) -> torch.Tensor:
        """z = truncation · truncnorm(-2, 2) from numpy's RandomState(seed): the package's own sampler,
        so seed s gives the z of `truncated_noise_sample(seed=s)`. Cached: a design reuses each seed
        for every class x condition x draw, and scipy's sampler costs ~0.5 ms a call."""
        key = (seed, truncation)
        if key not in self._latents:
            from scipy.stats import truncnorm

            values = truncnorm.rvs(-2, 2, size=(self.z_dim,), random_state=np.random.RandomState(seed))
            if len(self._latents) > 65536:
                self._latents.clear()
            self._latents[key] = torch.from_numpy((truncation * values.astype(np.float32)).astype(np.float32))
        return self._latents[key]

    def one_hot(self, index: int) -> torch.Tensor:
        vector = torch.zeros(self.num_classes)
        vector[index] = 1.0
        return vector

    def class_vector(self, recipe: Recipe) -> torch.Tensor:
        """The class input y; class-mix replaces it by (1-ε)·e_c + (ε/k)·Σ_j e_{r_j}."""
        y = self.one_hot(recipe.class_index)
        if recipe.walk:
            y = interpolate(y, self.one_hot(recipe.walk["to_class"]), recipe.walk["t"], recipe.walk["method"])
        perturbation = recipe.perturbation or {}
        if perturbation.get("mode") == "class-mix":
            epsilon = perturbation["epsilon"]
            mix = self.mix_classes(recipe)
            y = (1 - epsilon) * y
            for other in mix:
                y[other] += epsilon / len(mix)
        return y

    def mix_classes(self, recipe: Recipe) -> list[int]:
        """The k random classes (≠ the target) that class-mix blends in, fixed by (seed, draw, class)."""
        perturbation = recipe.perturbation
        generator = torch.Generator().manual_seed(
            stable_seed("class-mix", perturbation["seed"], recipe.draw, recipe.class_index)
        )
        others = [c for c in torch.randperm(self.num_classes, generator=generator).tolist() if c != recipe.class_index]
        return sorted(others[: perturbation["k"]])

    def random_embedding(self, embed: torch.Tensor, recipe: Recipe) -> torch.Tensor:
        """random-embedding: e' = ‖e‖ · unit((1-ε)·unit(e) + ε·unit(r)), r ~ N(0, I) fixed by (seed, draw, class).

        ε = 1 gives a random direction of the same norm as the class embedding.
        """
        epsilon = recipe.perturbation["epsilon"]
        if epsilon == 0:  # the renormalisation below would change last bits: ε = 0 must be the baseline
            return embed
        generator = torch.Generator().manual_seed(
            stable_seed("random-embedding", recipe.perturbation["seed"], recipe.draw, recipe.class_index)
        )
        r = torch.randn(embed.shape[-1], generator=generator)
        e = embed.float().cpu()
        norm = e.norm()
        mixed = (1 - epsilon) * e / norm + epsilon * r / r.norm()
        return (norm * mixed / mixed.norm()).to(embed.dtype).to(embed.device)

    def generate(self, recipes: Sequence[Recipe], batch_size: int) -> torch.Tensor:
        truncations = {r.truncation for r in recipes}
        if len(truncations) != 1:
            raise ValueError("one batch must share its truncation")
        truncation = truncations.pop()
        count = len(recipes)
        z = torch.zeros(max(batch_size, count), self.z_dim)
        y = torch.zeros(max(batch_size, count), self.num_classes)
        for row, recipe in enumerate(recipes):
            z[row] = self.recipe_latent(recipe)
            if recipe.walk or (recipe.perturbation or {}).get("mode") == "class-mix":
                y[row] = self.class_vector(recipe)
            else:
                y[row, recipe.class_index] = 1.0
        device, dtype = self.device, self.dtype
        with torch.inference_mode():
            embed = self.model.embeddings(y.to(device, dtype))
            for row, recipe in enumerate(recipes):
                if (recipe.perturbation or {}).get("mode") == "random-embedding":
                    embed[row] = self.random_embedding(embed[row], recipe)
            condition = torch.cat((z.to(device, dtype), embed), dim=1)
            return self.model.generator(condition, truncation)[:count]


# --- DCGAN ---------------------------------------------------------------------------------------


class DCGANGenerator(nn.Module):
    """The DCGAN generator of Radford et al. (2016), laid out like PyTorch's examples/dcgan `netG`.

    nz → ConvT(4, stride 1) to 4x4 with ngf·2^(n-1) channels, then n = log2(size) - 2 stride-2
    ConvT blocks halving the channels (BatchNorm + ReLU between), ending in nc channels and tanh.
    For size 64 the state-dict keys (`main.0.weight`, …) match that example's checkpoints.
    """

    def __init__(self, nz: int = 100, ngf: int = 64, nc: int = 3, image_size: int = 64):
        super().__init__()
        ups = int(math.log2(image_size)) - 2
        if image_size < 8 or 2 ** (ups + 2) != image_size:
            raise ValueError(f"DCGAN image_size must be a power of two ≥ 8, not {image_size}")
        channels = ngf * 2 ** (ups - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(nz, channels, 4, 1, 0, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(True),
        ]
        for _ in range(ups - 1):
            layers += [
                nn.ConvTranspose2d(channels, channels // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(channels // 2),
                nn.ReLU(True),
            ]
            channels //= 2
        layers += [nn.ConvTranspose2d(channels, nc, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z)


def build_dcgan(config: dict[str, Any], *, init: bool = True) -> nn.Module:
    with _skip_init(not init):
        model = DCGANGenerator(
            nz=int(config.get("nz", 100)),
            ngf=int(config.get("ngf", 64)),
            nc=int(config.get("nc", 3)),
            image_size=int(config.get("image_size", 64)),
        )
    return model.eval()


class DCGANAdapter(GeneratorAdapter):
    """An unconditional DCGAN (e.g. trained on artworks); z ~ N(0, I) from torch's generator(seed)."""

    architecture = "dcgan"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        convs = [i for i, m in enumerate(self.model.main) if isinstance(m, nn.ConvTranspose2d)]
        norms = [i for i, m in enumerate(self.model.main) if isinstance(m, nn.BatchNorm2d)]
        self.presets = {
            "all": r"",
            "convs": rf"^main\.({'|'.join(map(str, convs))})\.",
            "batchnorm": rf"^main\.({'|'.join(map(str, norms))})\.",
        }
        self._convs = convs

    @property
    def native_size(self) -> int:
        return int(self.config.get("image_size", 64))

    @property
    def nz(self) -> int:
        return int(self.config.get("nz", 100))

    def block_pattern(self, number: int) -> str:
        """block:N is the N-th ConvTranspose block (0 = the 4x4 projection) with its BatchNorm."""
        if number >= len(self._convs):
            raise ValueError(f"target block:{number}: this DCGAN has blocks 0..{len(self._convs) - 1}")
        start = self._convs[number]
        return rf"^main\.({start}|{start + 1})\."

    def latent(self, seed: int, truncation: float | None) -> torch.Tensor:
        return torch.randn(self.nz, generator=torch.Generator().manual_seed(seed))

    def generate(self, recipes: Sequence[Recipe], batch_size: int) -> torch.Tensor:
        count = len(recipes)
        z = torch.zeros(max(batch_size, count), self.nz, 1, 1)
        for row, recipe in enumerate(recipes):
            z[row, :, 0, 0] = self.recipe_latent(recipe)
        with torch.inference_mode():
            return self.model(z.to(self.device, self.dtype))[:count]


ARCHITECTURES = {"biggan-deep": (build_biggan, BigGANAdapter), "dcgan": (build_dcgan, DCGANAdapter)}


def architecture_of(config: dict[str, Any]) -> str:
    """config.json of a BigGAN folder has no `architecture` key (package format); DCGAN's says dcgan."""
    return config.get("architecture", "biggan-deep")
