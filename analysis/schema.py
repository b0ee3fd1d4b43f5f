"""The long-format ratings table (one row per rating): the one contract between the study export and the analysis.

`study/selectors.py` writes exactly :data:`EXPORT_COLUMNS` (with :data:`SCHEMA_VERSION` in every row) and
`analysis.ratings.load_ratings` reads them through the same :data:`COLUMNS`, so a column cannot be renamed on one
side only. Standard library only: the web process imports this module, and it must not pull in NumPy or pandas
(pandas is imported inside :func:`typed_frame`, which only the export and the analysis call).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

# 1: the columns before the schema existed (participant status in `status` or `participant_status`).
# 2: schema_version, perturbation_kind, perturbation_mode, latent, network, model, truncation, recipe_id, recipe.
SCHEMA_VERSION = 2

# Low-level image descriptors (computed by generation.descriptors.describe, exported per stimulus, used by the
# analysis as covariates). Defined here, not in generation/, because the web process and the analysis read the
# names without importing NumPy or Pillow.
DESCRIPTOR_COLUMNS: tuple[str, ...] = (
    "colorfulness",
    "saturation",
    "rms_contrast",
    "luminance_entropy",
    "edge_density",
    "compression_ratio",
)

# What ε means depends on the perturbation; the column is only comparable within one (kind, mode).
EPSILON_MEANING: dict[str, str] = {
    "none": "0: the unperturbed network",
    "multiplicative": "relative SD of the weight noise: W ← W ⊙ (1 + ε·ξ), ξ ~ N(0, 1) (or unit-variance uniform); "
    "the mode (spectral-norm policy frozen or renormalise) changes what the same ε does",
    "semantic/embedding-noise": "relative SD of noise on the class-embedding matrix: E ← E ⊙ (1 + ε·ξ)",
    "semantic/class-mix": "share of the class vector moved to k random other classes, in [0, 1]",
    "semantic/random-embedding": "interpolation from the class embedding towards a random direction, in [0, 1]",
    "imported": "empty: images made elsewhere",
    "style-transfer": "empty: Gatys style transfer perturbs no generator (its parameters are in recipe)",
    "deepdream": "empty: DeepDream perturbs no generator (its parameters are in recipe)",
}
# Perturbation kinds whose ε is a dose of one manipulation (the dose-response model uses only these).
DOSE_KINDS: frozenset[str] = frozenset({"multiplicative"})
UNPERTURBED_KIND = "none"
# How the latent input was made: a seed's z (every dose condition), a walk frame, or z arithmetic.
SEED_LATENT = "seed"
COMPLETED_STATUSES: frozenset[str] = frozenset({"completed", "complete", "finished", "approved"})


@dataclass(frozen=True)
class Column:
    """One column: its name, type (string, float, int, bool, boolean = nullable, datetime, json) and meaning."""

    name: str
    dtype: str
    meaning: str
    required: bool = False  # the analysis cannot run without it


COLUMNS: tuple[Column, ...] = (
    Column("schema_version", "int", "version of this table's schema the export was written with"),
    Column("study", "string", "study slug"),
    Column("participant", "string", "pseudonymous participant id (keyed hash of the recruitment id)", True),
    Column("is_pilot", "bool", "pilot (preview) participant"),
    Column("group", "string", "between-subject group"),
    Column("stimulus", "string", "public stimulus id (reveals nothing about the condition)", True),
    Column("condition", "string", "condition name from the stimulus design", True),
    Column(
        "perturbation_kind",
        "string",
        "none (baseline), multiplicative, semantic, style-transfer, deepdream, imported, or a later kind; decides "
        "what ε means",
    ),
    Column(
        "perturbation_mode",
        "string",
        "sub-type of the kind: semantic: embedding-noise, class-mix, random-embedding; multiplicative: the "
        "spectral-norm policy, frozen or renormalise (empty in recipes older than the policy); empty otherwise",
    ),
    Column(
        "latent",
        "string",
        "how the generator's latent input was made: seed (a seed's z), walk (a frame of a latent walk) or "
        "arithmetic; empty for images no generator made (style transfer, DeepDream, imported)",
    ),
    Column(
        "epsilon",
        "float",
        "perturbation strength; its meaning depends on perturbation_kind/mode, see EPSILON_MEANING",
        True,
    ),
    Column(
        "network",
        "string",
        "id of the network that rendered the image: condition/draw/perturbation seed for "
        "perturbed conditions, the condition name for the unperturbed baseline (one network)",
    ),
    Column("draw", "int", "perturbation draw (independent perturbed network) of the condition"),
    Column("seed", "int", "latent seed of the image"),
    Column("class_index", "int", "ImageNet class index (empty for unconditional models)", True),
    Column("class_name", "string", "ImageNet class name"),
    Column("model", "string", "generator model id (style transfer, DeepDream: the backbone id)"),
    Column("truncation", "float", "truncation of the latent z"),
    Column("recipe_id", "string", "sha256 of the stimulus recipe: the same id renders the same bytes"),
    Column("recipe", "json", "the full recipe as JSON (every parameter of every kind, including later ones)"),
    Column("stimulus_set", "string", "stimulus set name"),
    Column("dimension", "string", "rating dimension (e.g. artistry, symbolism)", True),
    Column("scale", "string", "likert or slider"),
    Column("scale_min", "int", "lowest possible response"),
    Column("scale_max", "int", "highest possible response"),
    Column("response", "float", "the rating", True),
    Column("rt_ms", "int", "response time of this rating in ms (client clock, image shown to answer)", True),
    Column("trial_rt_ms", "int", "response time of the whole trial screen in ms"),
    Column("trial_index", "int", "position of the trial in the participant's sequence", True),
    Column("block", "int", "block number"),
    Column("is_practice", "bool", "practice trial (dropped before the models)"),
    Column("is_attention_check", "bool", "attention-check trial (removed before the models)"),
    Column("expected_response", "int", "instructed response of an attention check"),
    Column("attention_passed", "boolean", "attention check passed (empty off checks)"),
    Column("shown_at", "datetime", "server time the trial was first served (UTC)"),
    Column("answered_at", "datetime", "server time the answer arrived (UTC)"),
    Column("shown_count", "int", "how often the trial was served (reloads)"),
    Column(
        "participant_status",
        "string",
        "completed, in_progress, released or declined; only completed participants enter the models",
    ),
    Column("participant_seed", "int", "seed of the participant's randomised trial list"),
    Column("consented_at", "datetime", "consent time (UTC)"),
    Column("completed_at", "datetime", "completion time (UTC)"),
    Column("duration_s", "float", "seconds from consent to completion"),
    Column("attention_failures", "int", "attention checks failed during the session"),
    Column("age_band", "string", "questionnaire: age band"),
    Column("gender", "string", "questionnaire: gender"),
    Column("art_training", "string", "questionnaire: art training"),
    Column("art_expertise", "int", "questionnaire: self-rated art expertise, 1-7"),
    Column("comment", "string", "questionnaire: free comment"),
    *(Column(name, "float", "image descriptor (see generation/descriptors.py)") for name in DESCRIPTOR_COLUMNS),
    Column("image_path", "string", "absolute path of the image file (or relative to the export's folder)"),
)
BY_NAME: dict[str, Column] = {c.name: c for c in COLUMNS}
EXPORT_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS)
REQUIRED_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.required)
BOOLEAN_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.dtype in {"bool", "boolean"})
ID_COLUMNS: tuple[str, ...] = ("participant", "stimulus", "condition", "dimension")
# Names older exports and hand-made tables use for a schema column.
LEGACY_NAMES: dict[str, str] = {"status": "participant_status"}


def recipe_columns(
    *, condition: str, epsilon: float | None, draw: int | None, recipe: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The stimulus columns derived from its recipe: kind, mode, latent, ε, network, model, truncation, recipe JSON."""
    recipe = dict(recipe or {})
    perturbation = recipe.get("perturbation") or {}
    kind = perturbation.get("kind") or recipe.get("kind") or UNPERTURBED_KIND
    mode = perturbation.get("mode") or (perturbation.get("spectral_norm") if kind == "multiplicative" else None)
    latent = "walk" if recipe.get("walk") else "arithmetic" if recipe.get("arithmetic") else SEED_LATENT
    if recipe.get("kind"):  # only non-generator recipes (style transfer, DeepDream, imported) name a kind
        latent = ""
    model = recipe.get("model") or recipe.get("backbone")  # style transfer and DeepDream record a backbone
    if kind == UNPERTURBED_KIND:
        network = condition  # one unperturbed network
        epsilon = 0.0 if epsilon is None else epsilon
    elif not perturbation:
        network = condition  # imported, style transfer, DeepDream: no perturbed network and no draw
    else:
        network = f"{condition}/draw-{draw if draw is not None else 0}/seed-{perturbation.get('seed', 0)}"
    return {
        "perturbation_kind": kind,
        "perturbation_mode": mode or "",
        "latent": latent,
        "epsilon": epsilon,
        "network": network,
        "model": model.get("id", "") if isinstance(model, Mapping) else (model or ""),
        "truncation": recipe.get("truncation"),
        "recipe": json.dumps(recipe, sort_keys=True, separators=(",", ":")) if recipe else "",
    }


