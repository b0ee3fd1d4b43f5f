"""Fixtures: a tiny random BigGAN in the from_pretrained folder format, isolated media/weights dirs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from generation.weights import load_generator, make_random, model_info


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """~0.9M-parameter, 64-px BigGAN-deep with properly initialised random weights."""
    folder = tmp_path_factory.mktemp("weights") / "tiny"
    make_random(folder, preset="tiny", seed=0)
    return folder


@pytest.fixture(scope="session")
def tiny_adapter(tiny_model):
    import torch

    torch.set_num_threads(1)
    return load_generator(model_info(tiny_model))


@pytest.fixture(autouse=True)
def isolated_dirs(request, settings, tmp_path):
    """Media and weights under tmp; tasks run in-process unless the test needs the real broker."""
    from config.celery import app

    settings.MEDIA_ROOT = tmp_path / "media"
    settings.WEIGHTS_DIR = tmp_path / "weights"
    settings.TORCH_NUM_THREADS = 1
    previous = app.conf.task_always_eager
    if request.node.get_closest_marker("broker") is None:
        app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


def write_spec(path: Path, model: Path | str, **overrides) -> Path:
    spec = {
        "name": "test-set",
        "model": str(model),
        "truncation": 0.4,
        "classes": [1, 207, "volcano"],
        "seeds": 2,
        "conditions": [
            {"name": "baseline"},
            {
                "name": "artistic-0.5",
                "perturbation": {"kind": "multiplicative", "epsilon": 0.5, "targets": "all", "seed": 1, "draws": 1},
            },
            {
                "name": "artistic-1.0",
                "perturbation": {"kind": "multiplicative", "epsilon": 1.0, "targets": "convs", "seed": 1, "draws": 2},
            },
            {
                "name": "symbolic",
                "perturbation": {"kind": "semantic", "mode": "embedding-noise", "epsilon": 1.0, "seed": 2},
            },
        ],
    }
    spec.update(overrides)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path
