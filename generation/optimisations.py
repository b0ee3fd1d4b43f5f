"""Style transfer and DeepDream conditions: their spec keys, their recipes and their planning. No torch here.

Both are image optimisations on a classification backbone (backbone_catalog), not perturbed generators:

    - name: gatys-vgg
      style_transfer: {backbone: vgg19, content: img/house.png, style: img/starry.png, iterations: 300,
                       snapshots: [50, 100]}
    - name: dream
      deepdream: {backbone: googlenet, base: {condition: baseline}, layer: inception4c, octaves: 4}

Image paths are relative to the spec file; `{condition: NAME}` takes every stimulus that condition renders
(re-rendered in memory by the job, bit-identical). A recipe records each input's sha256, so an image is
regenerable from its recipe and the input files, and a changed input gives another recipe id.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from generation.backbone_catalog import DREAM_DEFAULT_LAYER, LAYERS, STYLE_DEFAULTS, BackboneError, resolve_backbone

# Bump when the optimisation arithmetic changes (losses, optimiser steps, resizing, uint8 mapping).
OPTIMISATION_CODE_VERSION = "1"

KINDS = ("style-transfer", "deepdream")
CONDITION_KEYS = {"style_transfer": "style-transfer", "deepdream": "deepdream"}
STYLE_KEYS = {
    "backbone",
    "content",
    "style",
    "content_layers",
    "style_layers",
    "content_weight",
    "style_weight",
    "tv_weight",
    "optimiser",
    "learning_rate",
    "iterations",
    "init",
    "seed",
    "size",
    "snapshots",
}
DREAM_KEYS = {
    "backbone",
    "base",
    "layer",
    "objective",
    "channel",
    "class",
    "octaves",
    "octave_scale",
    "iterations",
    "step_size",
    "jitter",
    "seed",
    "size",
}
OPTIMISERS = ("lbfgs", "adam")
INITS = ("content", "noise")
OBJECTIVES = ("activation", "channel", "class")
INPUTS_DIR = "generation-inputs"  # under MEDIA_ROOT: inputs by sha256, readable by every worker
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


def _spec_error(key: str, message: str) -> Exception:
    from generation.spec import SpecError

    return SpecError(key, message)


# --- spec ----------------------------------------------------------------------------------------


def condition_kind(data: dict[str, Any]) -> str | None:
    """Which optimisation key a condition mapping carries (None for a generator condition)."""
    found = [key for key in CONDITION_KEYS if key in data]
    return found[0] if found else None


def parse_optimisation(data: dict[str, Any], where: str, *, base_dir: Path | None) -> dict[str, Any]:
    """Normalise a condition's style_transfer/deepdream mapping; every error names its key."""
    found = [key for key in CONDITION_KEYS if key in data]
    if len(found) > 1 or (found and data.get("perturbation") is not None):
        raise _spec_error(where, "a condition has one of perturbation, style_transfer, deepdream")
    key = found[0]
    block = data[key]
    where = f"{where}.{key}"
    if not isinstance(block, dict):
        raise _spec_error(where, "must be a mapping (backbone, images, parameters)")
    base_dir = base_dir or Path.cwd()
    if key == "style_transfer":
        return _style_transfer(block, where, base_dir)
    return _deepdream(block, where, base_dir)


def _unknown(block: dict[str, Any], allowed: set[str], where: str) -> None:
    for key in block:
        if key not in allowed:
            raise _spec_error(f"{where}.{key}", f"unknown key (expected one of: {', '.join(sorted(allowed))})")


def _number(
    block: dict[str, Any], key: str, where: str, default: float, *, minimum: float = 0.0, exclusive: bool = False
) -> float:
    value = block.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _spec_error(f"{where}.{key}", f"must be a number, not {value!r}")
    if value < minimum or (exclusive and value == minimum):
        raise _spec_error(f"{where}.{key}", f"must be {'>' if exclusive else '≥'} {minimum:g}, not {value!r}")
    return float(value)


