"""The image-classification backbones that style transfer and DeepDream run on: names, published weights,
layer names and default layers. No torch here, so specs are checked (and admin pages drawn) without it.

A backbone folder looks like a BigGAN folder: `config.json` (with `architecture`), `pytorch_model.bin`
(a plain state_dict in the published layout) and `weights.json` (source, sha256).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.errors import SetupError
from generation.atomic_files import file_sha256

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "pytorch_model.bin"
RECORD_NAME = "weights.json"


@dataclass(frozen=True)
class PublishedBackbone:
    """Weights somebody published. `sha256_prefix` is what the publisher states: torchvision puts the first
    8 hex digits of the file's sha256 in its file name (torch.hub checks exactly that); the NIN port states none,
    so its download records the sha256 it received (trust on first use) and later loads check against that."""

    name: str
    architecture: str
    url: str
    sha256_prefix: str | None
    approx_mb: int
    note: str


PUBLISHED: dict[str, PublishedBackbone] = {
    "vgg19": PublishedBackbone(
        name="vgg19",
        architecture="vgg19",
        url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
        sha256_prefix="dcbb9e9d",
        approx_mb=548,
        note="torchvision VGG19_Weights.IMAGENET1K_V1 (Simonyan & Zisserman 2014)",
    ),
    "nin": PublishedBackbone(
        name="nin",
        architecture="nin",
        url="https://raw.githubusercontent.com/ProGamerGov/pytorch-nin/master/nin_imagenet.pth",
        sha256_prefix=None,
        approx_mb=29,
        note="nin-imagenet-conv (Lin et al. 2014, Caffe Model Zoo) converted to a PyTorch state_dict",
    ),
    "googlenet": PublishedBackbone(
        name="googlenet",
        architecture="googlenet",
        url="https://download.pytorch.org/models/googlenet-1378be20.pth",
        sha256_prefix="1378be20",
        approx_mb=50,
        note="torchvision GoogLeNet_Weights.IMAGENET1K_V1 (Inception v1, Szegedy et al. 2014)",
    ),
}

# Layer names, in forward order, that content/style/DeepDream objectives may name.
_VGG19_BLOCKS = (2, 2, 4, 4, 4)
VGG19_LAYERS: list[str] = []
for _block, _convs in enumerate(_VGG19_BLOCKS, start=1):
    for _i in range(1, _convs + 1):
        VGG19_LAYERS += [f"conv{_block}_{_i}", f"relu{_block}_{_i}"]
    VGG19_LAYERS.append(f"pool{_block}")
VGG19_LAYERS += ["fc"]  # the classifier's logits (for a DeepDream class objective)

# nin-imagenet-conv keeps Caffe's layer names; its ReLUs are relu0..relu12 without relu4 (as in the prototxt).
NIN_LAYERS = [
    "conv1",
    "relu0",
    "cccp1",
    "relu1",
    "cccp2",
    "relu2",
    "pool1",
    "conv2",
    "relu3",
    "cccp3",
    "relu5",
    "cccp4",
    "relu6",
    "pool2",
    "conv3",
    "relu7",
    "cccp5",
    "relu8",
    "cccp6",
    "relu9",
    "pool3",
    "drop",
    "conv4-1024",
    "relu10",
    "cccp7-1024",
    "relu11",
    "cccp8-1024",
    "relu12",
    "pool4",
    "fc",
]

GOOGLENET_BLOCKS = [
    "inception3a",
    "inception3b",
    "inception4a",
    "inception4b",
    "inception4c",
    "inception4d",
    "inception4e",
    "inception5a",
    "inception5b",
]
GOOGLENET_LAYERS = [
    "conv1",
    "maxpool1",
    "conv2",
    "conv3",
    "maxpool2",
    "inception3a",
    "inception3b",
    "maxpool3",
    "inception4a",
    "inception4b",
    "inception4c",
    "inception4d",
    "inception4e",
    "maxpool4",
    "inception5a",
    "inception5b",
    "fc",
]

LAYERS = {"vgg19": VGG19_LAYERS, "nin": NIN_LAYERS, "googlenet": GOOGLENET_LAYERS}

# Defaults: Gatys et al. (2016) layers for VGG-19 with neural-style's weights; neural-style's NIN settings.
STYLE_DEFAULTS: dict[str, dict[str, Any]] = {
    "vgg19": {
        "content_layers": ["relu4_2"],
        "style_layers": ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"],
        "content_weight": 5.0,
        "style_weight": 100.0,
    },
    "nin": {
        "content_layers": ["relu0", "relu3", "relu7", "relu12"],
        "style_layers": ["relu0", "relu3", "relu7", "relu12"],
        "content_weight": 10.0,
        "style_weight": 1000.0,
    },
}
DREAM_DEFAULT_LAYER = {"googlenet": "inception4c", "vgg19": "relu4_2", "nin": "relu7"}


class BackboneError(SetupError):
    """A backbone folder is missing, incomplete or does not match its config; the message says what to do."""


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackboneError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise BackboneError(f"{path} must hold a JSON object")
    return data


@dataclass(frozen=True)
class BackboneInfo:
    """What identifies a backbone folder without loading it (for planning recipes)."""

    folder: Path
    backbone_id: str
    architecture: str
    config: dict[str, Any]
    sha256: str
    untrained: bool

    def as_recipe(self) -> dict[str, str]:
        return {"id": self.backbone_id, "sha256": self.sha256, "architecture": self.architecture}


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def resolve_backbone(name: str, *, weights_dir: Path, base_dir: Path | None = None) -> BackboneInfo:
    """A published name → WEIGHTS_DIR/<name>; a path (has a separator or starts with '.') → that folder,
    relative to base_dir. Checks config, file and recorded sha256; fails with one line naming the command."""
    looks_like_path = "/" in name or os.sep in name or name.startswith(".")
    if looks_like_path:
        folder = Path(name).expanduser()
        if not folder.is_absolute():
            folder = (base_dir or Path.cwd()) / folder
        hint = f"`python manage.py backbone_weights make-random {folder} --architecture vgg19 --preset tiny`"
    else:
        folder = weights_dir / name
        if name in PUBLISHED:
            hint = f"`python manage.py backbone_weights download {name}`"
        else:
            hint = (
                f"`python manage.py backbone_weights make-random {folder} --architecture vgg19 --preset tiny` "
                f"(published: {', '.join(PUBLISHED)})"
            )
    weights = folder / WEIGHTS_NAME
    if not (folder / CONFIG_NAME).is_file() or not weights.is_file():
        raise BackboneError(f"backbone {name!r} is not in {folder}: fetch it with {hint} (rendering never downloads)")
    config = read_json(folder / CONFIG_NAME)
    architecture = config.get("architecture")
    if architecture not in LAYERS:
        raise BackboneError(
            f"{folder / CONFIG_NAME}: architecture must be one of {', '.join(LAYERS)}, not {architecture!r}"
        )
    stat = weights.stat()
    key = (str(weights), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = file_sha256(weights)
    sha = _SHA_CACHE[key]
    record = read_json(folder / RECORD_NAME) if (folder / RECORD_NAME).is_file() else {}
    if record.get("sha256") and record["sha256"] != sha:
        raise BackboneError(
            f"{weights} does not match the sha256 recorded in {folder / RECORD_NAME} "
            f"({sha[:12]}… ≠ {record['sha256'][:12]}…): the file changed or is truncated; "
            "fetch it again"
        )
    return BackboneInfo(
        folder=folder.resolve(),
        backbone_id=name if not looks_like_path else folder.name,
        architecture=architecture,
        config=config,
        sha256=sha,
        untrained=record.get("source") == "random",
    )
