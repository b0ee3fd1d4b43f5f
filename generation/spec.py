"""The stimulus design file (YAML): parsed and checked completely before any rendering starts.

    name: pilot
    model: biggan-deep-256        # a pretrained name or a folder path (relative to the CWD)
    truncation: 0.4
    classes: [1, 207, goldfinch]  # ImageNet indices or names
    seeds: 10                     # latent seeds 0..9, or a list
    size: 256                     # optional output size in px (default: the model's)
    precision: float32            # or bfloat16
    batch_size: 8                 # part of the recipe: bytes depend on it (see recipes.py)
    conditions:
      - name: baseline
      - name: artistic-0.5
        perturbation: {kind: multiplicative, epsilon: 0.5, targets: all, seed: 1, draws: 1}
      - name: symbolic
        perturbation: {kind: semantic, mode: embedding-noise, epsilon: 1.0, seed: 2}
      - name: walk
        perturbation: {kind: multiplicative, epsilon: 0.5, spectral_norm: renormalise}
        walk: {to_seed: 5, to_class: volcano, frames: 6, method: slerp}     # see latents.py
      - name: arithmetic
        arithmetic: {a: [0, 1, 2], b: [3, 4, 5], c: [6, 7, 8]}

Every error names the key at fault, e.g. `conditions[1].perturbation.epsilon: must be a number`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from config.errors import SetupError
from generation.classes import class_index
from generation.latents import parse_arithmetic, parse_walk, stimulus_inputs
from generation.optimisations import CONDITION_KEYS as OPTIMISATION_CONDITION_KEYS
from generation.optimisations import check_distinct, condition_kind, count_images, parse_optimisation

TOP_KEYS = {
    "name",
    "model",
    "truncation",
    "classes",
    "seeds",
    "conditions",
    "size",
    "precision",
    "batch_size",
    "description",
}
CONDITION_KEYS = {"name", "perturbation", "walk", "arithmetic", *OPTIMISATION_CONDITION_KEYS}
MULTIPLICATIVE_KEYS = {"kind", "epsilon", "targets", "seed", "draws", "noise", "spectral_norm"}
# What a spectral-norm layer divides a perturbed weight by (perturbation.py); the default is justified in
# docs/generation.md. Recipes without the key were rendered with "frozen".
SPECTRAL_NORM_POLICIES = ("frozen", "renormalise")
DEFAULT_SPECTRAL_NORM = "frozen"
SEMANTIC_MODES = ("embedding-noise", "class-mix", "random-embedding")
SEMANTIC_KEYS = {"kind", "mode", "epsilon", "seed", "draws", "k", "noise"}
PRECISIONS = ("float32", "bfloat16")


class SpecError(SetupError):
    """The design file is invalid; the message starts with the key at fault."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key


@dataclass(frozen=True)
class Condition:
    name: str
    perturbation: dict[str, Any] | None = None  # normalised, without `draws`
    draws: int = 1
    walk: dict[str, Any] | None = None  # latents.parse_walk
    arithmetic: tuple[dict[str, list[int]], ...] | None = None  # latents.parse_arithmetic
    optimisation: dict[str, Any] | None = None  # style transfer / DeepDream (generation.optimisations)

    @property
    def explicit_zero(self) -> bool:
        """A perturbation with ε = 0: renders the unperturbed network's bytes, allowed beside the baseline."""
        return self.perturbation is not None and self.perturbation.get("epsilon") == 0


@dataclass(frozen=True)
class StimulusSpec:
    name: str
    model: str
    truncation: float | None
    classes: tuple[int | None, ...]
    seeds: tuple[int, ...]
    conditions: tuple[Condition, ...]
    size: int | None = None
    precision: str = "float32"
    batch_size: int = 8
    description: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def image_count(self) -> int:
        per_condition = {
            c.name: c.draws * len(stimulus_inputs(c, classes=self.classes, seeds=self.seeds))
            for c in self.conditions
            if c.optimisation is None
        }
        return sum(per_condition.values()) + sum(
            count_images(c.optimisation, per_condition) for c in self.conditions if c.optimisation is not None
        )


def load_spec(path: Path) -> StimulusSpec:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SetupError(f"cannot read spec {path}: {exc.strerror}") from None
    return spec_from_text(text, source=str(path), base_dir=Path(path).parent)


