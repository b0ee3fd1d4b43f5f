"""Classification backbones for style transfer and DeepDream: VGG-19, nin-imagenet-conv and GoogLeNet.

Each module has exactly the state_dict layout of the published weights, so those files load as they are:
VGG-19 and GoogLeNet as torchvision's (`features.N.*`/`classifier.N.*`; `conv1.conv.*`, `inception3a.branch2.0.*`,
`aux1.*`, `fc.*`), NIN as the Caffe model's PyTorch port (`features.N.*`, Caffe layer names mapped in
backbone_catalog). They are defined here rather than imported from torchvision: PyPI's torchvision wheel links
the CUDA libtorch and does not import with the CPU torch build this project pins. ReLUs are not in-place, so an
objective can read a layer's output before the next one runs.

Weights follow BigGAN's discipline (see weights.py): a folder with config.json + pytorch_model.bin +
weights.json, strict loading that lists missing/unexpected/wrong-shape keys, random weights for tests.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from generation.backbone_catalog import (
    CONFIG_NAME,
    GOOGLENET_BLOCKS,
    LAYERS,
    NIN_LAYERS,
    PUBLISHED,
    RECORD_NAME,
    VGG19_LAYERS,
    WEIGHTS_NAME,
    BackboneError,
    BackboneInfo,
    resolve_backbone,
)
from generation.weights import WeightsError, atomic_write_bytes, check_state_dict, save_folder

# --- architectures -------------------------------------------------------------------------------


class VGG19(nn.Module):
    """torchvision's VGG-19 (configuration E): 16 3x3 convs in 5 blocks with max pools, then 3 linear layers."""

    def __init__(self, channels: Iterable[int] = (64, 128, 256, 512, 512), hidden: int = 4096, num_classes: int = 1000):
        super().__init__()
        layers: list[nn.Module] = []
        names: list[str] = []
        previous = 3
        for block, (width, convs) in enumerate(zip(channels, (2, 2, 4, 4, 4), strict=True), start=1):
            for i in range(1, convs + 1):
                layers += [nn.Conv2d(previous, width, 3, padding=1), nn.ReLU()]
                names += [f"conv{block}_{i}", f"relu{block}_{i}"]
                previous = width
            layers.append(nn.MaxPool2d(2, 2))
            names.append(f"pool{block}")
        self.features = nn.Sequential(*layers)
        self.layer_names = names
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(previous * 49, hidden),
            nn.ReLU(),
            nn.Dropout(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Dropout(),
            nn.Linear(hidden, num_classes),
        )

    def stages(self) -> list[tuple[str, Callable[[torch.Tensor], torch.Tensor]]]:
        head = lambda x: self.classifier(torch.flatten(self.avgpool(x), 1))  # noqa: E731
        return [*zip(self.layer_names, self.features, strict=True), ("fc", head)]


class NIN(nn.Module):
    """nin-imagenet-conv (Lin et al. 2014) with the Caffe model's layers: conv1 11x11/4, cccp1-2 (1x1), pool1,
    conv2 5x5, cccp3-4, pool2, conv3 3x3, cccp5-6, pool3, dropout, conv4-1024 3x3, cccp7-1024, cccp8-1024 (1000
    maps), global 6x6 average pool. Caffe pools round up (ceil_mode). Indices match the published port."""

    def __init__(self, channels: Iterable[int] = (96, 256, 384, 1024), num_classes: int = 1000):
        super().__init__()
        c1, c2, c3, c4 = channels

        def pool() -> nn.Module:
            return nn.MaxPool2d(3, 2, ceil_mode=True)

        self.features = nn.Sequential(
            nn.Conv2d(3, c1, 11, 4),
            nn.ReLU(),
            nn.Conv2d(c1, c1, 1),
            nn.ReLU(),
            nn.Conv2d(c1, c1, 1),
            nn.ReLU(),
            pool(),
            nn.Conv2d(c1, c2, 5, 1, 2),
            nn.ReLU(),
            nn.Conv2d(c2, c2, 1),
            nn.ReLU(),
            nn.Conv2d(c2, c2, 1),
            nn.ReLU(),
            pool(),
            nn.Conv2d(c2, c3, 3, 1, 1),
            nn.ReLU(),
            nn.Conv2d(c3, c3, 1),
            nn.ReLU(),
            nn.Conv2d(c3, c3, 1),
            nn.ReLU(),
            pool(),
            nn.Dropout(0.5),
            nn.Conv2d(c3, c4, 3, 1, 1),
            nn.ReLU(),
            nn.Conv2d(c4, c4, 1),
            nn.ReLU(),
            nn.Conv2d(c4, num_classes, 1),
            nn.ReLU(),
            nn.AvgPool2d(6, 1, ceil_mode=True),
        )

    def stages(self) -> list[tuple[str, Callable[[torch.Tensor], torch.Tensor]]]:
        # Caffe's pool4 is a 6x6 average over the 6x6 maps of a 224-px input: a global average there, and
        # global pooling keeps class scores defined at any input size.
        pool4 = lambda x: x.mean(dim=(2, 3), keepdim=True)  # noqa: E731
        fc = lambda x: torch.flatten(x, 1)  # noqa: E731
        return [*zip(NIN_LAYERS[:-2], list(self.features)[:-1], strict=True), ("pool4", pool4), ("fc", fc)]


