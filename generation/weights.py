"""Model folders: resolve names offline, load strictly, make random-weight models, download real ones.

A model folder is the pytorch-pretrained-biggan `from_pretrained` format: `config.json` and
`pytorch_model.bin` (a plain state_dict), plus our `weights.json` record (source, sha256). We never
call `BigGAN.from_pretrained`: by name it always goes to the network, and it loads with
strict=False. Here a pretrained name resolves to `settings.WEIGHTS_DIR/<name>` or fails with one
line saying which command fetches it, and a partial or mismatched state_dict is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from config.errors import SetupError
from generation.atomic_files import atomic_write_bytes, file_sha256
from generation.generators import (
    ARCHITECTURES,
    BIGGAN_PRETRAINED,
    GeneratorAdapter,
    architecture_of,
    build_biggan,
)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "pytorch_model.bin"
RECORD_NAME = "weights.json"

_TINY_LAYERS = [(True, 16, 8), (True, 8, 4), (True, 4, 2), (True, 2, 1)]
_DEEP_256 = [
    (False, 16, 16),
    (True, 16, 16),
    (False, 16, 16),
    (True, 16, 8),
    (False, 8, 8),
    (True, 8, 8),
    (False, 8, 8),
    (True, 8, 4),
    (False, 4, 4),
    (True, 4, 2),
    (False, 2, 2),
    (True, 2, 1),
]
# Architectures of the released BigGAN-deep models (parameter counts match: 50.4M, 55.9M, 56.2M).
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"output_dim": 64, "channel_width": 8, "layers": _TINY_LAYERS, "attention_layer_position": 2},
    "128": {
        "output_dim": 128,
        "channel_width": 128,
        "layers": [
            (False, 16, 16),
            (True, 16, 16),
            (False, 16, 16),
            (True, 16, 8),
            (False, 8, 8),
            (True, 8, 4),
            (False, 4, 4),
            (True, 4, 2),
            (False, 2, 2),
            (True, 2, 1),
        ],
        "attention_layer_position": 8,
    },
    "256": {"output_dim": 256, "channel_width": 128, "layers": _DEEP_256, "attention_layer_position": 8},
    "512": {
        "output_dim": 512,
        "channel_width": 128,
        "layers": [*_DEEP_256, (False, 1, 1), (True, 1, 1)],
        "attention_layer_position": 8,
    },
}
# Random models (make-random): see random_biggan for why these are not the package's defaults.
RANDOM_EMBEDDING_STD = 0.4
RANDOM_ATTENTION_GAMMA = 1.0
_CONFIG_DEFAULTS = {"z_dim": 128, "class_embed_dim": 128, "num_classes": 1000, "eps": 1e-4, "n_stats": 51}

DOWNLOAD_BASE = "https://s3.amazonaws.com/models.huggingface.co/biggan"


class WeightsError(SetupError):
    """A model folder is missing, incomplete or does not match its config; the message says what to do."""


def resolve_model_folder(model: str, *, weights_dir: Path | None = None, cwd: Path | None = None) -> Path:
    """A pretrained/short name → WEIGHTS_DIR/<name>; anything with a path separator or an existing
    folder → that folder (relative to cwd). Fails with one line naming the command that provides it."""
    from django.conf import settings

    weights_dir = Path(weights_dir or settings.WEIGHTS_DIR)
    as_path = Path(model).expanduser()
    if not as_path.is_absolute():
        as_path = (cwd or Path.cwd()) / as_path
    looks_like_path = os.sep in model or "/" in model or model.startswith(".")
    if looks_like_path or (as_path.is_dir() and model not in BIGGAN_PRETRAINED):
        folder = as_path
        if not (folder / CONFIG_NAME).is_file() or not _weights_file(folder, read_config(folder)).is_file():
            raise WeightsError(
                f"model folder {folder} has no {CONFIG_NAME} + {WEIGHTS_NAME}: make one with "
                f"`python manage.py biggan_weights make-random {model} --preset tiny` or point `model:` elsewhere"
            )
        return folder.resolve()
    folder = weights_dir / model
    if (folder / CONFIG_NAME).is_file() and _weights_file(folder, read_config(folder)).is_file():
        return folder.resolve()
    if model in BIGGAN_PRETRAINED:
        hint = f"`python manage.py biggan_weights download {model}`"
    else:
        hint = f"`python manage.py biggan_weights make-random {folder} --preset tiny` (or give a folder path)"
    raise WeightsError(f"model {model!r} is not in {folder}: fetch it with {hint} (rendering never downloads)")


def read_config(folder: Path) -> dict[str, Any]:
    try:
        config = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise WeightsError(f"cannot read {folder / CONFIG_NAME}: {exc}") from None
    if not isinstance(config, dict):
        raise WeightsError(f"{folder / CONFIG_NAME} must hold a JSON object")
    return config


def read_record(folder: Path) -> dict[str, Any]:
    path = folder / RECORD_NAME
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return {}


def _weights_file(folder: Path, config: dict[str, Any]) -> Path:
    return folder / config.get("weights_file", WEIGHTS_NAME)


@dataclass(frozen=True)
class ModelInfo:
    """What identifies a model folder without loading it: used to plan recipes before any work."""

    folder: Path
    model_id: str
    architecture: str
    config: dict[str, Any]
    sha256: str
    untrained: bool


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def model_info(folder: Path, *, model_id: str | None = None) -> ModelInfo:
    config = read_config(folder)
    architecture = architecture_of(config)
    if architecture not in ARCHITECTURES:
        raise WeightsError(
            f"{folder / CONFIG_NAME}: unknown architecture {architecture!r} (known: {', '.join(ARCHITECTURES)})"
        )
    weights = _weights_file(folder, config)
    stat = weights.stat()
    key = (str(weights), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = file_sha256(weights)
    sha = _SHA_CACHE[key]
    record = read_record(folder)
    if record.get("sha256") and record["sha256"] != sha:
        raise WeightsError(
            f"{weights} does not match the sha256 recorded in {folder / RECORD_NAME} "
            f"({sha[:12]}… ≠ {record['sha256'][:12]}…): the file changed or is truncated; fetch it again"
        )
    return ModelInfo(
        folder=folder,
        model_id=model_id or folder.name,
        architecture=architecture,
        config=config,
        sha256=sha,
        untrained=record.get("source") == "random",
    )


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a corrupt/truncated file raises many kinds
        raise WeightsError(f"cannot read weights {path}: {str(exc).splitlines()[0]}") from None
    for key in ("state_dict", "generator", "netG", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise WeightsError(f"{path} is not a state_dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def check_state_dict(expected: dict[str, torch.Tensor], found: dict[str, Any], *, path: Path) -> None:
    """Refuse missing keys, unexpected keys and shape mismatches (the package would ignore them)."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    mismatched = [
        f"{k} {tuple(found[k].shape)} ≠ {tuple(v.shape)}"
        for k, v in expected.items()
        if k in found and tuple(getattr(found[k], "shape", ())) != tuple(v.shape)
    ]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched)):
        if items:
            shown = ", ".join(items[:3]) + (f" and {len(items) - 3} more" if len(items) > 3 else "")
            problems.append(f"{len(items)} {label} ({shown})")
    if problems:
        raise WeightsError(
            f"weights {path} do not fit its config.json: {'; '.join(problems)} — refusing a partial/mismatched model"
        )


