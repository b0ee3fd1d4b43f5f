"""One schema for the ratings table: the loader reads what the export writes, and the docs say what both mean."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import patsy
import pytest

from analysis import RatingsError, fit_ratings, load_ratings
from analysis.reliability import krippendorff_alpha
from analysis.schema import (
    DESCRIPTOR_COLUMNS,
    EPSILON_MEANING,
    EXPORT_COLUMNS,
    REQUIRED_COLUMNS,
    SCHEMA_VERSION,
    describe_columns,
    recipe_columns,
)
from analysis.simulation import CrossedDesign, simulate_ratings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def ratings() -> pd.DataFrame:
    return simulate_ratings(design=CrossedDesign(10, 20, 10), scale=(1, 7), seed=1)


def test_schema_module_is_light_enough_for_the_web_process():
    code = (
        "import sys, analysis.schema; heavy = {'numpy', 'pandas', 'scipy', 'patsy'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_docs_table_is_the_schema():
    assert describe_columns() in (ROOT / "docs" / "analysis.md").read_text(encoding="utf-8")
    assert set(REQUIRED_COLUMNS) <= set(EXPORT_COLUMNS) and set(DESCRIPTOR_COLUMNS) <= set(EXPORT_COLUMNS)


def test_descriptor_names_are_what_generation_computes():
    from generation.descriptors import describe

    rgb = np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    assert tuple(describe(rgb)) == DESCRIPTOR_COLUMNS


def test_recipe_columns_per_kind():
    model = {"id": "biggan-deep-256", "sha256": "x", "architecture": "biggan-deep"}
    base = recipe_columns(condition="baseline", epsilon=None, draw=0, recipe={"model": model, "truncation": 0.4})
    assert base | {"recipe": ""} == {
        "perturbation_kind": "none",
        "perturbation_mode": "",
        "latent": "seed",
        "epsilon": 0.0,
        "network": "baseline",
        "model": "biggan-deep-256",
        "truncation": 0.4,
        "recipe": "",
    }
    symbolic = recipe_columns(
        condition="symbolic",
        epsilon=1.0,
        draw=1,
        recipe={
            "model": model,
            "perturbation": {"kind": "semantic", "mode": "embedding-noise", "epsilon": 1.0, "seed": 2},
        },
    )
    assert (symbolic["perturbation_kind"], symbolic["perturbation_mode"], symbolic["network"]) == (
        "semantic",
        "embedding-noise",
        "symbolic/draw-1/seed-2",
    )
    imported = recipe_columns(condition="photo", epsilon=None, draw=None, recipe={"kind": "imported"})
    assert imported["perturbation_kind"] == "imported" and imported["epsilon"] is None
    assert imported["network"] == "photo"
    style = recipe_columns(
        condition="gatys",
        epsilon=None,
        draw=0,
        recipe={"kind": "style-transfer", "backbone": {"id": "vgg19"}, "parameters": {"style_weight": 1e6}},
    )
    assert (style["perturbation_kind"], style["model"], style["network"]) == ("style-transfer", "vgg19", "gatys")
    # A later kind's parameters (style transfer, say) travel in the recipe JSON untouched.
    later = recipe_columns(
        condition="style",
        epsilon=None,
        draw=0,
        recipe={"perturbation": {"kind": "style-transfer", "style_weight": 1e6, "backbone": "vgg19"}},
    )
    assert later["perturbation_kind"] == "style-transfer" and '"style_weight":1000000.0' in later["recipe"]


def test_legacy_status_column_is_read_as_participant_status(ratings):
    loaded = load_ratings(ratings.assign(status="in_progress"))
    assert "participant_status" in loaded.columns and "status" not in loaded.columns


def test_a_newer_schema_is_refused_in_one_line(ratings):
    with pytest.raises(RatingsError, match=f"schema {SCHEMA_VERSION + 1}; this analysis reads schema ≤"):
        load_ratings(ratings.assign(schema_version=SCHEMA_VERSION + 1))


def test_ids_stay_text_and_missing_ids_stay_missing(ratings, tmp_path):
    df = ratings.astype({"participant": object})
    df.loc[df.index[:10], "participant"] = "007"
    df.loc[df.index[10:12], "participant"] = np.nan
    path = tmp_path / "r.csv"
    df.to_csv(path, index=False)
    loaded = load_ratings(path)
    assert (loaded["participant"] == "007").sum() == 10
    assert loaded["participant"].isna().sum() == 2 and "nan" not in set(loaded["participant"].dropna())


def test_standardize_uses_the_sample_sd_like_r_scale(ratings):
    data = ratings.assign(x=np.arange(len(ratings)) % 7 * 1.5)
    fit = fit_ratings(data, "response ~ standardize(x) + (1 | participant) + (1 | stimulus)", dimension="artistry")
    z = (data["x"] - data["x"].mean()) / data["x"].std(ddof=1)
    by_hand = fit_ratings(data.assign(z=z), "response ~ z + (1 | participant) + (1 | stimulus)", dimension="artistry")
    assert fit.params["standardize(x)"] == pytest.approx(by_hand.params["z"], rel=1e-10)
    # patsy's built-in would divide by the population SD (ddof 0): a different coefficient.
    (X,) = patsy.dmatrices("response ~ standardize(x)", data)[1:]
    assert not np.allclose(np.asarray(X)[:, 1], z)


def _dense_alpha(df: pd.DataFrame, level: str) -> float:
    """Krippendorff's coincidence-matrix definition, quadratic in the distinct values (the test oracle)."""
    df = df.dropna().drop_duplicates(["stimulus", "participant"])
    df = df[df.groupby("stimulus")["response"].transform("size") >= 2]
    levels = np.sort(df["response"].unique())
    counts = pd.crosstab(df["stimulus"], df["response"]).reindex(columns=levels, fill_value=0).to_numpy(float)
    m = counts.sum(1)
    o = (counts / (m - 1)[:, None]).T @ counts - np.diag((counts / (m - 1)[:, None]).sum(0))
    n_c = o.sum(1)
    if level == "interval":
        delta = (levels[:, None] - levels[None, :]) ** 2
    else:
        cum = np.cumsum(n_c)
        k = len(levels)
        lo, hi = np.minimum.outer(np.arange(k), np.arange(k)), np.maximum.outer(np.arange(k), np.arange(k))
        delta = (cum[hi] - np.where(lo > 0, cum[lo - 1], 0.0) - (n_c[lo] + n_c[hi]) / 2) ** 2
    return 1 - (o * delta).sum() / ((np.outer(n_c, n_c) * delta).sum() / (n_c.sum() - 1))