class BasicConv2d(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, **kwargs: Any):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    """Four branches concatenated: 1x1; 1x1→3x3; 1x1→3x3 (torchvision's kernel, where the paper has 5x5);
    3x3 max pool→1x1."""

    def __init__(self, in_channels: int, widths: tuple[int, ...]):
        super().__init__()
        ch1, ch3_reduce, ch3, ch5_reduce, ch5, pool_proj = widths
        self.branch1 = BasicConv2d(in_channels, ch1, kernel_size=1)
        self.branch2 = nn.Sequential(
            BasicConv2d(in_channels, ch3_reduce, kernel_size=1), BasicConv2d(ch3_reduce, ch3, kernel_size=3, padding=1)
        )
        self.branch3 = nn.Sequential(
            BasicConv2d(in_channels, ch5_reduce, kernel_size=1), BasicConv2d(ch5_reduce, ch5, kernel_size=3, padding=1)
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True), BasicConv2d(in_channels, pool_proj, kernel_size=1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    """Training-time auxiliary classifier; kept because the published state_dict holds it, never run here."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 128, hidden: int = 1024):
        super().__init__()
        self.conv = BasicConv2d(in_channels, width, kernel_size=1)
        self.fc1 = nn.Linear(width * 16, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)


GOOGLENET_SPEC = [
    (64, 96, 128, 16, 32, 32),
    (128, 128, 192, 32, 96, 64),
    (192, 96, 208, 16, 48, 64),
    (160, 112, 224, 24, 64, 64),
    (128, 128, 256, 24, 64, 64),
    (112, 144, 288, 32, 64, 64),
    (256, 160, 320, 32, 128, 128),
    (256, 160, 320, 32, 128, 128),
    (384, 192, 384, 48, 128, 128),
]


class GoogLeNet(nn.Module):
    """torchvision's GoogLeNet (Inception v1). Its published weights expect RGB in [-1, 1] (torchvision's
    `transform_input` maps ImageNet-normalised input to exactly that); see `to_input`."""

    def __init__(self, divisor: int = 1, num_classes: int = 1000):
        super().__init__()

        def c(n: int) -> int:
            return max(1, n // divisor)

        self.conv1 = BasicConv2d(3, c(64), kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(c(64), c(64), kernel_size=1)
        self.conv3 = BasicConv2d(c(64), c(192), kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        previous = c(192)
        outputs = {}
        for name, spec in zip(GOOGLENET_BLOCKS, GOOGLENET_SPEC, strict=True):
            widths = tuple(c(n) for n in spec)
            self.add_module(name, Inception(previous, widths))
            previous = widths[0] + widths[2] + widths[4] + widths[5]
            outputs[name] = previous
            if name == "inception3b":
                self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
            if name == "inception4e":
                self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.aux1 = InceptionAux(outputs["inception4a"], num_classes, c(128), c(1024))
        self.aux2 = InceptionAux(outputs["inception4d"], num_classes, c(128), c(1024))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(previous, num_classes)

    def stages(self) -> list[tuple[str, Callable[[torch.Tensor], torch.Tensor]]]:
        head = lambda x: self.fc(torch.flatten(self.avgpool(x), 1))  # noqa: E731
        return [(name, getattr(self, name)) for name in LAYERS["googlenet"][:-1]] + [("fc", head)]


PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "vgg19": {
        "full": {"channels": [64, 128, 256, 512, 512], "hidden": 4096, "num_classes": 1000},
        "tiny": {"channels": [4, 8, 8, 16, 16], "hidden": 16, "num_classes": 1000},
    },
    "nin": {
        "full": {"channels": [96, 256, 384, 1024], "num_classes": 1000},
        "tiny": {"channels": [8, 16, 16, 32], "num_classes": 1000},
    },
    "googlenet": {"full": {"divisor": 1, "num_classes": 1000}, "tiny": {"divisor": 16, "num_classes": 1000}},
}


def build_backbone(config: dict[str, Any]) -> nn.Module:
    """The module for a config.json, in eval mode (dropout off, batch-norm statistics frozen)."""
    architecture = config.get("architecture")
    try:
        if architecture == "vgg19":
            model: nn.Module = VGG19(
                config.get("channels", (64, 128, 256, 512, 512)),
                int(config.get("hidden", 4096)),
                int(config.get("num_classes", 1000)),
            )
        elif architecture == "nin":
            model = NIN(config.get("channels", (96, 256, 384, 1024)), int(config.get("num_classes", 1000)))
        elif architecture == "googlenet":
            model = GoogLeNet(int(config.get("divisor", 1)), int(config.get("num_classes", 1000)))
        else:
            raise BackboneError(f"unknown backbone architecture {architecture!r} (known: {', '.join(LAYERS)})")
    except (TypeError, ValueError) as exc:
        raise BackboneError(f"not a valid {architecture} config: {exc}") from None
    return model.eval()


_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def to_input(architecture: str, image: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] (N, 3, H, W) → what the published weights were trained on (differentiable).

    vgg19: torchvision's ImageNet normalisation; nin: Caffe's BGR in 0..255 minus the mean pixel;
    googlenet: RGB in [-1, 1].
    """
    if architecture == "vgg19":
        mean = image.new_tensor(_IMAGENET_MEAN).view(1, 3, 1, 1)
        std = image.new_tensor(_IMAGENET_STD).view(1, 3, 1, 1)
        return (image - mean) / std
    if architecture == "nin":
        return image.flip(1) * 255 - image.new_tensor(_CAFFE_MEAN_BGR).view(1, 3, 1, 1)
    return image * 2 - 1


