"""Style transfer and DeepDream conditions: backbone weights (strict, offline), spec errors, snapshots as stimuli,
bytes equal across processes at a fixed thread count."""

from __future__ import annotations

import csv
import functools
import hashlib
import http.server
import io
import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from django.core.management import call_command
from PIL import Image

from generation.backbone_catalog import BackboneError, resolve_backbone
from generation.backbones import PRESETS, build_backbone, download, load_backbone, make_random
from generation.models import Stimulus, StimulusSet
from generation.optimisations import OptimisationRecipe
from generation.spec import SpecError, load_spec
from tests.conftest import ROOT, subprocess_env
from tests.generation.conftest import write_spec


@pytest.fixture(scope="session")
def backbones(tmp_path_factory) -> dict[str, Path]:
    """Tiny random-weight backbones (same state_dict keys as the published files, few channels)."""
    root = tmp_path_factory.mktemp("backbones")
    for architecture in ("vgg19", "nin", "googlenet"):
        make_random(root / architecture, architecture=architecture, preset="tiny", seed=0)
    return {a: root / a for a in ("vgg19", "nin", "googlenet")}


def write_image(path: Path, seed: int, size: tuple[int, int] = (72, 60)) -> Path:
    rng = np.random.default_rng(seed)
    smooth = rng.random((size[1] // 6, size[0] // 6, 3))
    image = Image.fromarray((smooth * 255).astype(np.uint8), "RGB").resize(size, Image.Resampling.BILINEAR)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


# --- weights -------------------------------------------------------------------------------------


def test_published_layouts_have_the_published_parameter_counts_and_keys() -> None:
    with torch.device("meta"):
        vgg = build_backbone({"architecture": "vgg19", **PRESETS["vgg19"]["full"]})
        googlenet = build_backbone({"architecture": "googlenet", **PRESETS["googlenet"]["full"]})
        nin = build_backbone({"architecture": "nin", **PRESETS["nin"]["full"]})
    assert sum(p.numel() for p in vgg.parameters()) == 143_667_240  # torchvision vgg19
    assert sum(p.numel() for p in googlenet.parameters()) == 13_004_888  # torchvision googlenet with aux heads
    vgg_keys, gn_keys, nin_shapes = vgg.state_dict(), googlenet.state_dict(), nin.state_dict()
    assert {"features.0.weight", "features.34.bias", "classifier.6.weight"} <= set(vgg_keys)
    assert {
        "conv1.conv.weight",
        "conv1.bn.running_var",
        "inception4c.branch2.1.conv.weight",
        "inception5b.branch4.1.bn.weight",
        "aux1.fc2.weight",
        "fc.weight",
    } <= set(gn_keys)
    # The NIN port's indices: convs at 0, 2, 4, 7, ..., 26 (cccp8-1024: 1024 → 1000 maps)
    assert tuple(nin_shapes["features.0.weight"].shape) == (96, 3, 11, 11)
    assert tuple(nin_shapes["features.26.weight"].shape) == (1000, 1024, 1, 1)


def test_backbone_loading_is_strict_and_offline(tmp_path, backbones) -> None:
    network = load_backbone(resolve_backbone(str(backbones["vgg19"]), weights_dir=tmp_path))
    assert not network.model.training and not any(p.requires_grad for p in network.model.parameters())

    folder = tmp_path / "broken"
    make_random(folder, architecture="googlenet", preset="tiny", seed=1)
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    del state["fc.bias"]
    state["extra.weight"] = torch.zeros(1)
    state["conv1.conv.weight"] = torch.zeros(1, 2, 3)
    torch.save(state, folder / "pytorch_model.bin")
    (folder / "weights.json").unlink()  # no recorded checksum: the key check itself must refuse it
    with pytest.raises(BackboneError) as error:
        load_backbone(resolve_backbone(str(folder), weights_dir=tmp_path))
    message = str(error.value)
    assert "1 missing (fc.bias)" in message and "1 unexpected (extra.weight)" in message
    assert "1 wrong shape (conv1.conv.weight (1, 2, 3)" in message and "\n" not in message

    make_random(folder, architecture="nin", preset="tiny", seed=2)
    with (folder / "pytorch_model.bin").open("ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(BackboneError, match="does not match the sha256 recorded"):
        resolve_backbone(str(folder), weights_dir=tmp_path)

    with pytest.raises(BackboneError, match=r"backbone_weights download vgg19.*never downloads"):
        resolve_backbone("vgg19", weights_dir=tmp_path / "empty")


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def file_server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(_Files, directory=str(served))
    for port in range(7100, 7200):
        try:
            server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
            break
        except OSError:
            continue
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_checks_the_publishers_checksum_then_loads_strictly(tmp_path, file_server) -> None:
    served, base = file_server
    make_random(tmp_path / "vgg", architecture="vgg19", preset="tiny", seed=0)
    (served / "vgg19.pth").write_bytes((tmp_path / "vgg" / "pytorch_model.bin").read_bytes())
    weights = tmp_path / "weights"
    with pytest.raises(BackboneError, match=r"publisher states dcbb9e9d"):
        download("vgg19", weights_dir=weights, url=f"{base}/vgg19.pth", timeout=10)
    assert not (weights / "vgg19" / "pytorch_model.bin").exists()

    # NIN has no published checksum: the received sha256 is recorded and the file must load strictly.
    make_random(tmp_path / "nin-full", architecture="nin", preset="full", seed=0)
    (served / "nin.pth").write_bytes((tmp_path / "nin-full" / "pytorch_model.bin").read_bytes())
    seen = []
    folder = download(
        "nin", weights_dir=weights, url=f"{base}/nin.pth", timeout=10, progress=lambda n, total: seen.append(total)
    )
    record = json.loads((folder / "weights.json").read_text())
    assert record["sha256"] == hashlib.sha256((served / "nin.pth").read_bytes()).hexdigest()
    assert seen and seen[0] == (served / "nin.pth").stat().st_size
    assert resolve_backbone("nin", weights_dir=weights).architecture == "nin"

    (served / "nin.pth").write_bytes((tmp_path / "vgg" / "pytorch_model.bin").read_bytes())  # wrong model
    with pytest.raises(BackboneError, match=r"missing .*unexpected"):
        download("nin", weights_dir=tmp_path / "w2", url=f"{base}/nin.pth", timeout=10)
    with pytest.raises(BackboneError, match=r"cannot download nin: .*timeout 10 s"):
        download("nin", weights_dir=tmp_path / "w3", url=f"{base}/missing.pth", timeout=10)


# --- optimisation ------------------------------------------------------------------------------


@pytest.mark.parametrize("architecture", ["vgg19", "nin"])
@pytest.mark.parametrize("optimiser", ["lbfgs", "adam"])
def test_style_transfer_lowers_the_style_loss_and_stays_finite(backbones, tmp_path, architecture, optimiser) -> None:
    import torch.nn.functional as F

    from generation.backbone_catalog import STYLE_DEFAULTS
    from generation.style_transfer import gram, style_transfer

    torch.set_num_threads(1)
    network = load_backbone(resolve_backbone(str(backbones[architecture]), weights_dir=tmp_path))
    generator = torch.Generator().manual_seed(0)
    content, style = torch.rand(1, 3, 64, 64, generator=generator), torch.rand(1, 3, 64, 64, generator=generator) ** 3
    params = {
        **STYLE_DEFAULTS[architecture],
        "tv_weight": 1e-3,
        "optimiser": optimiser,
        "learning_rate": 0.02,
        "iterations": 20,
        "init": "content",
        "seed": 0,
        "size": 64,
    }
    layers = params["style_layers"]
    targets = {k: gram(v) for k, v in network.activations(style, layers).items()}

    def style_loss(x: torch.Tensor) -> float:
        found = network.activations(x, layers)
        return sum(float(F.mse_loss(gram(found[k]), targets[k])) for k in layers)

    losses = {}
    style_transfer(
        network,
        content=content,
        style=style,
        params=params,
        snapshots=[1, 20],
        on_snapshot=lambda i, x: losses.__setitem__(i, style_loss(x)),
    )
    assert np.isfinite(losses[20]) and losses[20] < 0.2 * style_loss(content)


def test_deepdream_raises_its_objective(backbones, tmp_path) -> None:
    from generation.deepdream import deepdream, objective

    torch.set_num_threads(1)
    network = load_backbone(resolve_backbone(str(backbones["googlenet"]), weights_dir=tmp_path))
    base = torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # random ReLU nets have dead channels, whose gradient is zero: pick a live one
        live_channel = int(network.activations(base, ["inception3b"])["inception3b"].mean(dim=(0, 2, 3)).argmax())
    for objective_params in (
        {"objective": "activation", "layer": "inception4c"},
        {"objective": "channel", "layer": "inception3b", "channel": live_channel},
        {"objective": "class", "layer": "fc", "class": 207},
    ):
        params = {
            **objective_params,
            "octaves": 2,
            "octave_scale": 1.4,
            "iterations": 5,
            "step_size": 0.01,
            "jitter": 4,
            "seed": 0,
        }
        dreamed = deepdream(network, base=base, params=params)
        assert dreamed.shape == base.shape and float(dreamed.min()) >= 0 and float(dreamed.max()) <= 1
        with torch.no_grad():
            assert float(objective(network, dreamed, params)) > float(objective(network, base, params))
    with pytest.raises(ValueError, match="channel 9999 is outside"):
        deepdream(
            network, base=base, params={**params, "objective": "channel", "layer": "inception3b", "channel": 9999}
        )


# --- spec ----------------------------------------------------------------------------------------


def _spec_with(tmp_path: Path, model: Path, condition: dict) -> Path:
    write_image(tmp_path / "img" / "content.png", 1)
    write_image(tmp_path / "img" / "style.png", 2)
    return write_spec(tmp_path / "spec.yaml", model, classes=[1], seeds=1, conditions=[{"name": "baseline"}, condition])


@pytest.mark.parametrize(
    ("condition", "key", "fragment"),
    [
        (
            {"style_transfer": {"backbone": "vgg19", "content": "img/content.png"}},
            "conditions[1].style_transfer.style",
            "missing",
        ),
        (
            {"style_transfer": {"backbone": "vgg19", "content": "img/nope.png", "style": "img/style.png"}},
            "conditions[1].style_transfer.content",
            "no image file",
        ),
        (
            {
                "style_transfer": {
                    "backbone": "vgg19",
                    "content": "img/content.png",
                    "style": "img/style.png",
                    "optimiser": "sgd",
                }
            },
            "conditions[1].style_transfer.optimiser",
            "lbfgs, adam",
        ),
        (
            {
                "style_transfer": {
                    "backbone": "vgg19",
                    "content": "img/content.png",
                    "style": "img/style.png",
                    "iterations": 10,
                    "snapshots": [5, 11],
                }
            },
            "conditions[1].style_transfer.snapshots[1]",
            "1..iterations",
        ),
        (
            {
                "style_transfer": {
                    "backbone": "vgg19",
                    "content": "img/content.png",
                    "style": "img/style.png",
                    "style_layers": ["relu9_9"],
                }
            },
            "conditions[1].style_transfer.style_layers",
            "no layer",
        ),
        (
            {
                "style_transfer": {
                    "backbone": "vgg19",
                    "content": "img/content.png",
                    "style": "img/style.png",
                    "learning_rate": 0.1,
                }
            },
            "conditions[1].style_transfer.learning_rate",
            "only for",
        ),
        (
            {
                "style_transfer": {
                    "backbone": "vgg19",
                    "content": "img/content.png",
                    "style": "img/style.png",
                    "tv_weigth": 1,
                }
            },
            "conditions[1].style_transfer.tv_weigth",
            "unknown key",
        ),
        (
            {"deepdream": {"backbone": "googlenet", "base": "img/content.png", "objective": "class", "layer": "conv1"}},
            "conditions[1].deepdream.layer",
            "logits",
        ),
        (
            {"deepdream": {"backbone": "googlenet", "base": "img/content.png", "objective": "channel"}},
            "conditions[1].deepdream.channel",
            "missing",
        ),
        (
            {"deepdream": {"backbone": "googlenet", "base": "img/content.png", "step_size": 0}},
            "conditions[1].deepdream.step_size",
            "> 0",
        ),
        (
            {
                "deepdream": {"backbone": "googlenet", "base": "img/content.png"},
                "perturbation": {"kind": "multiplicative"},
            },
            "conditions[1]",
            "one of perturbation",
        ),
    ],
)
def test_spec_errors_name_the_key(tmp_path, tiny_model, condition, key, fragment) -> None:
    spec = _spec_with(tmp_path, tiny_model, {"name": "x", **condition})
    with pytest.raises(SpecError) as error:
        load_spec(spec)
    assert error.value.key == key and fragment in str(error.value)


def test_identical_optimisation_conditions_are_refused(tmp_path, tiny_model) -> None:
    block = {"backbone": "vgg19", "content": "img/content.png", "style": "img/style.png"}
    spec = _spec_with(tmp_path, tiny_model, {"name": "a", "style_transfer": block})
    data = yaml.safe_load(spec.read_text())
    data["conditions"].append({"name": "b", "style_transfer": {**block, "snapshots": [3]}})
    spec.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError, match=r"conditions\[2\]: renders exactly the same images as condition 'a'"):
        load_spec(spec)


@pytest.mark.django_db
def test_plan_checks_backbone_and_conditions(tmp_path, tiny_model, backbones) -> None:
    spec = _spec_with(
        tmp_path,
        tiny_model,
        {"name": "d", "deepdream": {"backbone": str(backbones["googlenet"]), "base": {"condition": "nope"}}},
    )
    with pytest.raises(SpecError, match=r"conditions\[1\]\.deepdream\.base: condition 'nope'"):
        call_command("render_set", str(spec), stdout=io.StringIO())
    spec = _spec_with(
        tmp_path,
        tiny_model,
        {
            "name": "d",
            "style_transfer": {
                "backbone": str(backbones["googlenet"]),
                "content": "img/content.png",
                "style": "img/style.png",
            },
        },
    )
    with pytest.raises(SpecError, match=r"style_transfer\.backbone: style transfer runs on vgg19 or nin"):
        call_command("render_set", str(spec), stdout=io.StringIO())
    spec = _spec_with(
        tmp_path,
        tiny_model,
        {"name": "d", "style_transfer": {"backbone": "vgg19", "content": "img/content.png", "style": "img/style.png"}},
    )
    with pytest.raises(SpecError, match=r"backbone_weights download vgg19"):
        call_command("render_set", str(spec), stdout=io.StringIO())
    assert not StimulusSet.objects.exists()


# --- rendering -----------------------------------------------------------------------------------


def mixed_spec(tmp_path: Path, tiny_model: Path, backbones: dict[str, Path]) -> Path:
    write_image(tmp_path / "design" / "img" / "content.png", 1)
    write_image(tmp_path / "design" / "img" / "style.png", 2, size=(50, 50))
    data = {
        "name": "mixed",
        "model": str(tiny_model),
        "truncation": 0.4,
        "classes": [1, 207],
        "seeds": 1,
        "conditions": [
            {"name": "baseline"},
            {"name": "artistic", "perturbation": {"kind": "multiplicative", "epsilon": 0.5, "seed": 1}},
            {
                "name": "gatys-vgg",
                "style_transfer": {
                    "backbone": str(backbones["vgg19"]),
                    "content": "img/content.png",
                    "style": "img/style.png",
                    "iterations": 3,
                    "snapshots": [1],
                    "init": "noise",
                    "seed": 3,
                    "size": 64,
                },
            },
            {
                "name": "gatys-nin",
                "style_transfer": {
                    "backbone": str(backbones["nin"]),
                    "content": "img/content.png",
                    "style": "img/style.png",
                    "iterations": 2,
                    "optimiser": "adam",
                    "learning_rate": 0.05,
                    "size": 64,
                },
            },
            {
                "name": "dream-stimulus",
                "deepdream": {
                    "backbone": str(backbones["googlenet"]),
                    "base": {"condition": "artistic"},
                    "octaves": 2,
                    "iterations": 2,
                    "jitter": 4,
                    "seed": 5,
                },
            },
            {
                "name": "dream-file",
                "deepdream": {
                    "backbone": str(backbones["vgg19"]),
                    "base": "img/content.png",
                    "objective": "channel",
                    "layer": "relu3_1",
                    "channel": 2,
                    "octaves": 2,
                    "iterations": 2,
                    "size": 64,
                },
            },
        ],
    }
    path = tmp_path / "design" / "spec.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.django_db
def test_one_spec_renders_generator_style_transfer_and_deepdream(
    tmp_path, tiny_model, backbones, settings, admin_client
) -> None:
    spec_path = mixed_spec(tmp_path, tiny_model, backbones)
    spec = load_spec(spec_path)
    assert spec.image_count == 2 + 2 + 2 + 1 + 2 + 1
    out = io.StringIO()
    call_command("render_set", str(spec_path), "--out", str(tmp_path / "out"), stdout=out)
    assert "10 to render" in out.getvalue()
    stimuli = {s.recipe_id: s for s in Stimulus.objects.filter(stimulus_set__name="mixed")}
    assert len(stimuli) == 10
    by_condition: dict[str, list[Stimulus]] = {}
    for s in stimuli.values():
        by_condition.setdefault(s.condition, []).append(s)
        assert hashlib.sha256((settings.MEDIA_ROOT / s.image.name).read_bytes()).hexdigest() == s.sha256

    vgg = sorted(by_condition["gatys-vgg"], key=lambda s: s.labels["iteration"])
    assert [s.labels["iteration"] for s in vgg] == [1, 3]  # the snapshot and the final image, separate stimuli
    assert vgg[0].sha256 != vgg[1].sha256 and (vgg[0].width, vgg[0].height) == (64, 53)
    content_sha = hashlib.sha256((tmp_path / "design" / "img" / "content.png").read_bytes()).hexdigest()
    assert vgg[0].recipe["inputs"]["content"] == {"path": "img/content.png", "sha256": content_sha}
    assert vgg[0].recipe["kind"] == "style-transfer" and vgg[0].recipe["params"]["iterations"] == 1
    assert vgg[0].labels == {
        "kind": "style-transfer",
        "backbone": "vgg19",
        "iteration": 1,
        "content": "img/content.png",
        "style": "img/style.png",
    }
    assert OptimisationRecipe.from_dict(vgg[0].recipe).recipe_id == vgg[0].recipe_id

    dreams = by_condition["dream-stimulus"]
    assert sorted(s.class_index for s in dreams) == [1, 207] and {s.width for s in dreams} == {64}
    artistic = {s.class_index: s for s in by_condition["artistic"]}
    for dream in dreams:  # the base is the perturbed stimulus's recipe, re-rendered in memory
        assert dream.recipe["inputs"]["base"]["recipe"] == artistic[dream.class_index].recipe
        assert dream.sha256 != artistic[dream.class_index].sha256

    rows = list(csv.DictReader((tmp_path / "out" / "manifest.csv").open()))
    kinds = {row["condition"]: row["kind"] for row in rows}
    assert kinds == {
        "baseline": "baseline",
        "artistic": "multiplicative",
        "gatys-vgg": "style-transfer",
        "gatys-nin": "style-transfer",
        "dream-stimulus": "deepdream",
        "dream-file": "deepdream",
    }
    nin_row = next(row for row in rows if row["condition"] == "gatys-nin")
    assert json.loads(nin_row["parameters"])["optimiser"] == "adam"
    recipes = json.loads((tmp_path / "out" / "recipes.json").read_text())
    assert {r["stimulus_id"]: r["recipe_id"] for r in rows} == {
        k: hashlib.sha256(json.dumps(v, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        for k, v in recipes.items()
    }

    again = io.StringIO()
    call_command("render_set", str(spec_path), stdout=again)
    assert "0 to render" in again.getvalue()

    stimulus_set = StimulusSet.objects.get(name="mixed")
    assert stimulus_set.untrained  # random backbones make a demo set, like a random generator
    sheet = admin_client.get(f"/admin/generation/stimulusset/{stimulus_set.pk}/contact-sheet/")
    assert sheet.status_code == 200
    page = sheet.content.decode()
    assert "gatys-vgg" in page and "iteration 1" in page and "style-transfer" in page


@pytest.mark.slow
@pytest.mark.django_db
def test_optimisation_bytes_equal_across_processes(tmp_path, tiny_model, backbones, settings) -> None:
    """A snapshot (iteration 1 of a 3-iteration run) re-rendered alone in two fresh processes: same bytes."""
    spec_path = mixed_spec(tmp_path, tiny_model, backbones)
    call_command("render_set", str(spec_path), stdout=io.StringIO())
    snapshot = Stimulus.objects.get(condition="gatys-vgg", recipe__params__iterations=1)
    dream = Stimulus.objects.filter(condition="dream-stimulus").first()
    cases = [(snapshot, backbones["vgg19"]), (dream, backbones["googlenet"])]
    for stimulus, backbone in cases:
        (tmp_path / "recipe.json").write_text(json.dumps(stimulus.recipe))
        for n in range(2):
            out = tmp_path / f"{stimulus.condition}-{n}.png"
            result = subprocess.run(
                [
                    sys.executable,
                    "manage.py",
                    "render_recipe",
                    str(tmp_path / "recipe.json"),
                    "--out",
                    str(out),
                    "--backbone",
                    str(backbone),
                    "--model",
                    str(tiny_model),
                ],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=300,
                env=subprocess_env(
                    TORCH_NUM_THREADS="1",
                    CELERY_BROKER_URL="",
                    MEDIA_ROOT=str(settings.MEDIA_ROOT),
                    DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
                    VAR_DIR=str(tmp_path / "var"),
                ),
            )
            assert result.returncode == 0, result.stderr
            assert hashlib.sha256(out.read_bytes()).hexdigest() == stimulus.sha256


@pytest.fixture
def gpu_queue(settings) -> str:
    """A GPU queue name, set before the worker fixture reads it (so the worker consumes it)."""
    settings.CELERY_GPU_QUEUE = "gpu-optimisations-test"
    return settings.CELERY_GPU_QUEUE


@pytest.mark.broker
def test_optimisation_jobs_run_on_the_gpu_queue_worker(
    tmp_path, tiny_model, backbones, gpu_queue, celery_worker_process
) -> None:
    from generation.models import RenderJob

    spec_path = mixed_spec(tmp_path, tiny_model, backbones)
    out = io.StringIO()
    call_command("render_set", str(spec_path), stdout=out)
    assert "on Celery workers" in out.getvalue()
    stimuli = Stimulus.objects.filter(stimulus_set__name="mixed")
    assert stimuli.count() == 10
    assert {s.provenance["pid"] for s in stimuli} == {celery_worker_process.pid}
    assert all(j.status == RenderJob.Status.DONE and j.celery_task_id for j in RenderJob.objects.all())


@pytest.mark.django_db
def test_random_backbones_mark_the_set_untrained_even_with_real_generator_weights(
    tmp_path, tiny_model, backbones
) -> None:
    import shutil

    from generation.services import set_plan

    generator = tmp_path / "trained-generator"
    shutil.copytree(tiny_model, generator)
    record = json.loads((generator / "weights.json").read_text())
    (generator / "weights.json").write_text(json.dumps({**record, "source": "download"}))
    spec_path = mixed_spec(tmp_path, generator, backbones)
    plan = set_plan(spec=load_spec(spec_path))
    assert not plan.info.untrained
    assert plan.untrained and sorted(plan.untrained_backbones) == ["googlenet", "nin", "vgg19", "vgg19"]


@pytest.mark.slow
@pytest.mark.django_db
def test_example_spec_renders_on_random_weights(tmp_path, monkeypatch) -> None:
    """examples/optimisations.yaml with the commands in its header, as on a clean clone."""
    from generation.weights import make_random as make_random_generator

    monkeypatch.chdir(tmp_path)
    make_random_generator(tmp_path / "var/weights/tiny", preset="tiny", seed=0)
    for architecture in ("vgg19", "nin", "googlenet"):
        call_command(
            "backbone_weights",
            "make-random",
            f"var/weights/{architecture}-tiny",
            "--architecture",
            architecture,
            stdout=io.StringIO(),
        )
    spec = ROOT / "examples" / "optimisations.yaml"
    assert load_spec(spec).image_count == 11
    call_command("render_set", str(spec), "--out", str(tmp_path / "out"), stdout=io.StringIO())
    stimuli = Stimulus.objects.filter(stimulus_set__name="example-optimisations")
    assert stimuli.count() == 11
    assert sorted(s.labels["iteration"] for s in stimuli if s.condition == "gatys-vgg19") == [5, 10, 20]
    assert {(s.width, s.height) for s in stimuli if s.condition.startswith("gatys")} == {(128, 128)}


@pytest.mark.django_db
def test_content_from_stimuli_times_styles_times_snapshots(tmp_path, tiny_model, backbones) -> None:
    """Planning only: {condition: X} expands to every stimulus of X, crossed with each style and snapshot."""
    from generation.services import set_plan

    write_image(tmp_path / "a.png", 1)
    write_image(tmp_path / "b.png", 2)
    spec_path = write_spec(
        tmp_path / "spec.yaml",
        tiny_model,
        classes=[1, 207],
        seeds=1,
        conditions=[
            {"name": "baseline"},
            {
                "name": "st",
                "style_transfer": {
                    "backbone": str(backbones["nin"]),
                    "content": {"condition": "baseline"},
                    "style": ["a.png", "b.png"],
                    "iterations": 4,
                    "snapshots": [2],
                },
            },
        ],
    )
    spec = load_spec(spec_path)
    assert spec.image_count == 2 + 2 * 2 * 2
    plan = set_plan(spec=spec)
    items = [i for i in plan.items if i.condition == "st"]
    assert len(items) == 8 and len({i.recipe.recipe_id for i in items}) == 8
    assert {i.recipe.inputs["content"]["recipe"]["class_index"] for i in items} == {1, 207}
    assert {i.recipe.inputs["style"]["path"] for i in items} == {"a.png", "b.png"}
    assert {i.recipe.params["iterations"] for i in items} == {2, 4}
    assert items[0].recipe.params["content_layers"] == ["relu0", "relu3", "relu7", "relu12"]  # NIN defaults
    assert {f["sha256"] for f in plan.inputs} == {
        hashlib.sha256((tmp_path / n).read_bytes()).hexdigest() for n in ("a.png", "b.png")
    }


def test_backbone_weights_list_says_what_is_installed(tmp_path, settings) -> None:
    settings.WEIGHTS_DIR = tmp_path / "weights"
    make_random(settings.WEIGHTS_DIR / "nin", architecture="nin", preset="tiny", seed=0)
    out = io.StringIO()
    call_command("backbone_weights", "list", stdout=out)
    text = out.getvalue()
    assert "nin" in text and "untrained" in text
    assert "not installed: backbone 'vgg19' is not in" in text