def typed_frame(
    rows: Iterable[Mapping[str, Any]] | pd.DataFrame, *, columns: Iterable[str] = EXPORT_COLUMNS, strict: bool = True
) -> pd.DataFrame:
    """Rows as a DataFrame with the schema's column order and dtypes (an empty export still has every column).

    ``strict``: a value that does not parse raises (the export); otherwise it becomes missing (user files, whose
    problems the analysis counts and reports).
    """
    import pandas as pd

    frame = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows), columns=list(columns))
    errors = "raise" if strict else "coerce"
    for name in frame.columns:
        column = BY_NAME.get(name)
        if column is None:
            continue
        values = frame[name]
        if column.dtype == "datetime" and strict:  # the analysis reads no times: parsing 1M of them costs seconds
            frame[name] = pd.to_datetime(values, utc=True, format="ISO8601", errors=errors)
        elif column.dtype == "bool" and strict:
            frame[name] = values.astype(bool)
        elif column.dtype == "boolean" and strict:
            frame[name] = values.astype("boolean")
        elif column.dtype == "int":
            numeric = pd.to_numeric(values, errors=errors)
            if strict:
                frame[name] = numeric.astype("Int64")
            else:  # plain NumPy dtypes for the analysis (patsy does not take pandas' nullable integers)
                whole = numeric.notna().all() and bool((numeric == numeric.round()).all())
                frame[name] = numeric.astype("int64") if whole else numeric.astype(float)
        elif column.dtype == "float":
            frame[name] = pd.to_numeric(values, errors=errors).astype(float)
    return frame


def describe_columns() -> str:
    """The schema as a Markdown table (docs/analysis.md embeds it)."""
    lines = ["| column | type | required | meaning |", "|---|---|---|---|"]
    lines += [f"| `{c.name}` | {c.dtype} | {'yes' if c.required else ''} | {c.meaning} |" for c in COLUMNS]
    return "\n".join(lines)