def _int(block: dict[str, Any], key: str, where: str, default: int, *, minimum: int = 0) -> int:
    value = block.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _spec_error(f"{where}.{key}", f"must be an integer ≥ {minimum}, not {value!r}")
    return value


def _backbone(block: dict[str, Any], where: str, allowed: tuple[str, ...]) -> str:
    name = block.get("backbone")
    if not isinstance(name, str) or not name.strip():
        raise _spec_error(f"{where}.backbone", f"missing (a published name: {', '.join(allowed)}, or a folder path)")
    return name.strip()


def _architecture_hint(name: str) -> str | None:
    """The architecture a published name stands for; folders are only known once resolved (at plan time)."""
    return name if name in LAYERS else None


def _layers(block: dict[str, Any], key: str, where: str, architecture: str | None, default: list[str]) -> list[str]:
    value = block.get(key, default)
    value = [value] if isinstance(value, str) else value
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise _spec_error(f"{where}.{key}", "must be a layer name or a non-empty list of layer names")
    if architecture is not None:
        check_layers(value, architecture, f"{where}.{key}")
    return list(value)


def check_layers(layers: list[str], architecture: str, key: str) -> None:
    known = LAYERS[architecture]
    for layer in layers:
        if layer not in known:
            raise _spec_error(key, f"{architecture} has no layer {layer!r} (layers: {', '.join(known)})")


def _image(value: Any, key: str, base_dir: Path) -> dict[str, Any]:
    """A path (relative to the spec file) to a readable image, or {condition: NAME}."""
    if isinstance(value, dict):
        if set(value) != {"condition"} or not isinstance(value["condition"], str) or not value["condition"]:
            raise _spec_error(key, "must be an image path or {condition: NAME} (a condition of this spec)")
        return {"condition": value["condition"]}
    if not isinstance(value, str) or not value.strip():
        raise _spec_error(key, "must be an image path (relative to the spec file) or {condition: NAME}")
    path = Path(value).expanduser()
    full = path if path.is_absolute() else base_dir / path
    if not full.is_file():
        raise _spec_error(key, f"no image file {full}")
    if full.suffix.lower() not in IMAGE_SUFFIXES:
        raise _spec_error(key, f"{full.name} is not an image ({', '.join(sorted(IMAGE_SUFFIXES))})")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(full) as image:
            image.verify()
    except (UnidentifiedImageError, OSError) as exc:
        raise _spec_error(key, f"{full} is not a readable image ({exc})") from None
    return {"path": value, "file": str(full.resolve()), "sha256": _sha256(full)}


def _images(block: dict[str, Any], key: str, where: str, base_dir: Path) -> list[dict[str, Any]]:
    if key not in block:
        raise _spec_error(f"{where}.{key}", "missing (an image path, a list of them, or {condition: NAME})")
    value = block[key]
    values = value if isinstance(value, list) else [value]
    if not values:
        raise _spec_error(f"{where}.{key}", "must not be empty")
    return [
        _image(v, f"{where}.{key}" + (f"[{i}]" if isinstance(value, list) else ""), base_dir)
        for i, v in enumerate(values)
    ]


