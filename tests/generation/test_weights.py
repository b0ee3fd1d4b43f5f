"""Model folders: random models load with the package's own loader, partial files are refused, names stay offline."""

from __future__ import annotations

import functools
import http.server
import json
import subprocess
import sys
import threading

import pytest
import torch
from django.core.management import call_command

from generation.generators import build_biggan
from generation.weights import (
    PRESETS,
    WeightsError,
    download,
    load_generator,
    model_info,
    random_biggan,
    resolve_model_folder,
)
from tests.conftest import ROOT, subprocess_env
from tests.generation.conftest import write_spec


def test_make_random_writes_the_from_pretrained_folder_format(tmp_path) -> None:
    from pytorch_pretrained_biggan import BigGAN

    folder = tmp_path / "tiny"
    call_command("biggan_weights", "make-random", str(folder), "--preset", "tiny", "--seed", "3")
    assert {p.name for p in folder.iterdir()} >= {"config.json", "pytorch_model.bin", "weights.json"}
    model = BigGAN.from_pretrained(str(folder)).eval()  # the package's own loader accepts it
    params = sum(p.numel() for p in model.parameters())
    assert 0.5e6 < params < 1.5e6
    z = torch.zeros(2, 128)
    y = torch.zeros(2, 1000)
    y[:, 207] = 1
    with torch.no_grad():
        out = model(z, y, 0.4)
    assert out.shape == (2, 3, 64, 64)
    assert torch.isfinite(out).all() and out.std() > 0.01
    assert json.loads((folder / "weights.json").read_text())["source"] == "random"


@pytest.mark.parametrize("preset", ["128", "256", "512"])
def test_presets_have_the_released_architectures(preset) -> None:
    expected = {"128": (50.4e6, 11), "256": (55.9e6, 13), "512": (56.2e6, 15)}[preset]
    from generation.weights import _CONFIG_DEFAULTS

    model = build_biggan({**_CONFIG_DEFAULTS, **PRESETS[preset]}, init=False)
    assert abs(sum(p.numel() for p in model.parameters()) - expected[0]) < 0.05e6
    assert len(model.generator.layers) == expected[1]


def test_random_model_is_finite_in_eval_mode() -> None:
    _, model = random_biggan("tiny", seed=1)
    assert not model.training
    assert torch.equal(model.generator.bn.weight, torch.ones_like(model.generator.bn.weight))


def _save_state(folder, state) -> None:
    torch.save(state, folder / "pytorch_model.bin")
    (folder / "weights.json").unlink()


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("drop", "1 missing (generator.conv_to_rgb.weight_orig)"),
        ("extra", "1 unexpected (generator.surprise)"),
        ("shape", "wrong shape (embeddings.weight (128, 10) ≠ (128, 1000))"),
    ],
)
def test_partial_or_mismatched_weights_are_refused(tmp_path, tiny_model, damage, expected) -> None:
    import shutil

    folder = tmp_path / "damaged"
    shutil.copytree(tiny_model, folder)
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    if damage == "drop":
        del state["generator.conv_to_rgb.weight_orig"]
    elif damage == "extra":
        state["generator.surprise"] = torch.zeros(1)
    else:
        state["embeddings.weight"] = torch.zeros(128, 10)
    _save_state(folder, state)
    with pytest.raises(WeightsError) as error:
        load_generator(model_info(folder))
    assert expected in str(error.value)
    assert "refusing a partial/mismatched model" in str(error.value)


def test_changed_weights_file_is_detected_by_its_record(tmp_path, tiny_model) -> None:
    import shutil

    folder = tmp_path / "changed"
    shutil.copytree(tiny_model, folder)
    with (folder / "pytorch_model.bin").open("ab") as handle:
        handle.write(b"x")
    with pytest.raises(WeightsError, match="does not match the sha256 recorded"):
        model_info(folder)


def test_missing_pretrained_name_gives_one_line_hint(tmp_path) -> None:
    with pytest.raises(WeightsError) as error:
        resolve_model_folder("biggan-deep-256", weights_dir=tmp_path)
    assert "python manage.py biggan_weights download biggan-deep-256" in str(error.value)
    assert "\n" not in str(error.value)


def test_render_set_with_missing_weights_prints_one_line_and_never_downloads(tmp_path) -> None:
    spec = write_spec(tmp_path / "spec.yaml", "biggan-deep-256")
    result = subprocess.run(
        [sys.executable, "manage.py", "render_set", str(spec)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=subprocess_env(
            WEIGHTS_DIR=str(tmp_path / "weights"),
            VAR_DIR=str(tmp_path / "var"),
            CELERY_BROKER_URL="",
            DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
            HTTPS_PROXY="http://127.0.0.1:1",
            HTTP_PROXY="http://127.0.0.1:1",
        ),
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "biggan_weights download biggan-deep-256" in lines[0]


def test_download_records_sha256_and_loads(tmp_path, tiny_model) -> None:
    served = tmp_path / "served"
    served.mkdir()
    (served / "biggan-deep-256-config.json").write_bytes((tiny_model / "config.json").read_bytes())
    (served / "biggan-deep-256-pytorch_model.bin").write_bytes((tiny_model / "pytorch_model.bin").read_bytes())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    seen = []
    try:
        folder = download(
            "biggan-deep-256",
            weights_dir=tmp_path / "weights",
            timeout=5,
            base_url=f"http://127.0.0.1:{server.server_port}",
            progress=lambda n, t: seen.append(n),
        )
    finally:
        server.shutdown()
    record = json.loads((folder / "weights.json").read_text())
    assert record["source"] == "download"
    assert record["sha256"] == model_info(folder).sha256
    assert sum(seen) == (folder / "pytorch_model.bin").stat().st_size
    assert resolve_model_folder("biggan-deep-256", weights_dir=tmp_path / "weights") == folder.resolve()
    assert not list(folder.glob("*.part"))


def test_download_failure_is_one_clear_line(tmp_path) -> None:
    with pytest.raises(WeightsError, match="cannot download biggan-deep-128") as error:
        download("biggan-deep-128", weights_dir=tmp_path, timeout=2, base_url="http://127.0.0.1:1")
    assert "\n" not in str(error.value)


def test_truncation_statistics_are_looked_up_correctly(tiny_adapter) -> None:
    bn = tiny_adapter.model.generator.layers[0].bn_0
    saved = bn.running_means.clone()
    try:
        bn.running_means.copy_(torch.arange(51, dtype=torch.float32)[:, None].expand_as(bn.running_means))
        # 0.58 / 0.02 = 28.999999999999996: the package would use row 28 (0.56); we use row 29.
        assert bn._stats(0.58)[0][0].item() == 29.0
        assert bn._stats(0.4)[0][0].item() == 20.0
        assert bn._stats(0.41)[0][0].item() == pytest.approx(20.5)
        assert bn._stats(1.0)[0][0].item() == 50.0
    finally:
        bn.running_means.copy_(saved)
