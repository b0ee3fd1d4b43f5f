"""Latent walks and latent arithmetic as stimuli of a set: the spec keys, their expansion, their labels.

A condition of a design file may replace the plain (class x seed) grid by

    walk: {to_seed: 5, to_class: volcano, frames: 6, method: slerp}
        every grid point (class c, seed s) walks to (to_class or c, to_seed or s); frame i of n
        has t = i/(n-1) and is one stimulus (recipe key `walk`: to_seed, to_class, t, method).
    arithmetic: {a: [0, 1, 2], b: [3, 4, 5], c: [6, 7, 8]}     (or a list of such equations)
        z = z̄(a) - z̄(b) + z̄(c), each term the mean of the z of its seeds (Radford et al., DCGAN);
        one stimulus per class (and draw) and equation (recipe key `arithmetic`; seed is empty).

Either runs through the condition's perturbed network like any other stimulus. Torch-free: the
spec is parsed (and the admin labels stimuli) without loading the model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from generation.spec import Condition

WALK_KEYS = {"to_seed", "to_class", "frames", "method"}
WALK_METHODS = ("lerp", "slerp")
ARITHMETIC_TERMS = ("a", "b", "c")


def parse_walk(data: Any, where: str) -> dict[str, Any]:
    from generation.spec import SpecError, _int, _seed, _unknown, resolve_class

    if not isinstance(data, dict):
        raise SpecError(where, "must be a mapping with to_seed and/or to_class, frames, method")
    _unknown(data, WALK_KEYS, where)
    to_seed = data.get("to_seed")
    to_seed = None if to_seed is None else _seed(to_seed, f"{where}.to_seed")
    to_class = data.get("to_class")
    to_class = None if to_class is None else resolve_class(to_class, f"{where}.to_class")
    if to_seed is None and to_class is None:
        raise SpecError(where, "give to_seed and/or to_class (where the walk ends)")
    frames = _int(data.get("frames", 8), f"{where}.frames", 2)
    method = data.get("method", "slerp")
    if method not in WALK_METHODS:
        raise SpecError(f"{where}.method", f"must be lerp or slerp, not {method!r}")
    return {"to_seed": to_seed, "to_class": to_class, "frames": frames, "method": method}


def parse_arithmetic(data: Any, where: str) -> tuple[dict[str, list[int]], ...]:
    from generation.spec import SpecError, _seed, _unknown

    equations = data if isinstance(data, list) else [data]
    if not equations:
        raise SpecError(where, "must be an equation {a: [seeds], b: [seeds], c: [seeds]} or a non-empty list of them")
    parsed = []
    for n, equation in enumerate(equations):
        at = f"{where}[{n}]" if isinstance(data, list) else where
        if not isinstance(equation, dict):
            raise SpecError(at, "must be a mapping {a: [seeds], b: [seeds], c: [seeds]} (z = z̄(a) - z̄(b) + z̄(c))")
        _unknown(equation, set(ARITHMETIC_TERMS), at)
        terms = {}
        for term in ARITHMETIC_TERMS:
            seeds = equation.get(term)
            if seeds is None:
                raise SpecError(f"{at}.{term}", "missing (a seed or a list of seeds, averaged)")
            seeds = [seeds] if isinstance(seeds, int) and not isinstance(seeds, bool) else seeds
            if not isinstance(seeds, list) or not seeds:
                raise SpecError(f"{at}.{term}", f"must be a seed or a non-empty list of seeds, not {seeds!r}")
            terms[term] = [_seed(s, f"{at}.{term}[{i}]") for i, s in enumerate(seeds)]
            if len(set(terms[term])) != len(terms[term]):
                raise SpecError(f"{at}.{term}", "lists a seed twice")
        if sorted(terms["a"]) == sorted(terms["b"]) or sorted(terms["c"]) == sorted(terms["b"]):
            raise SpecError(at, "a term cancels b exactly: z̄(a) - z̄(b) + z̄(c) would just be one term's mean")
        if terms in parsed:
            raise SpecError(at, "repeats an earlier equation")
        parsed.append(terms)
    return tuple(parsed)


def stimulus_inputs(
    condition: Condition, *, classes: tuple[int | None, ...], seeds: tuple[int, ...]
) -> list[dict[str, Any]]:
    """The (class_index, seed, walk, arithmetic) of each stimulus of one draw of a condition, in order."""
    items: list[dict[str, Any]] = []
    for class_index in classes:
        if condition.arithmetic:
            items += [
                {"class_index": class_index, "seed": None, "walk": None, "arithmetic": equation}
                for equation in condition.arithmetic
            ]
            continue
        for seed in seeds:
            if not condition.walk:
                items.append({"class_index": class_index, "seed": seed, "walk": None, "arithmetic": None})
                continue
            walk = condition.walk
            frames = walk["frames"]
            for i in range(frames):
                items.append(
                    {
                        "class_index": class_index,
                        "seed": seed,
                        "arithmetic": None,
                        "walk": {
                            "to_seed": seed if walk["to_seed"] is None else walk["to_seed"],
                            "to_class": class_index if walk["to_class"] is None else walk["to_class"],
                            "t": i / (frames - 1),
                            "method": walk["method"],
                        },
                    }
                )
    return items


def _seeds(values: list[int]) -> str:
    return ",".join(map(str, values))


def stimulus_label(recipe: dict[str, Any]) -> str:
    """What tells a stimulus apart inside its condition and class, for the contact sheet and admin."""
    draw = recipe.get("draw") or 0
    arithmetic = recipe.get("arithmetic")
    walk = recipe.get("walk")
    if arithmetic:
        text = f"z̄({_seeds(arithmetic['a'])}) - z̄({_seeds(arithmetic['b'])}) + z̄({_seeds(arithmetic['c'])})"
    elif walk:
        ends = f"seed {recipe.get('seed')} → {walk['to_seed']}"
        if walk.get("to_class") is not None and walk["to_class"] != recipe.get("class_index"):
            ends += f", class {recipe.get('class_index')} → {walk['to_class']}"
        text = f"{ends}, {walk['method']} t = {walk['t']:.3g}"
    else:
        text = f"seed {recipe.get('seed')}"
    return f"{text}, draw {draw}"


def stimulus_order(recipe: dict[str, Any]) -> tuple:
    """Sort key that puts walk frames in t order and equations in spec order within a cell."""
    arithmetic = recipe.get("arithmetic") or {}
    walk = recipe.get("walk") or {}
    seed = recipe.get("seed")
    return (
        recipe.get("draw") or 0,
        -1 if seed is None else seed,
        walk.get("to_seed") or 0,
        walk.get("to_class") or 0,
        walk.get("t", 0.0),
        tuple(arithmetic.get("a", ())),
        tuple(arithmetic.get("b", ())),
        tuple(arithmetic.get("c", ())),
    )


def condition_summary(recipe: dict[str, Any]) -> str:
    """A one-line description of a condition's kind and parameters, from one of its recipes."""
    p = recipe.get("perturbation") or {}
    if not p:
        parts = ["unperturbed"]
    elif p.get("kind") == "multiplicative":
        parts = [
            f"multiplicative ε = {p['epsilon']:g}",
            "targets " + ", ".join(p.get("targets", [])),
            f"noise {p.get('noise', 'normal')}",
            f"spectral norm {p.get('spectral_norm', 'frozen')}",
            f"seed {p.get('seed')}",
        ]
    elif p.get("kind") == "semantic":
        parts = [f"semantic {p.get('mode')} ε = {p['epsilon']:g}", f"seed {p.get('seed')}"]
        if p.get("mode") == "class-mix":
            parts.append(f"k = {p.get('k')}")
    else:
        parts = [str(p.get("kind"))]
    if recipe.get("walk"):
        parts.append(f"walk ({recipe['walk']['method']})")
    if recipe.get("arithmetic"):
        parts.append("latent arithmetic z̄(a) - z̄(b) + z̄(c)")
    return " · ".join(parts)


def check_against_model(spec: Any, adapter: Any) -> None:
    """Walk ends must be classes of the model (none for an unconditional one) and differ from the start."""
    from generation.spec import SpecError

    for i, condition in enumerate(spec.conditions):
        walk = condition.walk
        if not walk:
            continue
        where = f"conditions[{i}].walk"
        if walk["to_class"] is not None:
            if not adapter.conditional:
                raise SpecError(f"{where}.to_class", f"{adapter.architecture} is unconditional; remove the key")
            if walk["to_class"] >= adapter.num_classes:
                raise SpecError(f"{where}.to_class", f"{walk['to_class']} is outside 0..{adapter.num_classes - 1}")
        for item in stimulus_inputs(condition, classes=spec.classes, seeds=spec.seeds):
            if item["walk"]["to_seed"] == item["seed"] and item["walk"]["to_class"] == item["class_index"]:
                raise SpecError(
                    where,
                    f"walks from seed {item['seed']} (class {item['class_index']}) to itself; "
                    "choose another to_seed/to_class or drop that seed",
                )