def _style_transfer(block: dict[str, Any], where: str, base_dir: Path) -> dict[str, Any]:
    _unknown(block, STYLE_KEYS, where)
    backbone = _backbone(block, where, ("vgg19", "nin"))
    architecture = _architecture_hint(backbone)
    if architecture == "googlenet":
        raise _spec_error(f"{where}.backbone", "style transfer runs on vgg19 or nin")
    # A folder's architecture is known only at plan time: its defaults are filled in there (None until then).
    defaults = STYLE_DEFAULTS.get(architecture or "", {})
    params: dict[str, Any] = {
        "content_layers": _layers(block, "content_layers", where, architecture, defaults.get("content_layers"))
        if "content_layers" in block or defaults
        else None,
        "style_layers": _layers(block, "style_layers", where, architecture, defaults.get("style_layers"))
        if "style_layers" in block or defaults
        else None,
        "content_weight": _number(block, "content_weight", where, defaults.get("content_weight", 0.0))
        if "content_weight" in block or defaults
        else None,
        "style_weight": _number(block, "style_weight", where, defaults.get("style_weight", 0.0))
        if "style_weight" in block or defaults
        else None,
        "tv_weight": _number(block, "tv_weight", where, 1e-3),
        "iterations": _int(block, "iterations", where, 300, minimum=1),
        "seed": _int(block, "seed", where, 0),
        "size": _int(block, "size", where, 256, minimum=16),
    }
    optimiser = block.get("optimiser", "lbfgs")
    if optimiser not in OPTIMISERS:
        raise _spec_error(f"{where}.optimiser", f"must be one of {', '.join(OPTIMISERS)}, not {optimiser!r}")
    params["optimiser"] = optimiser
    if optimiser == "adam":
        params["learning_rate"] = _number(block, "learning_rate", where, 0.02, exclusive=True)
    elif "learning_rate" in block:
        raise _spec_error(f"{where}.learning_rate", "only for optimiser adam (L-BFGS takes full steps)")
    init = block.get("init", "content")
    if init not in INITS:
        raise _spec_error(f"{where}.init", f"must be one of {', '.join(INITS)}, not {init!r}")
    params["init"] = init
    snapshots = block.get("snapshots", [])
    if not isinstance(snapshots, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in snapshots):
        raise _spec_error(f"{where}.snapshots", "must be a list of iteration numbers")
    for i, snapshot in enumerate(snapshots):
        if not 1 <= snapshot <= params["iterations"]:
            raise _spec_error(f"{where}.snapshots[{i}]", f"must be in 1..iterations ({params['iterations']})")
    if len(set(snapshots)) != len(snapshots):
        raise _spec_error(f"{where}.snapshots", "lists an iteration twice")
    return {
        "kind": "style-transfer",
        "backbone": backbone,
        "params": params,
        "snapshots": sorted({*snapshots, params["iterations"]}),
        "inputs": {
            "content": _images(block, "content", where, base_dir),
            "style": _images(block, "style", where, base_dir),
        },
    }


def _deepdream(block: dict[str, Any], where: str, base_dir: Path) -> dict[str, Any]:
    _unknown(block, DREAM_KEYS, where)
    backbone = _backbone(block, where, ("googlenet", "vgg19", "nin"))
    architecture = _architecture_hint(backbone)
    objective = block.get("objective", "activation")
    if objective not in OBJECTIVES:
        raise _spec_error(f"{where}.objective", f"must be one of {', '.join(OBJECTIVES)}, not {objective!r}")
    params: dict[str, Any] = {"objective": objective}
    if objective == "class":
        if "layer" in block:
            raise _spec_error(f"{where}.layer", "a class objective reads the logits (layer fc); remove the key")
        params["layer"] = "fc"
        value = block.get("class")
        if isinstance(value, str):
            from generation.classes import class_index

            try:
                value = class_index(value)
            except ValueError as exc:
                raise _spec_error(f"{where}.class", str(exc)) from None
        params["class"] = _int({"class": value}, "class", where, 0)
    else:
        if "class" in block:
            raise _spec_error(f"{where}.class", "only for objective class")
        layer = block.get("layer", DREAM_DEFAULT_LAYER.get(architecture or ""))
        if layer is not None and (not isinstance(layer, str) or not layer):
            raise _spec_error(f"{where}.layer", "must be a layer name")
        if architecture is not None and layer is not None:
            check_layers([layer], architecture, f"{where}.layer")
        params["layer"] = layer  # None: the backbone's default, filled in at plan time
    if objective == "channel":
        if "channel" not in block:
            raise _spec_error(f"{where}.channel", "missing (the channel index whose mean is maximised)")
        params["channel"] = _int(block, "channel", where, 0)
    elif "channel" in block:
        raise _spec_error(f"{where}.channel", "only for objective channel")
    params.update(
        {
            "octaves": _int(block, "octaves", where, 4, minimum=1),
            "octave_scale": _number(block, "octave_scale", where, 1.4, minimum=1.0),
            "iterations": _int(block, "iterations", where, 10, minimum=1),
            "step_size": _number(block, "step_size", where, 0.01, exclusive=True),
            "jitter": _int(block, "jitter", where, 32),
            "seed": _int(block, "seed", where, 0),
        }
    )
    if "size" in block:
        params["size"] = _int(block, "size", where, 256, minimum=16)
    if "base" not in block:
        raise _spec_error(f"{where}.base", "missing (an image path or {condition: NAME})")
    return {
        "kind": "deepdream",
        "backbone": backbone,
        "params": params,
        "snapshots": [],
        "inputs": {"base": [_image(block["base"], f"{where}.base", base_dir)]},
    }