def load_generator(info: ModelInfo, *, device: str = "cpu", precision: str = "float32") -> GeneratorAdapter:
    """Build the module from config.json, load the state_dict strictly, eval mode, move to device/dtype."""
    build, adapter_class = ARCHITECTURES[info.architecture]
    try:
        model = build(info.config, init=False)
    except Exception as exc:  # noqa: BLE001 - invalid configs fail in many ways inside the package
        raise WeightsError(f"{info.folder / CONFIG_NAME} is not a valid {info.architecture} config: {exc}") from None
    path = _weights_file(info.folder, info.config)
    state = _load_state_dict(path)
    check_state_dict(model.state_dict(), state, path=path)
    model.load_state_dict(state, strict=True)
    model = model.to(device=device, dtype=precision_dtype(precision)).eval()
    return adapter_class(model, config=info.config, model_id=info.model_id, sha256=info.sha256, source=str(info.folder))


def precision_dtype(precision: str) -> torch.dtype:
    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[precision]


def meta_adapter(info: ModelInfo) -> GeneratorAdapter:
    """An adapter over an uninitialised module: parameter names for validating targets up front."""
    build, adapter_class = ARCHITECTURES[info.architecture]
    return adapter_class(
        build(info.config, init=False),
        config=info.config,
        model_id=info.model_id,
        sha256=info.sha256,
        source=str(info.folder),
    )


# --- random-weight models ------------------------------------------------------------------------