def spec_from_text(text: str, *, source: str, base_dir: Path | None = None) -> StimulusSpec:
    """Parse a design file's text (a file, or one uploaded in the admin) with the same messages either way.

    Image paths of style-transfer/DeepDream conditions are relative to base_dir (an upload: the working directory).
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SetupError(f"spec {source} is not valid YAML: {str(exc).splitlines()[0]}") from None
    return parse_spec(data, base_dir=base_dir)


def _unknown(data: dict[str, Any], allowed: set[str], where: str) -> None:
    for key in data:
        if key not in allowed:
            prefix = f"{where}." if where else ""
            raise SpecError(f"{prefix}{key}", f"unknown key (expected one of: {', '.join(sorted(allowed))})")


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(key, f"must be a number, not {value!r}")
    return float(value)


def _int(value: Any, key: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpecError(key, f"must be an integer ≥ {minimum}, not {value!r}")
    return value


MAX_SEED = 2**32 - 1  # numpy's RandomState (BigGAN's z) takes no larger seed


def _seed(value: Any, key: str) -> int:
    seed = _int(value, key)
    if seed > MAX_SEED:
        raise SpecError(key, f"must be at most {MAX_SEED} (a latent seed), not {seed}")
    return seed


def parse_spec(data: Any, *, base_dir: Path | None = None) -> StimulusSpec:
    """Check a design; image paths of style-transfer/DeepDream conditions are relative to base_dir (the
    spec file's folder; default the current directory)."""
    if not isinstance(data, dict):
        raise SpecError("spec", "must be a mapping with name, model, classes, seeds, conditions")
    _unknown(data, TOP_KEYS, "")
    for key in ("name", "model", "seeds", "conditions"):
        if key not in data:
            raise SpecError(key, "missing")
    name = data["name"]
    if not isinstance(name, str) or not re.fullmatch(r"[-a-zA-Z0-9_]{1,100}", name):
        raise SpecError("name", f"must be a slug (letters, digits, - and _), not {name!r}")
    model = data["model"]
    if not isinstance(model, str) or not model.strip():
        raise SpecError("model", "must be a pretrained name (e.g. biggan-deep-256) or a folder path")
    truncation = data.get("truncation")
    if truncation is not None:
        truncation = _number(truncation, "truncation")
        if not 0 < truncation <= 1:
            raise SpecError("truncation", f"must be in (0, 1], not {truncation}")
    classes = data.get("classes")
    if classes is None:
        parsed_classes: tuple[int | None, ...] = (None,)
    else:
        if not isinstance(classes, list) or not classes:
            raise SpecError("classes", "must be a non-empty list of ImageNet indices or names")
        resolved = []
        for i, item in enumerate(classes):
            resolved.append(resolve_class(item, f"classes[{i}]"))
        if len(set(resolved)) != len(resolved):
            raise SpecError("classes", "lists a class twice")
        parsed_classes = tuple(resolved)
    seeds = data["seeds"]
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        parsed_seeds = tuple(range(_int(seeds, "seeds", 1)))
    elif isinstance(seeds, list) and seeds:
        parsed_seeds = tuple(_seed(s, f"seeds[{i}]") for i, s in enumerate(seeds))
        if len(set(parsed_seeds)) != len(parsed_seeds):
            raise SpecError("seeds", "lists a seed twice")
    else:
        raise SpecError("seeds", f"must be a count or a non-empty list of seeds, not {seeds!r}")
    size = data.get("size")
    if size is not None:
        size = _int(size, "size", 8)
    precision = data.get("precision", "float32")
    if precision not in PRECISIONS:
        raise SpecError("precision", f"must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    batch_size = _int(data.get("batch_size", 8), "batch_size", 1)
    conditions = data["conditions"]
    if not isinstance(conditions, list) or not conditions:
        raise SpecError("conditions", "must be a non-empty list")
    parsed_conditions = tuple(_condition(c, f"conditions[{i}]", base_dir) for i, c in enumerate(conditions))
    # Generator conditions that render identical images are refused at plan time, against the model's
    # parameters (effects.refuse_identical_conditions): the same images can come from differently written specs.
    # Optimisation conditions (style transfer, DeepDream) are compared among themselves by check_distinct.
    seen: set[str] = set()
    for i, condition in enumerate(parsed_conditions):
        if condition.name in seen:
            raise SpecError(f"conditions[{i}].name", f"{condition.name!r} is used twice")
        seen.add(condition.name)
    check_distinct([(i, c.name, c.optimisation) for i, c in enumerate(parsed_conditions)])
    description = data.get("description", "")
    if not isinstance(description, str):
        raise SpecError("description", "must be text")
    return StimulusSpec(
        name=name,
        model=model.strip(),
        truncation=truncation,
        classes=parsed_classes,
        seeds=parsed_seeds,
        conditions=parsed_conditions,
        size=size,
        precision=precision,
        batch_size=batch_size,
        description=description,
        raw=data,
    )


def _condition(data: Any, where: str, base_dir: Path | None = None) -> Condition:
    if not isinstance(data, dict):
        raise SpecError(where, "must be a mapping with a name (and a perturbation)")
    _unknown(data, CONDITION_KEYS, where)
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        raise SpecError(f"{where}.name", "missing (a short text, at most 100 characters)")
    if condition_kind(data) is not None:
        return Condition(name=name.strip(), optimisation=parse_optimisation(data, where, base_dir=base_dir))
    if "walk" in data and "arithmetic" in data:
        raise SpecError(f"{where}.arithmetic", "a condition has either a walk or latent arithmetic, not both")
    latents: dict[str, Any] = {}
    if "walk" in data:
        latents["walk"] = parse_walk(data["walk"], f"{where}.walk")
    if "arithmetic" in data:
        latents["arithmetic"] = parse_arithmetic(data["arithmetic"], f"{where}.arithmetic")
    perturbation = data.get("perturbation")
    if perturbation is None:
        return Condition(name=name.strip(), **latents)
    where = f"{where}.perturbation"
    if not isinstance(perturbation, dict):
        raise SpecError(where, "must be a mapping with a kind")
    kind = perturbation.get("kind")
    if kind == "multiplicative":
        _unknown(perturbation, MULTIPLICATIVE_KEYS, where)
        normalized = _common(perturbation, where)
        targets = perturbation.get("targets", "all")
        targets = [targets] if isinstance(targets, str) else targets
        if not isinstance(targets, list) or not targets or not all(isinstance(t, str) and t for t in targets):
            raise SpecError(f"{where}.targets", "must be a preset, block:N, re:<regex>, or a list of these")
        normalized["targets"] = targets
        policy = perturbation.get("spectral_norm", DEFAULT_SPECTRAL_NORM)
        if policy not in SPECTRAL_NORM_POLICIES:
            raise SpecError(f"{where}.spectral_norm", f"must be frozen or renormalise, not {policy!r}")
        normalized["spectral_norm"] = policy
    elif kind == "semantic":
        _unknown(perturbation, SEMANTIC_KEYS, where)
        mode = perturbation.get("mode")
        if mode not in SEMANTIC_MODES:
            raise SpecError(f"{where}.mode", f"must be one of {', '.join(SEMANTIC_MODES)}, not {mode!r}")
        normalized = _common(perturbation, where)
        normalized["mode"] = mode
        if mode == "class-mix":
            normalized["k"] = _int(perturbation.get("k", 3), f"{where}.k", 1)
        elif "k" in perturbation:
            raise SpecError(f"{where}.k", "only for mode class-mix")
        if mode != "embedding-noise":
            normalized.pop("noise")
            if "noise" in perturbation:
                raise SpecError(f"{where}.noise", "only for multiplicative and embedding-noise")
            if not 0 <= normalized["epsilon"] <= 1:
                raise SpecError(f"{where}.epsilon", f"must be in [0, 1] for {mode}")
    else:
        raise SpecError(f"{where}.kind", f"must be multiplicative or semantic, not {kind!r}")
    draws = _int(perturbation.get("draws", 1), f"{where}.draws", 1)
    return Condition(name=name.strip(), perturbation=normalized, draws=draws, **latents)


parse_condition = _condition  # one condition on its own (render_walk --perturbation)


def resolve_class(item: Any, key: str) -> int:
    """An ImageNet index or name (any WordNet synonym) → its index; range is checked against the model later."""
    if isinstance(item, bool) or not isinstance(item, int | str):
        raise SpecError(key, f"must be an index or a name, not {item!r}")
    if isinstance(item, int):
        return _int(item, key)
    try:
        return class_index(item)
    except ValueError as exc:
        raise SpecError(key, str(exc)) from None


def _common(perturbation: dict[str, Any], where: str) -> dict[str, Any]:
    if "epsilon" not in perturbation:
        raise SpecError(f"{where}.epsilon", "missing")
    epsilon = _number(perturbation["epsilon"], f"{where}.epsilon")
    if epsilon < 0:
        raise SpecError(f"{where}.epsilon", "must be ≥ 0")
    noise = perturbation.get("noise", "normal")
    if noise not in ("normal", "uniform"):
        raise SpecError(f"{where}.noise", f"must be normal or uniform, not {noise!r}")
    return {
        "kind": perturbation["kind"],
        "epsilon": epsilon,
        "seed": _int(perturbation.get("seed", 0), f"{where}.seed"),
        "noise": noise,
    }