def check_distinct(conditions: list[tuple[int, str, dict[str, Any] | None]]) -> None:
    """Two optimisation conditions with the same backbone, inputs and parameters render the same images."""
    seen: dict[str, str] = {}
    for index, name, optimisation in conditions:
        if optimisation is None:
            continue
        key = json.dumps({k: v for k, v in optimisation.items() if k != "snapshots"}, sort_keys=True)
        if key in seen:
            raise _spec_error(f"conditions[{index}]", f"renders exactly the same images as condition {seen[key]!r}")
        seen[key] = name


def count_images(optimisation: dict[str, Any], per_condition: dict[str, int]) -> int:
    """Stimuli an optimisation condition adds: one per input combination and snapshot."""
    total = max(len(optimisation["snapshots"]), 1)
    for sources in optimisation["inputs"].values():
        total *= sum(per_condition.get(s["condition"], 0) if "condition" in s else 1 for s in sources)
    return total


# --- recipes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OptimisationRecipe:
    """kind, backbone (id, sha256, architecture), parameters (with this snapshot's iteration count) and the
    inputs: {role: {"path", "sha256"}} for files or {role: {"recipe": <generator recipe>}} for stimuli.

    A snapshot at iteration k has the recipe of a run of k iterations: the optimisation path up to k does not
    depend on when it stops (tested), so snapshots and short runs share ids and bytes.
    """

    kind: str
    backbone: dict[str, str]
    params: dict[str, Any]
    inputs: dict[str, dict[str, Any]]
    precision: str = "float32"
    code_version: str = field(default=OPTIMISATION_CODE_VERSION)

    batch_size = 1  # one optimisation at a time; job chunking reads this like a generator recipe's

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OptimisationRecipe:
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> OptimisationRecipe:
        return cls.from_dict(json.loads(text))

    @property
    def recipe_id(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    @property
    def iteration(self) -> int:
        return int(self.params["iterations"])

    def run_key(self) -> str:
        """Recipes that differ only in their iteration count are snapshots of one optimisation run."""
        return json.dumps(
            [
                self.kind,
                self.backbone,
                {**self.params, "iterations": None},
                self.inputs,
                self.precision,
                self.code_version,
            ],
            sort_keys=True,
        )

    def network_key(self) -> str:
        """Job grouping: one backbone per job, a run's snapshots together."""
        return self.run_key()

    @property
    def seed(self) -> int:
        return int(self.params["seed"])

    @property
    def epsilon(self) -> float | None:
        return None


def is_optimisation(recipe: dict[str, Any]) -> bool:
    return recipe.get("kind") in KINDS


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def input_file(media_root: Path, sha256: str, suffix: str) -> Path:
    return media_root / INPUTS_DIR / f"{sha256}{suffix.lower()}"


def store_input(media_root: Path, source: dict[str, Any]) -> None:
    """Copy an input image under MEDIA_ROOT by content hash, so any worker that shares the media folder
    (a Celery worker in another container) can read it; idempotent."""
    target = input_file(media_root, source["sha256"], Path(source["path"]).suffix)
    if target.is_file():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".input.", suffix=".tmp")
    os.close(fd)
    try:
        shutil.copyfile(source["file"], tmp)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def recipe_labels(recipe: OptimisationRecipe) -> dict[str, Any]:
    """Readable columns of a stimulus (admin, manifest): kind, backbone, iteration and the inputs."""
    labels: dict[str, Any] = {"kind": recipe.kind, "backbone": recipe.backbone["id"], "iteration": recipe.iteration}
    for role, source in recipe.inputs.items():
        if "recipe" in source:
            generator = source["recipe"]
            labels[role] = f"stimulus class {generator.get('class_index')} seed {generator.get('seed')}"
        else:
            labels[role] = source["path"]
    return labels


