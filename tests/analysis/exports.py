"""A small study export with everything the study app writes, for report and CLI tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis.simulation import CrossedDesign, simulate_ratings


def study_export(
    tmp_path: Path, *, n_participants: int = 36, n_stimuli: int = 30, k: int = 20, seed: int = 5, images: bool = True
) -> pd.DataFrame:
    """A small export with everything the study app writes: practice, attention checks, descriptors, images."""
    ratings = simulate_ratings(
        design=CrossedDesign(n_participants, n_stimuli, k),
        effects={"artistic-0.5": 0.6, "artistic-1.0": 1.0, "symbolic": 0.4},
        dimensions=("artistry", "symbolism"),
        scale=(1, 7),
        draws=2,
        sd_network=0.3,
        seed=seed,
    )
    rng = np.random.default_rng(seed)
    ratings["class_index"] = ratings["stimulus"].str[-5:].astype(int) % 4 * 100 + 1
    stimuli = ratings["stimulus"].unique()
    descriptors = pd.DataFrame(
        {
            "stimulus": stimuli,
            "colorfulness": rng.normal(size=len(stimuli)),
            "edge_density": rng.uniform(size=len(stimuli)),
        }
    )
    ratings = ratings.merge(descriptors, on="stimulus")
    ratings["is_practice"] = "False"
    ratings["is_attention_check"] = "False"
    ratings["attention_passed"] = ""
    ratings["participant_status"] = "completed"
    practice = ratings.groupby("participant").head(1).assign(is_practice="True", trial_index=-1)
    checks = (
        ratings.groupby("participant")
        .head(1)
        .assign(is_attention_check="True", attention_passed="True", stimulus="ATTN", trial_index=999)
    )
    out = pd.concat([ratings, practice, checks], ignore_index=True)
    if images:
        from PIL import Image

        folder = tmp_path / "images"
        folder.mkdir(exist_ok=True)
        for i, stim in enumerate(stimuli):
            Image.new("RGB", (32, 32), (i * 7 % 255, 90, 160)).save(folder / f"{stim}.png")
        out["image_path"] = "images/" + out["stimulus"] + ".png"
    return out
