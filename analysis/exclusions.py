"""Pre-registered exclusion rules, applied in a fixed order so the flow table reads top to bottom."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from analysis.schema import COMPLETED_STATUSES, ID_COLUMNS

EXCLUDED_COLUMNS = ["participant", "step", "rule", "detail"]


@dataclass(frozen=True)
class ExclusionRules:
    """Thresholds for each rule; ``None`` switches a rule off."""

    drop_practice: bool = True
    max_failed_attention: int | None = 1  # exclude participants failing at least this many checks
    min_median_rt_ms: float | None = 500.0  # exclude participants whose median rt is below this
    min_response_sd: float | None = 0.1  # straight-lining: SD of responses in a dimension at or below this
    min_completion: float | None = 0.5  # share of the modal number of ratings a participant must give
    require_completed_status: bool = True  # when a `participant_status` column exists

    def describe(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class ExclusionOutcome:
    """Kept ratings, the flow table (one row per step) and the excluded participants with the rule and reason."""

    ratings: pd.DataFrame
    flow: pd.DataFrame
    excluded: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=EXCLUDED_COLUMNS))

    def steps_that_removed(self) -> pd.DataFrame:
        """Flow rows that removed at least one rating (what the methods text reports)."""
        return self.flow[(self.flow["ratings_excluded"] > 0) & (self.flow["step"] != "export")]


def _flow_row(step: str, rule: str, before: pd.DataFrame, after: pd.DataFrame) -> dict[str, object]:
    return {
        "step": step,
        "rule": rule,
        "participants_excluded": before["participant"].nunique() - after["participant"].nunique(),
        "ratings_excluded": len(before) - len(after),
        "participants_remaining": after["participant"].nunique(),
        "ratings_remaining": len(after),
    }


def _unusable(df: pd.DataFrame) -> tuple[pd.Series, str]:
    """Rows no model can use (missing ids, a response that is missing, non-numeric or infinite) and why, counted."""
    bad = pd.Series(False, index=df.index)
    reasons = []
    for col in ID_COLUMNS:
        missing = df[col].isna()
        if missing.any():
            reasons.append(f"{int(missing.sum())} without a {col} id")
        bad |= missing
    problems = df.attrs.get("input_problems", {})
    non_numeric = int(problems.get("non_numeric_response", 0))
    infinite = ~np.isfinite(df["response"]) & df["response"].notna()
    missing = int(df["response"].isna().sum()) - non_numeric
    for n, what in (
        (non_numeric, "with a non-numeric response"),
        (int(infinite.sum()), "with an infinite response"),
        (missing, "with a missing response"),
    ):
        if n > 0:
            reasons.append(f"{n} {what}")
    bad |= df["response"].isna() | infinite
    rule = "rows with a missing id or a missing, non-numeric or infinite response"
    return bad, rule + (f" ({'; '.join(reasons)})" if reasons else "")


def apply_exclusions(ratings: pd.DataFrame, rules: ExclusionRules | None = None) -> ExclusionOutcome:
    """Apply each rule in turn; every step is recorded even when it removes nobody."""
    rules = rules or ExclusionRules()
    df = ratings
    flow = [
        {
            "step": "export",
            "rule": "all rows in the export",
            "participants_excluded": 0,
            "ratings_excluded": 0,
            "participants_remaining": df["participant"].nunique(),
            "ratings_remaining": len(df),
        }
    ]
    excluded: list[dict[str, str]] = []

    def drop_participants(
        current: pd.DataFrame, who: pd.Series, details: pd.Series, step: str, rule: str
    ) -> pd.DataFrame:
        who = who[who]
        for pid, detail in zip(who.index, details.reindex(who.index).astype(str), strict=True):
            excluded.append({"participant": pid, "step": step, "rule": rule, "detail": detail})
        after = current[~current["participant"].isin(who.index)]
        flow.append(_flow_row(step, rule, current, after))
        return after

    bad, rule = _unusable(df)
    after = df[~bad]
    flow.append(_flow_row("unusable", rule, df, after))
    df = after

    if rules.drop_practice and "is_practice" in df.columns:
        after = df[~df["is_practice"].astype(bool)]
        flow.append(_flow_row("practice", "practice trials dropped", df, after))
        df = after

    if "is_attention_check" in df.columns:
        checks = df[df["is_attention_check"].astype(bool)]
        if rules.max_failed_attention is not None and "attention_passed" in df.columns:
            failed = (~checks["attention_passed"].astype(bool)).groupby(checks["participant"]).sum()
            failed = failed.reindex(df["participant"].unique(), fill_value=0)
            details = failed.map(lambda n: f"{n} failed attention check(s)")
            df = drop_participants(
                df,
                failed >= rules.max_failed_attention,
                details,
                "attention",
                f"failed ≥ {rules.max_failed_attention} attention check(s)",
            )
        after = df[~df["is_attention_check"].astype(bool)]
        flow.append(_flow_row("attention_rows", "attention-check trials removed from the ratings", df, after))
        df = after

    if rules.require_completed_status and "participant_status" in df.columns:
        status = df.groupby("participant")["participant_status"].first().astype(str).str.lower()
        details = status.map(lambda s: f"participant_status {s}")
        df = drop_participants(
            df,
            ~status.isin(COMPLETED_STATUSES),
            details,
            "status",
            "session not completed (participant_status is not completed)",
        )

    if rules.min_completion is not None and not df.empty:
        counts = df.groupby("participant").size()
        modal = counts.mode().max()
        details = counts.map(lambda n: f"{n} of {modal} ratings")
        df = drop_participants(
            df,
            counts < rules.min_completion * modal,
            details,
            "incomplete",
            f"fewer than {rules.min_completion:.0%} of the modal {modal} ratings",
        )

    if rules.min_median_rt_ms is not None and not df.empty:
        median_rt = df.groupby("participant")["rt_ms"].median()
        details = median_rt.map(lambda v: f"median rt {v:.0f} ms")
        df = drop_participants(
            df, median_rt < rules.min_median_rt_ms, details, "fast", f"median rt below {rules.min_median_rt_ms:.0f} ms"
        )

    if rules.min_response_sd is not None and not df.empty:
        sd = df.groupby(["participant", "dimension"])["response"].std(ddof=0).groupby(level=0).min()
        details = sd.map(lambda v: f"min response SD {v:.2f}")
        df = drop_participants(
            df,
            sd <= rules.min_response_sd,
            details,
            "straightline",
            f"response SD ≤ {rules.min_response_sd} in a dimension",
        )

    return ExclusionOutcome(
        ratings=df.reset_index(drop=True),
        flow=pd.DataFrame(flow),
        excluded=pd.DataFrame(excluded, columns=EXCLUDED_COLUMNS),
    )