class Backbone:
    """A loaded backbone: the module, its architecture and where it came from; reads named layers."""

    def __init__(self, model: nn.Module, *, info: BackboneInfo):
        self.model = model.eval()
        self.info = info
        self.architecture = info.architecture
        self._stages = model.stages()
        self._order = {name: i for i, (name, _) in enumerate(self._stages)}

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def activations(
        self, image: torch.Tensor, layers: Iterable[str], *, preprocessed: bool = False
    ) -> dict[str, torch.Tensor]:
        """The outputs of the named layers for an RGB [0, 1] image (or, preprocessed, for the backbone's input
        tensor); stops after the deepest one."""
        wanted = set(layers)
        unknown = wanted - set(self._order)
        if unknown:
            raise ValueError(f"{self.architecture} has no layer {sorted(unknown)[0]!r}")
        last = max(self._order[name] for name in wanted)
        x = image if preprocessed else to_input(self.architecture, image)
        found = {}
        for name, stage in self._stages[: last + 1]:
            x = stage(x)
            if name in wanted:
                found[name] = x
        return found


# --- random weights, loading, downloads ----------------------------------------------------------


def random_backbone(architecture: str, preset: str, seed: int) -> tuple[dict[str, Any], nn.Module]:
    """Seeded He-normal convs and linears (bias 0) so activations keep their scale through the depth."""
    if architecture not in PRESETS:
        raise BackboneError(f"unknown architecture {architecture!r} (known: {', '.join(PRESETS)})")
    if preset not in PRESETS[architecture]:
        raise BackboneError(f"unknown preset {preset!r} (known: {', '.join(PRESETS[architecture])})")
    config = {"architecture": architecture, **PRESETS[architecture][preset]}
    fork_devices: list[int] = []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(seed)
        model = build_backbone(config)
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, nn.Conv2d | nn.Linear):
                    nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                    if module.bias is not None:
                        module.bias.zero_()
    return config, model.eval()