def random_biggan(preset: str, seed: int) -> tuple[dict[str, Any], torch.nn.Module]:
    """A BigGAN with finite outputs in which every part matters, like a trained one.

    A bare BigGAN(config) gives NaN: generator.bn's weight/bias are uninitialised memory and the
    spectral-norm u/v buffers are unrelated random vectors. Two more defaults would make tests
    vacuous: attention `gamma` starts at 0 (the attention block then adds nothing, so perturbing it
    renders the baseline), and the default Linear init gives class embeddings of norm ~0.2 against
    ~4 for z, so the class barely changes the image. Here gamma is 1, the embedding entries are
    N(0, 0.4²) (norm ~4.5, as z at truncation 0.4), and u, v are the exact top singular vectors of
    each weight (as after a long training run), so every layer divides by its true sigma.
    """
    from generation.perturbation import renormalise_spectral_norm, spectral_norm_layers

    config = {**_CONFIG_DEFAULTS, **PRESETS[preset]}
    config["layers"] = [list(layer) for layer in config["layers"]]
    fork_devices: list[int] = []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(seed)
        model = build_biggan(config)
        with torch.no_grad():
            model.generator.bn.weight.fill_(1.0)
            model.generator.bn.bias.zero_()
            model.embeddings.weight.normal_(0.0, RANDOM_EMBEDDING_STD)
            for name, parameter in model.named_parameters():
                if name.endswith(".gamma"):
                    parameter.fill_(RANDOM_ATTENTION_GAMMA)
            for module, hook in spectral_norm_layers(model).values():
                renormalise_spectral_norm(module, hook)
    return config, model.eval()


def save_folder(
    folder: Path, *, config: dict[str, Any], state_dict: dict[str, torch.Tensor], record: dict[str, Any]
) -> str:
    """Write config.json, pytorch_model.bin and weights.json atomically; returns the weights' sha256."""
    folder.mkdir(parents=True, exist_ok=True)
    import io

    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    data = buffer.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    atomic_write_bytes(folder / WEIGHTS_NAME, data)
    atomic_write_bytes(folder / CONFIG_NAME, (json.dumps(config, indent=2, sort_keys=True) + "\n").encode())
    atomic_write_bytes(
        folder / RECORD_NAME, (json.dumps({**record, "sha256": sha}, indent=2, sort_keys=True) + "\n").encode()
    )
    return sha


def make_random(folder: Path, *, preset: str, seed: int) -> str:
    """Write a random-weight BigGAN in the from_pretrained folder format; returns its sha256."""
    config, model = random_biggan(preset, seed)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    return save_folder(
        folder,
        config=config,
        state_dict=state,
        record={
            "source": "random",
            "preset": preset,
            "seed": seed,
            "note": "untrained random weights: for tests and demos only",
        },
    )


# --- downloads -----------------------------------------------------------------------------------


def download(
    name: str,
    *,
    weights_dir: Path,
    timeout: float = 30.0,
    progress: Callable[[int, int | None], None] | None = None,
    base_url: str = DOWNLOAD_BASE,
) -> Path:
    """Fetch a released BigGAN-deep model into weights_dir/name, with a timeout and a sha256 record."""
    import requests

    if name not in BIGGAN_PRETRAINED:
        raise WeightsError(f"unknown pretrained model {name!r} (known: {', '.join(BIGGAN_PRETRAINED)})")
    folder = weights_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    urls = {CONFIG_NAME: f"{base_url}/{name}-config.json", WEIGHTS_NAME: f"{base_url}/{name}-pytorch_model.bin"}
    shas = {}
    try:
        for filename, url in urls.items():
            with requests.get(url, stream=True, timeout=timeout) as response:
                response.raise_for_status()
                total = int(response.headers.get("content-length") or 0) or None
                digest = hashlib.sha256()
                fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{filename}.", suffix=".part")
                try:
                    with os.fdopen(fd, "wb") as handle:
                        for chunk in response.iter_content(chunk_size=1 << 20):
                            handle.write(chunk)
                            digest.update(chunk)
                            if progress and filename == WEIGHTS_NAME:
                                progress(len(chunk), total)
                    if total is not None and Path(tmp).stat().st_size != total:
                        raise WeightsError(f"download of {url} ended early: the server sent fewer bytes than announced")
                    os.replace(tmp, folder / filename)
                except BaseException:
                    Path(tmp).unlink(missing_ok=True)
                    raise
                shas[filename] = digest.hexdigest()
    except requests.RequestException as exc:
        raise WeightsError(f"cannot download {name}: {str(exc).splitlines()[0]} (timeout {timeout:g} s)") from None
    record = {
        "source": "download",
        "name": name,
        "urls": urls,
        "sha256": shas[WEIGHTS_NAME],
        "config_sha256": shas[CONFIG_NAME],
    }
    atomic_write_bytes(folder / RECORD_NAME, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
    info = model_info(folder, model_id=name)
    load_generator(info)  # refuse (and say so) if what arrived does not load strictly
    return folder
