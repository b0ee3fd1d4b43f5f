"""The render engine: bit-exact reproducibility, ε = 0, exact restore, batching, semantic modes, walks, DCGAN."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from django.core.management import call_command
from PIL import Image

from generation.descriptors import describe
from generation.generators import DCGANGenerator
from generation.perturbation import perturbed
from generation.pipeline import render
from generation.recipes import Recipe
from generation.weights import load_generator, model_info
from tests.conftest import ROOT, subprocess_env


def base_recipe(adapter, **changes) -> Recipe:
    recipe = Recipe(
        model={"id": adapter.model_id, "sha256": adapter.sha256, "architecture": adapter.architecture},
        seed=0,
        class_index=207,
        truncation=0.4,
        size=adapter.native_size,
    )
    return replace(recipe, **changes)


def render_bytes(adapter, recipes: list[Recipe], tmp_path: Path) -> list[bytes]:
    paths = {r.recipe_id: tmp_path / f"{i}.png" for i, r in enumerate(recipes)}
    render(adapter, recipes, destination=lambda r: paths[r.recipe_id], on_batch=lambda batch: None)
    return [paths[r.recipe_id].read_bytes() for r in recipes]


def multiplicative(epsilon: float, targets=("all",), seed: int = 1) -> dict:
    return {
        "kind": "multiplicative",
        "epsilon": float(epsilon),
        "targets": list(targets),
        "seed": seed,
        "noise": "normal",
    }


def test_recipe_round_trips_and_hashes_stably(tiny_adapter) -> None:
    recipe = base_recipe(tiny_adapter, perturbation=multiplicative(0.5), draw=2)
    again = Recipe.from_json(recipe.to_json())
    assert again == recipe and again.recipe_id == recipe.recipe_id
    assert json.loads(recipe.to_json())["code_version"] == "2"
    assert replace(recipe, draw=3).recipe_id != recipe.recipe_id


def test_same_recipe_same_bytes_in_separate_processes(tmp_path, tiny_model, tiny_adapter) -> None:
    recipe = base_recipe(tiny_adapter, perturbation=multiplicative(0.7), draw=1)
    (tmp_path / "recipe.json").write_text(recipe.to_json())
    shas = []
    for n in range(2):
        result = subprocess.run(
            [
                sys.executable,
                "manage.py",
                "render_recipe",
                str(tmp_path / "recipe.json"),
                "--out",
                str(tmp_path / f"p{n}.png"),
                "--model",
                str(tiny_model),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            env=subprocess_env(
                TORCH_NUM_THREADS="1",
                CELERY_BROKER_URL="",
                DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
                VAR_DIR=str(tmp_path / "var"),
            ),
        )
        assert result.returncode == 0, result.stderr
        shas.append(hashlib.sha256((tmp_path / f"p{n}.png").read_bytes()).hexdigest())
    here = hashlib.sha256(render_bytes(tiny_adapter, [recipe], tmp_path)[0]).hexdigest()
    assert shas[0] == shas[1] == here


def test_epsilon_zero_gives_baseline_bytes(tmp_path, tiny_adapter) -> None:
    baseline = base_recipe(tiny_adapter)
    zero = [base_recipe(tiny_adapter, perturbation=multiplicative(0.0, targets)) for targets in (["all"], ["convs"])]
    zero.append(
        base_recipe(
            tiny_adapter,
            perturbation={"kind": "semantic", "mode": "embedding-noise", "epsilon": 0.0, "seed": 4, "noise": "normal"},
        )
    )
    images = render_bytes(tiny_adapter, [baseline, *zero], tmp_path)
    assert all(image == images[0] for image in images[1:])


def test_seeds_draws_epsilons_and_classes_differ(tmp_path, tiny_adapter) -> None:
    recipes = [
        base_recipe(tiny_adapter),
        base_recipe(tiny_adapter, seed=1),
        base_recipe(tiny_adapter, class_index=1),
        base_recipe(tiny_adapter, perturbation=multiplicative(0.5), draw=0),
        base_recipe(tiny_adapter, perturbation=multiplicative(0.5), draw=1),
        base_recipe(tiny_adapter, perturbation=multiplicative(1.0), draw=0),
        base_recipe(tiny_adapter, perturbation=multiplicative(0.5, seed=2), draw=0),
    ]
    images = render_bytes(tiny_adapter, recipes, tmp_path)
    assert len({hashlib.sha256(i).hexdigest() for i in images}) == len(images)


def test_only_targeted_parameters_change_and_all_are_restored_exactly(tiny_adapter) -> None:
    model = tiny_adapter.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    targets = tiny_adapter.target_names(["conditional-bn"])
    assert targets and all(".bn_" in n and (".scale." in n or ".offset." in n) for n in targets)
    with perturbed(model, targets, epsilon=0.5, seed=1, draw=0):
        during = model.state_dict()
        for name, value in during.items():
            if name in targets:
                assert not torch.equal(value, before[name]), name
            else:
                assert torch.equal(value, before[name]), name
    after = model.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before)


def test_restore_after_an_error_inside_the_perturbation(tiny_adapter) -> None:
    before = {k: v.clone() for k, v in tiny_adapter.model.state_dict().items()}
    with (
        pytest.raises(RuntimeError),
        perturbed(tiny_adapter.model, tiny_adapter.target_names(["all"]), epsilon=2.0, seed=3, draw=0),
    ):
        raise RuntimeError("boom")
    assert all(torch.equal(tiny_adapter.model.state_dict()[k], v) for k, v in before.items())


def test_rendering_a_perturbed_condition_leaves_the_model_unchanged(tmp_path, tiny_adapter) -> None:
    before = {k: v.clone() for k, v in tiny_adapter.model.state_dict().items()}
    render_bytes(
        tiny_adapter, [base_recipe(tiny_adapter, perturbation=multiplicative(1.0), draw=d) for d in (0, 1)], tmp_path
    )
    assert all(torch.equal(tiny_adapter.model.state_dict()[k], v) for k, v in before.items())


@pytest.mark.parametrize(
    ("targets", "must_match"),
    [
        (["embedding"], r"^embeddings\.weight$"),
        (["gen_z"], r"^generator\.gen_z\."),
        (["attention"], r"^generator\.layers\.2\."),
        (["block:3"], r"^generator\.layers\.3\."),
        (["re:conv_to_rgb"], r"conv_to_rgb"),
    ],
)
def test_target_presets(tiny_adapter, targets, must_match) -> None:
    import re

    names = tiny_adapter.target_names(targets)
    assert names and all(re.search(must_match, n) for n in names)


def test_unknown_target_is_refused(tiny_adapter) -> None:
    with pytest.raises(ValueError, match="unknown target 'convz'"):
        tiny_adapter.target_names(["convz"])
    with pytest.raises(ValueError, match="selects no parameter"):
        tiny_adapter.target_names(["re:^nothing$"])


def test_batch_mates_and_padding_do_not_change_bytes(tmp_path, tiny_adapter) -> None:
    alone = render_bytes(tiny_adapter, [base_recipe(tiny_adapter, seed=5)], tmp_path / "a")
    crowd = render_bytes(tiny_adapter, [base_recipe(tiny_adapter, seed=s) for s in range(3, 10)], tmp_path / "b")
    assert alone[0] == crowd[2]


def test_semantic_modes(tmp_path, tiny_adapter) -> None:
    def semantic(mode, **extra):
        return {"kind": "semantic", "mode": mode, "epsilon": 1.0, "seed": 3, **extra}

    recipes = [
        base_recipe(tiny_adapter),
        base_recipe(tiny_adapter, perturbation=semantic("class-mix", k=3)),
        base_recipe(tiny_adapter, perturbation=semantic("random-embedding")),
        base_recipe(tiny_adapter, perturbation=semantic("random-embedding"), draw=1),
    ]
    images = render_bytes(tiny_adapter, recipes, tmp_path)
    assert len(set(images)) == 4
    mix = tiny_adapter.mix_classes(recipes[1])
    assert len(mix) == 3 and 207 not in mix
    y = tiny_adapter.class_vector(recipes[1])
    assert y[207] == 0 and y.sum().item() == pytest.approx(1.0)
    embed = tiny_adapter.model.embeddings(tiny_adapter.one_hot(207)).detach()
    swapped = tiny_adapter.random_embedding(embed, recipes[2])
    assert swapped.norm().item() == pytest.approx(embed.norm().item(), rel=1e-5)


def test_latent_walk_command(tmp_path, tiny_model) -> None:
    out = tmp_path / "walk"
    call_command(
        "render_walk",
        str(tiny_model),
        "--out",
        str(out),
        "--from-seed",
        "0",
        "--to-seed",
        "1",
        "--from-class",
        "1",
        "--to-class",
        "golden retriever",
        "--frames",
        "5",
        "--method",
        "slerp",
    )
    frames = sorted(out.glob("frame_*.png"))
    assert len(frames) == 5
    assert len({f.read_bytes() for f in frames}) == 5
    for suffix in ("webp", "gif"):
        with Image.open(out / f"walk.{suffix}") as animation:
            assert animation.n_frames == 5
    recipes = json.loads((out / "walk.json").read_text())
    assert recipes[-1]["recipe"]["walk"] == {"to_seed": 1, "to_class": 207, "t": 1.0, "method": "slerp"}


def make_dcgan_folder(folder: Path, *, prefix: str = "") -> Path:
    torch.manual_seed(0)
    model = DCGANGenerator(nz=16, ngf=8, nc=3, image_size=32)
    with torch.no_grad():  # a trained net's BN stats are not the identity; make the check meaningful
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_var.uniform_(0.5, 2.0)
    folder.mkdir(parents=True)
    checkpoint = {"netG": {f"{prefix}{k}": v for k, v in model.state_dict().items()}}
    torch.save(checkpoint, folder / "netG_epoch_24.pth")
    (folder / "config.json").write_text(
        json.dumps(
            {
                "architecture": "dcgan",
                "nz": 16,
                "ngf": 8,
                "nc": 3,
                "image_size": 32,
                "weights_file": "netG_epoch_24.pth",
            }
        )
    )
    return folder


def test_dcgan_adapter_loads_a_user_checkpoint_and_perturbs(tmp_path) -> None:
    folder = make_dcgan_folder(tmp_path / "dcgan", prefix="module.")
    adapter = load_generator(model_info(folder))
    assert adapter.native_size == 32 and not adapter.conditional
    assert adapter.target_names(["block:1"]) == ["main.3.weight", "main.4.weight", "main.4.bias"]
    recipe = Recipe(model={"id": "dcgan", "sha256": adapter.sha256, "architecture": "dcgan"}, seed=0, size=32)
    recipes = [
        recipe,
        replace(recipe, seed=1),
        replace(recipe, perturbation=multiplicative(0.5, ["convs"])),
        replace(recipe, perturbation=multiplicative(0.0, ["convs"])),
    ]
    images = render_bytes(adapter, recipes, tmp_path)
    assert images[0] != images[1] and images[0] != images[2] and images[0] == images[3]
    with Image.open(tmp_path / "0.png") as image:
        assert image.size == (32, 32)


def test_output_size_resizes(tmp_path, tiny_adapter) -> None:
    [data] = render_bytes(tiny_adapter, [base_recipe(tiny_adapter, size=96)], tmp_path)
    (tmp_path / "x.png").write_bytes(data)
    with Image.open(tmp_path / "x.png") as image:
        assert image.size == (96, 96)


def test_descriptors_sanity() -> None:
    gray = np.full((32, 32, 3), 128, np.uint8)
    flat = describe(gray)
    assert flat["colorfulness"] == 0 and flat["saturation"] == 0 and flat["rms_contrast"] == 0
    assert flat["luminance_entropy"] == 0 and flat["edge_density"] == 0
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 255
    assert describe(red)["saturation"] == 1.0
    assert describe(red)["colorfulness"] == pytest.approx(0.3 * np.hypot(255, 127.5), rel=1e-4)
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    busy = describe(noise)
    assert busy["luminance_entropy"] > 6 and busy["edge_density"] > 0.5
    assert busy["compression_ratio"] > 0.9
    assert flat["compression_ratio"] < 0.1
    half = np.zeros((32, 32, 3), np.uint8)
    half[:, 16:] = 255
    contrast = describe(half)
    assert contrast["rms_contrast"] == pytest.approx(0.5) and contrast["luminance_entropy"] == pytest.approx(1.0)
    assert 0 < contrast["edge_density"] < 0.1