def make_random(folder: Path, *, architecture: str, preset: str = "tiny", seed: int = 0) -> str:
    """Write a random-weight backbone in the published state_dict layout; returns its sha256."""
    config, model = random_backbone(architecture, preset, seed)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    return save_folder(
        folder,
        config=config,
        state_dict=state,
        record={
            "source": "random",
            "architecture": architecture,
            "preset": preset,
            "seed": seed,
            "note": "untrained random weights: for tests and demos only",
        },
    )


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a corrupt/truncated file raises many kinds
        raise BackboneError(f"cannot read weights {path}: {str(exc).splitlines()[0]}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise BackboneError(f"{path} is not a state_dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_backbone(info: BackboneInfo, *, device: str = "cpu") -> Backbone:
    """Build from config.json, refuse missing/unexpected/wrong-shape keys, load strictly, eval, no grads."""
    model = build_backbone(info.config)
    path = info.folder / WEIGHTS_NAME
    state = _read_state_dict(path)
    expected = model.state_dict()
    # Batch-norm step counters are bookkeeping for training; files saved before torch 0.4 lack them.
    for key, value in expected.items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = value.clone()
    try:
        check_state_dict(expected, state, path=path)
    except WeightsError as exc:
        raise BackboneError(
            str(exc).replace("fit its config.json", f"fit {info.architecture} ({info.folder / CONFIG_NAME})")
        ) from None
    model.load_state_dict(state, strict=True)
    model = model.to(device).eval().requires_grad_(False)
    return Backbone(model, info=info)


def download(
    name: str,
    *,
    weights_dir: Path,
    timeout: float = 30.0,
    progress: Callable[[int, int | None], None] | None = None,
    url: str | None = None,
) -> Path:
    """Fetch published weights into weights_dir/name: timeout, progress, the publisher's sha256 prefix checked,
    the full sha256 recorded in weights.json, and a strict load before it counts as installed."""
    import requests

    if name not in PUBLISHED:
        raise BackboneError(f"unknown backbone {name!r} (published: {', '.join(PUBLISHED)})")
    published = PUBLISHED[name]
    url = url or published.url
    folder = weights_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{WEIGHTS_NAME}.", suffix=".part")
    try:
        try:
            with os.fdopen(fd, "wb") as handle, requests.get(url, stream=True, timeout=timeout) as response:
                response.raise_for_status()
                total = int(response.headers.get("content-length") or 0) or None
                for chunk in response.iter_content(chunk_size=1 << 20):
                    handle.write(chunk)
                    digest.update(chunk)
                    if progress:
                        progress(len(chunk), total)
        except requests.RequestException as exc:
            raise BackboneError(f"cannot download {name}: {str(exc).splitlines()[0]} (timeout {timeout:g} s)") from None
        if total is not None and Path(tmp).stat().st_size != total:
            raise BackboneError(f"download of {url} ended early: the server sent fewer bytes than announced")
        sha = digest.hexdigest()
        if published.sha256_prefix and not sha.startswith(published.sha256_prefix):
            raise BackboneError(
                f"{url} has sha256 {sha[:12]}…, but the publisher states {published.sha256_prefix}…: "
                "refusing it (a changed or corrupted file)"
            )
        os.replace(tmp, folder / WEIGHTS_NAME)
    finally:
        Path(tmp).unlink(missing_ok=True)
    config = {"architecture": published.architecture, **PRESETS[published.architecture]["full"]}
    atomic_write_bytes(folder / CONFIG_NAME, (json.dumps(config, indent=2, sort_keys=True) + "\n").encode())
    record = {"source": "download", "name": name, "url": url, "sha256": sha, "note": published.note}
    atomic_write_bytes(folder / RECORD_NAME, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
    load_backbone(resolve_backbone(name, weights_dir=weights_dir))  # refuse (and say so) what does not load
    return folder


_CACHE: dict[tuple[str, str, str], Backbone] = {}


def backbone_for(folder: Path, *, sha256: str, device: str, weights_dir: Path) -> Backbone:
    """One loaded backbone per worker process and device, reused across jobs (nothing modifies it)."""
    key = (str(folder), sha256, device)
    if key not in _CACHE:
        info = resolve_backbone(str(folder), weights_dir=weights_dir)
        if info.sha256 != sha256:
            raise BackboneError(
                f"backbone weights in {folder} changed since the set was planned "
                f"(sha256 {info.sha256[:12]}… ≠ {sha256[:12]}…)"
            )
        if len(_CACHE) >= 2:
            _CACHE.clear()
        _CACHE[key] = load_backbone(info, device=device)
    return _CACHE[key]


__all__ = [
    "LAYERS",
    "VGG19_LAYERS",
    "Backbone",
    "backbone_for",
    "build_backbone",
    "download",
    "load_backbone",
    "make_random",
    "to_input",
]
