"""Perturbation semantics: spectral-norm policies, ε = 0, identical-condition refusal, test models in which every
part matters, latent arithmetic and walks as stimuli, and the all-kinds example rendered reproducibly."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from django.core.management import call_command
from django.test import Client
from PIL import Image

from generation.effects import refuse_identical_conditions
from generation.models import StimulusSet
from generation.perturbation import perturbed, spectral_norm_layers
from generation.services import set_plan
from generation.spec import SpecError, parse_spec
from tests.conftest import ROOT, subprocess_env
from tests.generation.conftest import write_spec
from tests.generation.test_rendering import base_recipe, multiplicative, render_bytes

EXAMPLE = ROOT / "examples" / "all-kinds.yaml"


def mad(a: bytes, b: bytes) -> float:
    """Mean absolute pixel difference of two PNGs, in 8-bit levels (of 255)."""
    x, y = (np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float64) for data in (a, b))
    return float(np.abs(x - y).mean())


def semantic(mode: str, epsilon: float = 1.0, seed: int = 3, **extra) -> dict:
    extra = {"k": 3, **extra} if mode == "class-mix" else extra
    noise = {"noise": "normal"} if mode == "embedding-noise" else {}
    return {"kind": "semantic", "mode": mode, "epsilon": float(epsilon), "seed": seed, **noise, **extra}


def sn_matrix(module, hook) -> torch.Tensor:
    return hook.reshape_weight_to_matrix(getattr(module, f"{hook.name}_orig")).detach()


# --- spectral norm -------------------------------------------------------------------------------


def test_frozen_divides_by_the_stored_vectors_and_underestimates_sigma(tiny_adapter) -> None:
    model = tiny_adapter.model
    layers = spectral_norm_layers(model)
    names = tiny_adapter.target_names(["all"])
    before = {name: (module.weight_u.clone(), module.weight_v.clone()) for name, (module, _) in layers.items()}
    ratios = []
    with perturbed(model, names, epsilon=1.0, seed=1, draw=0, spectral_norm="frozen"):
        for name, (module, hook) in layers.items():
            u, v = before[name]
            assert torch.equal(module.weight_u, u) and torch.equal(module.weight_v, v), name
            matrix = sn_matrix(module, hook)
            used = torch.dot(u, matrix @ v)
            effective = hook.compute_weight(module, do_power_iteration=False)
            torch.testing.assert_close(effective, module.weight_orig / used)
            ratios.append(torch.linalg.matrix_norm(matrix.double(), ord=2).item() / used.item())
    # the true sigma of the perturbed weight is well above the divisor frozen uses (documented: ~1.44 median)
    assert np.median(ratios) > 1.3 and min(ratios) > 1.05


def test_renormalise_divides_by_the_true_sigma_of_the_perturbed_weight(tiny_adapter) -> None:
    model = tiny_adapter.model
    layers = spectral_norm_layers(model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    names = tiny_adapter.target_names(["all"])
    assert len(layers) > 20 and all(name in names for name in layers)
    with perturbed(model, names, epsilon=1.0, seed=1, draw=0, spectral_norm="renormalise"):
        for name, (module, hook) in layers.items():
            matrix = sn_matrix(module, hook)
            true_sigma = torch.linalg.matrix_norm(matrix.double(), ord=2).item()
            used = torch.dot(module.weight_u, matrix @ module.weight_v).item()
            assert used == pytest.approx(true_sigma, rel=1e-4), name
            effective = hook.compute_weight(module, do_power_iteration=False)
            effective = hook.reshape_weight_to_matrix(effective).double()
            assert torch.linalg.matrix_norm(effective, ord=2).item() == pytest.approx(1.0, rel=1e-4), name
            assert not torch.equal(module.weight_orig, state[name]), name
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in state.items()), "weights and u, v buffers are restored"


def test_the_two_policies_render_clearly_different_images(tmp_path, tiny_adapter) -> None:
    recipes = [base_recipe(tiny_adapter, seed=s) for s in range(4)]
    frozen = [replace(r, perturbation={**multiplicative(1.0), "spectral_norm": "frozen"}) for r in recipes]
    renormalised = [replace(r, perturbation={**multiplicative(1.0), "spectral_norm": "renormalise"}) for r in recipes]
    images = render_bytes(tiny_adapter, recipes + frozen + renormalised, tmp_path)
    base, froz, ren = images[:4], images[4:8], images[8:]
    between = np.mean([mad(a, b) for a, b in zip(froz, ren, strict=True)])
    assert between > 40  # measured 77/255 on the tiny model at ε = 1 (15 at ε = 0.5)
    # renormalise keeps every layer's gain, so it stays closer to the baseline than frozen does
    assert np.mean([mad(a, b) for a, b in zip(base, ren, strict=True)]) < np.mean(
        [mad(a, b) for a, b in zip(base, froz, strict=True)]
    )


def test_every_epsilon_zero_condition_renders_the_baseline_bytes(tmp_path, tiny_adapter) -> None:
    baseline = base_recipe(tiny_adapter)
    zero = [
        {**multiplicative(0.0), "spectral_norm": "frozen"},
        {**multiplicative(0.0), "spectral_norm": "renormalise"},
        {**multiplicative(0.0, ["attention"]), "spectral_norm": "renormalise"},
        semantic("embedding-noise", 0.0),
        semantic("class-mix", 0.0),
        semantic("random-embedding", 0.0),
    ]
    images = render_bytes(tiny_adapter, [baseline, *(replace(baseline, perturbation=p) for p in zero)], tmp_path)
    assert all(image == images[0] for image in images[1:])


# --- test models in which attention and the class matter ----------------------------------------


def test_random_models_have_attention_and_a_strong_class_pathway(tmp_path, tiny_adapter) -> None:
    gammas = [p.item() for n, p in tiny_adapter.model.named_parameters() if n.endswith(".gamma")]
    assert gammas and all(g != 0 for g in gammas)
    bases = [base_recipe(tiny_adapter, seed=s, class_index=c) for s in range(4) for c in (1, 207)]
    variants = {
        "attention": [replace(b, perturbation=multiplicative(1.0, ["attention"])) for b in bases],
        "other class": [replace(b, class_index=980) for b in bases],
        **{
            mode: [replace(b, perturbation=semantic(mode)) for b in bases]
            for mode in ("embedding-noise", "class-mix", "random-embedding")
        },
    }
    images = render_bytes(tiny_adapter, bases + [r for rs in variants.values() for r in rs], tmp_path)
    base_images, rest = images[: len(bases)], images[len(bases) :]
    difference = {
        name: np.mean(
            [mad(a, b) for a, b in zip(base_images, rest[i * len(bases) : (i + 1) * len(bases)], strict=True)]
        )
        for i, name in enumerate(variants)
    }
    # mean over 8 images of the tiny model (seed 0), of 255: attention 31, another class 8, semantic modes 13-15 at
    # ε = 1. Before (gamma 0, default embedding init): 0, 0.3 and 0.35-0.48.
    assert difference["attention"] > 10, difference
    assert difference["other class"] > 4, difference
    assert all(difference[mode] > 8 for mode in ("embedding-noise", "class-mix", "random-embedding")), difference


# --- identical conditions ------------------------------------------------------------------------


def plan_conditions(tiny_model, conditions, **top):
    spec = {
        "name": "x",
        "model": str(tiny_model),
        "truncation": 0.4,
        "classes": [1, 207],
        "seeds": 2,
        "conditions": conditions,
        **top,
    }
    return set_plan(spec=parse_spec(spec))


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (
            {"kind": "multiplicative", "epsilon": 0.5, "targets": "embedding", "seed": 2},
            {"kind": "semantic", "mode": "embedding-noise", "epsilon": 0.5, "seed": 2},
        ),
        (
            {"kind": "multiplicative", "epsilon": 0.5, "targets": "all", "seed": 1},
            {"kind": "multiplicative", "epsilon": 0.5, "targets": ["re:.", "convs"], "seed": 1},
        ),
        (
            {"kind": "multiplicative", "epsilon": 0.5, "targets": "embedding", "seed": 1, "spectral_norm": "frozen"},
            {
                "kind": "multiplicative",
                "epsilon": 0.5,
                "targets": "embedding",
                "seed": 1,
                "spectral_norm": "renormalise",
            },
        ),
        (
            {"kind": "multiplicative", "epsilon": 0.5, "seed": 1, "draws": 1},
            {"kind": "multiplicative", "epsilon": 0.5, "seed": 1, "draws": 3},
        ),
        (
            {"kind": "semantic", "mode": "class-mix", "epsilon": 0.5, "seed": 1},
            {"kind": "semantic", "mode": "class-mix", "epsilon": 0.5, "seed": 1, "k": 3},
        ),
        (None, None),
    ],
    ids=["embedding-twice", "same-tensors", "policy-without-sn", "draw-subset", "class-mix-default-k", "baseline"],
)
def test_conditions_with_the_same_effect_are_refused(tiny_model, first, second) -> None:
    conditions = [
        {"name": "a", **({"perturbation": first} if first else {})},
        {"name": "b", **({"perturbation": second} if second else {})},
    ]
    with pytest.raises(SpecError, match=r"^conditions\[1\]: 'b'.* renders the same images as condition 'a'"):
        plan_conditions(tiny_model, conditions)


def test_conditions_that_differ_in_effect_are_accepted(tiny_model) -> None:
    conditions = [
        {"name": "baseline"},
        {"name": "zero", "perturbation": {"kind": "multiplicative", "epsilon": 0.0}},  # explicit ε = 0: allowed
        {"name": "zero-semantic", "perturbation": {"kind": "semantic", "mode": "random-embedding", "epsilon": 0}},
        {"name": "frozen", "perturbation": {"kind": "multiplicative", "epsilon": 0.5, "targets": "convs"}},
        {
            "name": "renorm",
            "perturbation": {
                "kind": "multiplicative",
                "epsilon": 0.5,
                "targets": "convs",
                "spectral_norm": "renormalise",
            },
        },
        {
            "name": "uniform",
            "perturbation": {"kind": "multiplicative", "epsilon": 0.5, "targets": "convs", "noise": "uniform"},
        },
        {"name": "walk", "walk": {"to_seed": 5}},
        {"name": "walk-lerp", "walk": {"to_seed": 5, "method": "lerp"}},
        {
            "name": "walk-perturbed",
            "walk": {"to_seed": 5},
            "perturbation": {"kind": "multiplicative", "epsilon": 0.5, "targets": "convs"},
        },
        {"name": "arithmetic", "arithmetic": {"a": [1, 2], "b": [3, 4], "c": [5, 6]}},
    ]
    plan = plan_conditions(tiny_model, conditions)
    assert len(plan.items) == 4 * 6 + 3 * 4 * 8 + 2


def test_recipe_records_the_spectral_norm_policy(tiny_model) -> None:
    plan = plan_conditions(
        tiny_model,
        [
            {"name": "default", "perturbation": {"kind": "multiplicative", "epsilon": 0.5}},
            {
                "name": "renorm",
                "perturbation": {"kind": "multiplicative", "epsilon": 0.5, "spectral_norm": "renormalise"},
            },
        ],
    )
    policies = {item.condition: item.recipe.to_dict()["perturbation"]["spectral_norm"] for item in plan.items}
    assert policies == {"default": "frozen", "renorm": "renormalise"}


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        (
            {"name": "x", "perturbation": {"kind": "multiplicative", "epsilon": 1, "spectral_norm": "auto"}},
            r"^conditions\[0\]\.perturbation\.spectral_norm: must be frozen or renormalise",
        ),
        ({"name": "x", "walk": {"frames": 4}}, r"^conditions\[0\]\.walk: give to_seed and/or to_class"),
        ({"name": "x", "walk": {"to_seed": 3, "frames": 1}}, r"^conditions\[0\]\.walk\.frames: must be an integer ≥ 2"),
        ({"name": "x", "walk": {"to_seed": 3, "method": "cubic"}}, r"^conditions\[0\]\.walk\.method"),
        ({"name": "x", "walk": {"to_class": "crane"}}, r"^conditions\[0\]\.walk\.to_class: .*ambiguous"),
        ({"name": "x", "arithmetic": {"a": [1], "b": [2]}}, r"^conditions\[0\]\.arithmetic\.c: missing"),
        (
            {"name": "x", "arithmetic": {"a": [1], "b": [2], "c": [2**32]}},
            r"^conditions\[0\]\.arithmetic\.c\[0\]: must be at most 4294967295",
        ),
        ({"name": "x", "arithmetic": [{"a": [1], "b": [2], "c": [2]}]}, r"^conditions\[0\]\.arithmetic\[0\]: a term"),
        (
            {"name": "x", "arithmetic": {"a": [1], "b": [2], "c": [3]}, "walk": {"to_seed": 3}},
            r"^conditions\[0\]\.arithmetic: a condition has either",
        ),
    ],
)
def test_bad_walk_arithmetic_and_policy_keys_name_the_key(tiny_model, condition, message) -> None:
    with pytest.raises(SpecError, match=message):
        plan_conditions(tiny_model, [condition])


def test_model_dependent_walk_errors(tiny_model) -> None:
    with pytest.raises(SpecError, match=r"^conditions\[0\]\.walk\.to_class: 1000 is outside"):
        plan_conditions(tiny_model, [{"name": "w", "walk": {"to_class": 1000}}])
    with pytest.raises(SpecError, match=r"^conditions\[0\]\.walk: walks from seed 1 \(class 1\) to itself"):
        plan_conditions(tiny_model, [{"name": "w", "walk": {"to_seed": 1, "to_class": 1}}])


def test_refusal_uses_spectral_norm_layers_of_the_model(tiny_adapter) -> None:
    spec = parse_spec(
        {
            "name": "x",
            "model": "m",
            "truncation": 0.4,
            "classes": [1],
            "seeds": 1,
            "conditions": [
                {"name": "a", "perturbation": {"kind": "multiplicative", "epsilon": 1, "targets": "gen_z"}},
                {
                    "name": "b",
                    "perturbation": {
                        "kind": "multiplicative",
                        "epsilon": 1,
                        "targets": "gen_z",
                        "spectral_norm": "renormalise",
                    },
                },
                {
                    "name": "c",
                    "perturbation": {
                        "kind": "multiplicative",
                        "epsilon": 1,
                        "targets": "re:gen_z\\.bias$",
                        "spectral_norm": "renormalise",
                    },
                },
            ],
        }
    )
    refuse_identical_conditions(spec, tiny_adapter)  # gen_z.weight_orig is spectral-normalised: a, b differ
    spec = parse_spec(
        {
            **spec.raw,
            "conditions": [
                *spec.raw["conditions"],
                {"name": "d", "perturbation": {"kind": "multiplicative", "epsilon": 1, "targets": "re:gen_z\\.bias$"}},
            ],
        }
    )
    with pytest.raises(SpecError, match=r"^conditions\[3\]: 'd' renders the same images as condition 'c'"):
        refuse_identical_conditions(spec, tiny_adapter)


# --- latent arithmetic and walks as stimuli -------------------------------------------------------


def test_arithmetic_latent_is_the_mean_of_each_term(tiny_adapter) -> None:
    z = {s: tiny_adapter.latent(s, 0.4) for s in range(6)}
    terms = {"a": [0, 1], "b": [2, 3], "c": [4, 5]}
    expected = (z[0] + z[1]) / 2 - (z[2] + z[3]) / 2 + (z[4] + z[5]) / 2
    torch.testing.assert_close(tiny_adapter.arithmetic_latent(terms, 0.4), expected)
    recipe = base_recipe(tiny_adapter, seed=None, arithmetic=terms)
    torch.testing.assert_close(tiny_adapter.recipe_latent(recipe), expected)


def test_walk_frames_run_through_the_perturbed_network(tmp_path, tiny_adapter) -> None:
    perturbation = {**multiplicative(0.5, ["convs"]), "spectral_norm": "renormalise"}
    start = base_recipe(tiny_adapter, seed=0, class_index=1, perturbation=perturbation)
    walk = {"to_seed": 5, "to_class": 207, "method": "lerp"}
    frames = [replace(start, walk={**walk, "t": t}) for t in (0.0, 0.5, 1.0)]
    end = replace(start, seed=5, class_index=207)
    plain = replace(start, perturbation=None)
    images = render_bytes(tiny_adapter, [*frames, start, end, plain], tmp_path)
    assert images[0] == images[3], "lerp at t = 0 is the perturbed start image"
    assert images[2] == images[4], "lerp at t = 1 is the perturbed end image"
    assert images[1] not in (images[0], images[2])
    assert mad(images[3], images[5]) > 3, "the perturbation shows in the frames"


@pytest.mark.django_db
def test_walk_and_arithmetic_stimuli_rerender_byte_identically(tmp_path, tiny_model, admin_client: Client) -> None:
    spec = write_spec(
        tmp_path / "spec.yaml",
        tiny_model,
        seeds=[0, 1],
        classes=[1, 207],
        conditions=[
            {"name": "baseline"},
            {
                "name": "walk",
                "walk": {"to_seed": 7, "frames": 4},
                "perturbation": {"kind": "multiplicative", "epsilon": 0.5, "spectral_norm": "renormalise", "draws": 2},
            },
            {
                "name": "arithmetic",
                "arithmetic": [{"a": [2, 3], "b": [4, 5], "c": [6, 8]}, {"a": 9, "b": 10, "c": 11}],
                "perturbation": {"kind": "semantic", "mode": "class-mix", "epsilon": 0.3},
            },
        ],
    )
    call_command("render_set", str(spec), stdout=io.StringIO())
    stimulus_set = StimulusSet.objects.get()
    assert stimulus_set.stimuli.filter(condition="walk").count() == 2 * 2 * 4 * 2
    arithmetic = stimulus_set.stimuli.filter(condition="arithmetic")
    assert arithmetic.count() == 2 * 2 and set(arithmetic.values_list("seed", flat=True)) == {None}
    frame = next(s for s in stimulus_set.stimuli.filter(condition="walk", draw=1) if 0 < s.recipe["walk"]["t"] < 1)
    assert frame.recipe["walk"]["to_seed"] == 7 and frame.recipe["perturbation"]["spectral_norm"] == "renormalise"
    for stimulus in (frame, arithmetic.first()):
        out = io.StringIO()
        call_command("render_recipe", stimulus.public_id, "--out", str(tmp_path / "again.png"), stdout=out)
        assert "identical to the recorded image" in out.getvalue()
    sheet = admin_client.get(f"/admin/generation/stimulusset/{stimulus_set.pk}/contact-sheet/").content.decode()
    assert sheet.count("<img") == stimulus_set.stimuli.count()
    assert "spectral norm renormalise" in sheet and "walk (slerp)" in sheet and "latent arithmetic" in sheet
    assert "seed 0 → 7, slerp t = 0.333, draw 1" in sheet and "z̄(2,3) - z̄(4,5) + z̄(6,8), draw 0" in sheet
    # walk frames appear in t order within their cell: draw 0, seed 0 first
    row = sheet[sheet.index("walk (slerp)") :]
    labels = [part.split('"')[0] for part in row.split('title="')[1:5]]
    assert labels == [f"seed 0 → 7, slerp t = {t}, draw 0" for t in ("0", "0.333", "0.667", "1")]


# --- the all-kinds example -----------------------------------------------------------------------


def render_example_in_a_process(
    tmp_path: Path, tiny_model: Path, backbones: dict[str, Path], name: str
) -> dict[str, str]:
    spec = yaml.safe_load(EXAMPLE.read_text())
    spec["model"] = str(tiny_model)
    for condition in spec["conditions"]:  # the example's relative paths, made absolute for this temp spec
        block = condition.get("style_transfer") or condition.get("deepdream") or {}
        if "backbone" in block:
            block["backbone"] = str(backbones[Path(block["backbone"]).name.split("-")[0]])
        for role in ("content", "style"):
            if role in block:
                block[role] = str(EXAMPLE.parent / block[role])
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    out = tmp_path / name
    env = subprocess_env(
        TORCH_NUM_THREADS="1",
        CELERY_BROKER_URL="",
        VAR_DIR=str(tmp_path / f"var-{name}"),
        DATABASE_URL=f"sqlite:///{tmp_path / f'{name}.sqlite3'}",
        MEDIA_ROOT=str(tmp_path / f"media-{name}"),
    )
    for command in (["migrate", "-v0"], ["render_set", str(path), "--out", str(out)]):
        result = subprocess.run(
            [sys.executable, "manage.py", *command], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env
        )
        assert result.returncode == 0, result.stderr
    with (out / "manifest.csv").open() as handle:
        return {row["recipe_id"]: (row["condition"], row["sha256"]) for row in csv.DictReader(handle)}


def test_all_kinds_example_renders_the_same_bytes_in_two_processes(tmp_path, tiny_model) -> None:
    spec = yaml.safe_load(EXAMPLE.read_text())
    kinds = {c.get("perturbation", {}).get("kind") for c in spec["conditions"]}
    assert kinds == {None, "multiplicative", "semantic"}
    assert {"style_transfer", "deepdream"} <= {key for c in spec["conditions"] for key in c}
    backbones = {}
    for architecture in ("vgg19", "nin", "googlenet"):
        backbones[architecture] = tmp_path / f"{architecture}-tiny"
        call_command("backbone_weights", "make-random", str(backbones[architecture]), "--architecture", architecture)
    policies = {c["perturbation"].get("spectral_norm") for c in spec["conditions"] if "perturbation" in c}
    assert {"frozen", "renormalise"} <= policies
    assert {"walk", "arithmetic"} <= {key for c in spec["conditions"] for key in c}
    first = render_example_in_a_process(tmp_path, tiny_model, backbones, "one")
    second = render_example_in_a_process(tmp_path, tiny_model, backbones, "two")
    # 46 generator images + 3 VGG-19 snapshots (3, 6, 10) + 1 NIN image + 4 dreams of the baseline stimuli
    assert len(first) == 54 and first == second
    conditions = {condition for condition, _ in first.values()}
    assert len(conditions) == len(spec["conditions"])
    # all distinct except the walks' last frames: the 4 walks all end at (golden retriever, seed 5)
    assert len({sha for _, sha in first.values()}) == 54 - 3


def test_render_walk_command_through_a_perturbed_network(tmp_path, tiny_model) -> None:
    common = ["--from-seed", "0", "--to-seed", "1", "--from-class", "1", "--frames", "3", "--method", "lerp"]
    call_command("render_walk", str(tiny_model), "--out", str(tmp_path / "plain"), *common)
    perturbation = '{"kind": "multiplicative", "epsilon": 0.5, "spectral_norm": "renormalise"}'
    call_command("render_walk", str(tiny_model), "--out", str(tmp_path / "p"), *common, "--perturbation", perturbation)
    frames = json.loads((tmp_path / "p" / "walk.json").read_text())
    assert frames[1]["recipe"]["perturbation"]["spectral_norm"] == "renormalise"
    plain = [(tmp_path / "plain" / f"frame_{i:03d}.png").read_bytes() for i in range(3)]
    perturbed_frames = [(tmp_path / "p" / f"frame_{i:03d}.png").read_bytes() for i in range(3)]
    assert all(mad(a, b) > 3 for a, b in zip(plain, perturbed_frames, strict=True))
    with pytest.raises(SpecError, match=r"^--perturbation\.epsilon: missing"):
        call_command(
            "render_walk",
            str(tiny_model),
            "--out",
            str(tmp_path / "x"),
            *common,
            "--perturbation",
            '{"kind": "multiplicative"}',
        )
    with pytest.raises(SpecError, match=r"^--perturbation: unknown target"):
        call_command(
            "render_walk",
            str(tiny_model),
            "--out",
            str(tmp_path / "x"),
            *common,
            "--perturbation",
            '{"kind": "multiplicative", "epsilon": 1, "targets": "nope"}',
        )


@pytest.mark.django_db
def test_dcgan_arithmetic_and_walk_conditions(tmp_path) -> None:
    from tests.generation.test_rendering import make_dcgan_folder

    folder = make_dcgan_folder(tmp_path / "dcgan")
    spec = {
        "name": "dc",
        "model": str(folder),
        "seeds": [0, 1],
        "conditions": [
            {"name": "baseline"},
            {"name": "arithmetic", "arithmetic": {"a": [2, 3, 4], "b": [5, 6, 7], "c": [8, 9, 10]}},
            {
                "name": "walk",
                "walk": {"to_seed": 4, "frames": 3},
                "perturbation": {"kind": "multiplicative", "epsilon": 0.5, "targets": "convs"},
            },
        ],
    }
    with pytest.raises(SpecError, match=r"^conditions\[0\]\.walk\.to_class: dcgan is unconditional"):
        set_plan(spec=parse_spec({**spec, "conditions": [{"name": "w", "walk": {"to_seed": 4, "to_class": 1}}]}))
    (tmp_path / "dc.yaml").write_text(yaml.safe_dump(spec))
    call_command("render_set", str(tmp_path / "dc.yaml"), stdout=io.StringIO())
    stimuli = StimulusSet.objects.get(name="dc").stimuli
    assert stimuli.count() == 2 + 1 + 2 * 3
    # distinct except the two walks' last frames, which both end at seed 4
    assert len(set(stimuli.values_list("sha256", flat=True))) == stimuli.count() - 1


def test_seeds_beyond_numpys_range_are_refused_up_front(tiny_model) -> None:
    with pytest.raises(SpecError, match=r"^seeds\[1\]: must be at most 4294967295"):
        plan_conditions(tiny_model, [{"name": "b"}], seeds=[0, 2**32])
    with pytest.raises(SpecError, match=r"^conditions\[0\]\.walk\.to_seed: must be at most"):
        plan_conditions(tiny_model, [{"name": "w", "walk": {"to_seed": 2**40}}])