@dataclass(frozen=True)
class PlannedOptimisation:
    """Like services.PlannedStimulus, plus what the job needs besides the recipe (the backbone's folder)."""

    condition: str
    recipe: OptimisationRecipe
    job_extra: dict[str, Any]


def plan_optimisation(
    *,
    index: int,
    condition: str,
    optimisation: dict[str, Any],
    weights_dir: Path,
    base_dir: Path | None,
    generator_items: dict[str, list[Any]],
) -> tuple[list[PlannedOptimisation], list[dict[str, Any]]]:
    """Resolve the backbone (checking layers against its architecture) and expand inputs x snapshots into
    recipes; also returns the input files to store. `generator_items` maps each generator condition to its
    planned items (with `.recipe`)."""
    where = f"conditions[{index}].{'style_transfer' if optimisation['kind'] == 'style-transfer' else 'deepdream'}"
    try:
        info = resolve_backbone(optimisation["backbone"], weights_dir=weights_dir, base_dir=base_dir)
    except BackboneError as exc:
        raise _spec_error(f"{where}.backbone", str(exc)) from None
    params = dict(optimisation["params"])
    if optimisation["kind"] == "style-transfer":
        if info.architecture == "googlenet":
            raise _spec_error(f"{where}.backbone", "style transfer runs on vgg19 or nin, not googlenet")
        params.update({k: v for k, v in STYLE_DEFAULTS[info.architecture].items() if params.get(k) is None})
        check_layers(params["content_layers"], info.architecture, f"{where}.content_layers")
        check_layers(params["style_layers"], info.architecture, f"{where}.style_layers")
    else:
        params["layer"] = params["layer"] or DREAM_DEFAULT_LAYER[info.architecture]
        check_layers([params["layer"]], info.architecture, f"{where}.layer")
    files: list[dict[str, Any]] = []
    combos: list[dict[str, dict[str, Any]]] = [{}]
    for role, sources in optimisation["inputs"].items():
        expanded: list[dict[str, Any]] = []
        for source in sources:
            if "condition" in source:
                items = generator_items.get(source["condition"])
                if items is None:
                    raise _spec_error(
                        f"{where}.{role}",
                        f"condition {source['condition']!r} is not a generator condition of this spec",
                    )
                expanded += [{"recipe": item.recipe.to_dict()} for item in items]
            else:
                expanded.append({"path": source["path"], "sha256": source["sha256"]})
                files.append(source)
        combos = [{**inputs, role: value} for inputs in combos for value in expanded]
    base_recipes = [
        OptimisationRecipe(kind=optimisation["kind"], backbone=info.as_recipe(), params=params, inputs=inputs)
        for inputs in combos
    ]
    snapshots = optimisation["snapshots"] or [params["iterations"]]
    extra = {"backbone_folder": str(info.folder), "backbone_untrained": info.untrained}
    planned = [
        PlannedOptimisation(condition, replace(base, params={**params, "iterations": snapshot}), extra)
        for base in base_recipes
        for snapshot in snapshots
    ]
    return planned, files
