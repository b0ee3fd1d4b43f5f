"""The example study rates the all-kinds set end to end: render every kind on random weights, load
examples/study-all-kinds.yaml over it, run bots, export, and run `python -m analysis report` on the export."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from django.core.cache import cache
from django.core.management import call_command

from analysis.schema import EXPORT_COLUMNS
from tests.conftest import ROOT, subprocess_env

EXAMPLE = ROOT / "examples" / "all-kinds.yaml"
STUDY = ROOT / "examples" / "study-all-kinds.yaml"


def all_kinds_spec(tmp_path: Path, tiny_model: Path) -> Path:
    """examples/all-kinds.yaml as is, with the weights made here and its image paths made absolute."""
    spec = yaml.safe_load(EXAMPLE.read_text())
    spec["model"] = str(tiny_model)
    for condition in spec["conditions"]:
        block = condition.get("style_transfer") or condition.get("deepdream") or {}
        if "backbone" in block:
            architecture = Path(block["backbone"]).name.split("-")[0]
            folder = tmp_path / f"{architecture}-tiny"
            if not folder.exists():
                call_command(
                    "backbone_weights", "make-random", str(folder), "--architecture", architecture, stdout=io.StringIO()
                )
            block["backbone"] = str(folder)
        for role in ("content", "style"):
            if role in block:
                block[role] = str(EXAMPLE.parent / block[role])
    path = tmp_path / "all-kinds.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def rows_of(frame: pd.DataFrame, condition: str) -> pd.DataFrame:
    rows = frame[frame["condition"] == condition]
    assert len(rows), f"{condition} was never rated"
    return rows


def recipes(rows: pd.DataFrame) -> list[dict]:
    return [json.loads(text) for text in rows["recipe"].drop_duplicates()]


@pytest.mark.django_db
def test_the_example_study_rates_every_kind_and_the_report_runs(tmp_path, tiny_model) -> None:
    spec_path = all_kinds_spec(tmp_path, tiny_model)
    spec = yaml.safe_load(spec_path.read_text())
    call_command("render_set", str(spec_path), stdout=io.StringIO())
    study = yaml.safe_load(STUDY.read_text())
    assert study["stimulus_sets"] == [spec["name"]]
    assert study["conditions"] == [c["name"] for c in spec["conditions"]]  # every condition of the set is rated

    cache.clear()  # rate-limit counters of earlier tests
    call_command("load_study", str(STUDY), stdout=io.StringIO())
    call_command("run_bots", study["slug"], "--participants", "12", "--seed", "1", stdout=io.StringIO())
    csv = tmp_path / "ratings.csv"
    call_command("export_ratings", study["slug"], "--out", str(csv), stdout=io.StringIO())

    frame = pd.read_csv(csv, keep_default_na=False, na_values=[""])
    assert tuple(frame.columns) == EXPORT_COLUMNS
    rated = frame[~frame["is_practice"] & ~frame["is_attention_check"] & frame["response"].notna()]
    completed = rated[rated["participant_status"] == "completed"]
    assert set(completed["condition"]) == set(study["conditions"])
    assert set(completed["dimension"]) == {"artistry", "symbolism"}

    def one(condition: str, column: str):
        values = rows_of(rated, condition)[column].drop_duplicates()
        assert len(values) == 1, (condition, column, list(values))
        value = values.iloc[0]
        return "" if pd.isna(value) else value

    generator = {c["name"] for c in spec["conditions"] if not {"style_transfer", "deepdream"} & set(c)}
    for condition in generator:
        assert one(condition, "model") == "tiny" and one(condition, "truncation") == 0.4, condition
    assert [one("baseline", c) for c in ("perturbation_kind", "perturbation_mode", "latent", "epsilon", "network")] == [
        "none",
        "",
        "seed",
        0.0,
        "baseline",
    ]

    # multiplicative: the spectral-norm policy is the mode, and in every recipe
    for condition, policy in (("artistic-frozen", "frozen"), ("artistic-renormalise", "renormalise")):
        assert [one(condition, c) for c in ("perturbation_kind", "perturbation_mode", "latent", "epsilon")] == [
            "multiplicative",
            policy,
            "seed",
            0.5,
        ]
        assert one(condition, "network") == f"{condition}/draw-0/seed-1"
        assert {r["perturbation"]["spectral_norm"] for r in recipes(rows_of(rated, condition))} == {policy}

    for condition, mode, epsilon in (
        ("symbolic-embedding-noise", "embedding-noise", 1.0),
        ("symbolic-class-mix", "class-mix", 0.5),
        ("symbolic-random-embedding", "random-embedding", 0.5),
    ):
        assert [one(condition, c) for c in ("perturbation_kind", "perturbation_mode", "epsilon")] == [
            "semantic",
            mode,
            epsilon,
        ]

    # arithmetic: no seed, the terms in the recipe
    assert [one("arithmetic", c) for c in ("perturbation_kind", "latent", "epsilon")] == ["none", "arithmetic", 0.0]
    assert rows_of(rated, "arithmetic")["seed"].isna().all()
    assert {json.dumps(r["arithmetic"], sort_keys=True) for r in recipes(rows_of(rated, "arithmetic"))} == {
        json.dumps({"a": [10, 11, 12], "b": [13, 14, 15], "c": [16, 17, 18]}, sort_keys=True)
    }

    # a walk through a perturbed network: its frames' t, the walk's end, the perturbation with its policy
    walk = rows_of(rated, "walk-artistic")
    assert [one("walk-artistic", c) for c in ("perturbation_kind", "perturbation_mode", "latent", "epsilon")] == [
        "multiplicative",
        "renormalise",
        "walk",
        0.5,
    ]
    walk_recipes = recipes(walk)
    assert all(r["walk"]["to_seed"] == 5 and r["walk"]["to_class"] == 207 for r in walk_recipes)
    assert {r["walk"]["t"] for r in walk_recipes} <= {0.0, 0.25, 0.5, 0.75, 1.0}
    assert len({r["walk"]["t"] for r in walk_recipes}) > 1  # several frames were rated
    assert all(r["perturbation"]["targets"] == ["convs"] for r in walk_recipes)

    # style transfer: no generator latent or ε; the backbone is the model, the iteration (snapshot) is in recipe
    for condition, backbone, iterations in (("gatys-vgg19", "vgg19-tiny", {3, 6, 10}), ("gatys-nin", "nin-tiny", {10})):
        assert [one(condition, c) for c in ("perturbation_kind", "perturbation_mode", "latent", "epsilon")] == [
            "style-transfer",
            "",
            "",
            "",
        ]
        assert one(condition, "model") == backbone and one(condition, "network") == condition
        rows = rows_of(rated, condition)
        assert rows["class_index"].isna().all() and rows["truncation"].isna().all()
        found = recipes(rows)
        assert {r["backbone"]["architecture"] for r in found} == {backbone.split("-")[0]}
        assert {r["params"]["iterations"] for r in found} <= iterations
        assert all(set(r["inputs"]) == {"content", "style"} for r in found)
    assert {r["params"]["optimiser"] for r in recipes(rows_of(rated, "gatys-nin"))} == {"adam"}
    vgg_iterations = {r["params"]["iterations"] for r in recipes(rows_of(rated, "gatys-vgg19"))}
    assert len(vgg_iterations) > 1  # snapshots are stimuli of their own, told apart by their iteration

    # DeepDream of the baseline stimuli: the backbone, layer and objective, and the base stimulus's recipe
    assert [one("dream-baseline", c) for c in ("perturbation_kind", "latent", "epsilon", "model")] == [
        "deepdream",
        "",
        "",
        "googlenet-tiny",
    ]
    for recipe in recipes(rows_of(rated, "dream-baseline")):
        assert (recipe["params"]["layer"], recipe["params"]["objective"]) == ("inception4c", "activation")
        base = recipe["inputs"]["base"]["recipe"]
        assert base["perturbation"] is None and base["model"]["id"] == "tiny"
    assert rows_of(rated, "dream-baseline")["class_index"].notna().all()  # the class of the dreamt stimulus

    out = tmp_path / "report"
    result = subprocess.run(
        [sys.executable, "-m", "analysis", "report", str(csv), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=subprocess_env(OMP_NUM_THREADS="1"),
    )
    assert result.returncode == 0, result.stderr
    html = (out / "report.html").read_text()
    others = sorted(set(study["conditions"]) - {"artistic-frozen", "baseline"})
    # one multiplicative mode with the baseline; the other policy, the walk and every other kind are left out
    assert "the dose models use artistic-frozen, baseline (" in html
    assert f"{', '.join(others)} are other kinds of manipulation" in html
    fitted = pd.read_csv(out / "fixed_effects.csv")
    assert {"main", "dose_linear", "class"} <= set(fitted["model"])
    skipped = pd.read_csv(out / "skipped.csv")["sentence"]
    assert not skipped.str.contains("class model").any(), list(skipped)  # fitted on the images that have a class
    assert "the class model leaves out gatys-nin, gatys-vgg19 (images without an image class)" in html