@pytest.mark.parametrize("level", ["interval", "ordinal"])
def test_krippendorff_alpha_equals_the_coincidence_definition_on_a_slider(level):
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"stimulus": rng.integers(0, 40, 600), "participant": rng.integers(0, 30, 600)})
    df["response"] = np.round(rng.uniform(0, 100, 600) + df["stimulus"], 1)  # hundreds of distinct values
    assert krippendorff_alpha(df, level=level) == pytest.approx(_dense_alpha(df, level), rel=1e-9)


def test_krippendorff_alpha_memory_is_linear_in_the_ratings():
    rng = np.random.default_rng(4)
    n = 60_000
    df = pd.DataFrame(
        {
            "stimulus": rng.integers(0, 600, n),
            "participant": rng.integers(0, 1000, n),
            "response": rng.uniform(0, 100, n).round(2),
        }
    )  # ~10,000 distinct values
    assert df["response"].nunique() > 9000
    tracemalloc.start()
    alpha = krippendorff_alpha(df, level="ordinal")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert np.isfinite(alpha) and peak < 100 * 2**20  # the dense version needed 3 x 10,000² doubles (2.4 GB)


def test_recipe_columns_for_walks_arithmetic_and_spectral_norm_policies():
    walk = recipe_columns(
        condition="walk-artistic",
        epsilon=0.5,
        draw=0,
        recipe={
            "perturbation": {"kind": "multiplicative", "epsilon": 0.5, "seed": 1, "spectral_norm": "renormalise"},
            "walk": {"to_seed": 5, "frames": 5, "frame": 2},
        },
    )
    assert (walk["perturbation_kind"], walk["perturbation_mode"], walk["latent"]) == (
        "multiplicative",
        "renormalise",
        "walk",
    )
    arithmetic = recipe_columns(condition="arithmetic", epsilon=0.0, draw=0, recipe={"arithmetic": {"a": [1]}})
    assert (arithmetic["perturbation_kind"], arithmetic["latent"], arithmetic["network"]) == (
        "none",
        "arithmetic",
        "arithmetic",
    )


def test_dose_rows_take_one_multiplicative_perturbation_and_the_plain_baseline():
    from analysis.report import dose_rows

    conditions = [  # name, kind, mode, latent, ε: the conditions of examples/all-kinds.yaml, and one more ε
        ("baseline", "none", "", "seed", 0.0),
        ("artistic-frozen", "multiplicative", "frozen", "seed", 0.5),
        ("artistic-frozen-1", "multiplicative", "frozen", "seed", 1.0),
        ("artistic-renormalise", "multiplicative", "renormalise", "seed", 0.5),
        ("symbolic-embedding-noise", "semantic", "embedding-noise", "seed", 1.0),
        ("symbolic-class-mix", "semantic", "class-mix", "seed", 0.5),
        ("arithmetic", "none", "", "arithmetic", 0.0),
        ("walk-artistic", "multiplicative", "renormalise", "walk", 0.5),
    ]
    frame = pd.DataFrame(
        [
            {"condition": c, "perturbation_kind": k, "perturbation_mode": m, "latent": lat, "epsilon": e, "response": 1}
            for c, k, m, lat, e in conditions
            for _ in range(3)
        ]
    )
    rows, used, left_out, problem = dose_rows(frame)
    assert problem is None
    assert used == ["artistic-frozen", "artistic-frozen-1", "baseline"]
    assert set(left_out) == {c[0] for c in conditions} - set(used)
    assert set(rows["condition"]) == set(used) and len(rows) == 9
    legacy = dose_rows(frame.drop(columns=["perturbation_kind"]))
    assert legacy[0].empty and "no perturbation_kind column" in legacy[3]


def test_recipe_columns_for_style_transfer_and_deepdream_name_the_backbone_and_no_latent():
    backbone = {"id": "vgg19", "sha256": "x", "architecture": "vgg19"}
    recipe = {"kind": "style-transfer", "backbone": backbone, "params": {"iterations": 50}, "inputs": {}}
    columns = recipe_columns(condition="gatys", epsilon=None, draw=None, recipe=recipe)
    assert {k: columns[k] for k in ("perturbation_kind", "perturbation_mode", "latent", "epsilon", "network")} == {
        "perturbation_kind": "style-transfer",
        "perturbation_mode": "",
        "latent": "",  # no generator latent: the walk/arithmetic/seed distinction does not apply
        "epsilon": None,
        "network": "gatys",
    }
    assert columns["model"] == "vgg19" and json.loads(columns["recipe"])["params"]["iterations"] == 50
    dream = recipe_columns(condition="dream", epsilon=None, draw=None, recipe={**recipe, "kind": "deepdream"})
    assert (dream["perturbation_kind"], dream["latent"]) == ("deepdream", "")
    assert {"style-transfer", "deepdream"} <= set(EPSILON_MEANING)
