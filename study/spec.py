"""Studies as code: the YAML schema, validated up front with messages that name the bad key."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from config.errors import SetupError
from study.models import DEFAULT_DIMENSIONS, PAIR_PROMPTS, Study

SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
TOP_KEYS = {
    "slug",
    "title",
    "status",
    "consent",
    "instructions",
    "debrief",
    "stimulus_sets",
    "conditions",
    "dimensions",
    "layout",
    "between_subject",
    "trials_per_participant",
    "practice_trials",
    "attention_checks",
    "max_run_length",
    "max_participants",
    "completion_code",
    "completion_url",
    "no_consent_url",
    "languages",
    "bots",
    "time_limit_minutes",
    "screen_out_after",
    "screen_out_code",
    "screen_out_url",
    "anonymous_entry",
    "timed_out_code",
    "timed_out_url",
    "task",
    "pairs",
}
PAIRS_KEYS = {"design", "per_participant", "within_fraction", "allow_tie"}
DIMENSION_KEYS = {"name", "prompt", "scale"}
SCALE_KEYS = {"kind", "points", "low", "high"}
# Fields whose change would make existing participants' data incomparable.
DESIGN_KEYS = [
    "stimulus_sets",
    "conditions",
    "dimensions",
    "layout",
    "between_subject",
    "trials_per_participant",
    "practice_trials",
    "attention_checks",
    "task",
    "pairs",
]


class StudySpecError(SetupError):
    """An invalid study file; the message starts with the offending key."""


@dataclass
class DimensionSpec:
    name: str
    prompt: str
    kind: str = "likert"
    points: int = 7
    low_label: str = "Not at all"
    high_label: str = "Very much"


@dataclass
class PairsSpec:
    """`pairs:` of a pairwise study: the pair design and how many pairs each participant judges per dimension."""

    design: str = Study.PairDesign.BALANCED
    per_participant: int = 20
    within_fraction: float | None = None
    allow_tie: bool = False


@dataclass
class StudySpec:
    slug: str
    title: str
    status: str = Study.Status.DRAFT
    consent: str = ""
    instructions: str = ""
    debrief: str = ""
    stimulus_sets: list[str] = field(default_factory=list)
    conditions: list[str] = field(default_factory=list)
    dimensions: list[DimensionSpec] = field(default_factory=list)
    layout: str = Study.Layout.TOGETHER
    between_subject: str = Study.BetweenFactor.NONE
    trials_per_participant: int = 12
    practice_trials: int = 2
    attention_checks: int = 2
    max_run_length: int = 2
    max_participants: int | None = None
    completion_code: str = ""
    completion_url: str = ""
    no_consent_url: str = ""
    time_limit_minutes: int | None = None
    screen_out_after: int | None = None
    screen_out_code: str = ""
    screen_out_url: str = ""
    anonymous_entry: bool = False
    timed_out_code: str = ""
    timed_out_url: str = ""
    languages: list[str] = field(default_factory=lambda: ["en"])
    bots: dict[str, Any] = field(default_factory=dict)
    task: str = Study.Task.RATING
    pairs: PairsSpec = field(default_factory=PairsSpec)
    raw: dict[str, Any] = field(default_factory=dict)


def _fail(key: str, message: str) -> StudySpecError:
    return StudySpecError(f"{key}: {message}")


def _text(data: dict, key: str, *, where: str = "", required: bool = False, default: str = "") -> str:
    name = f"{where}{key}"
    if key not in data or data[key] is None:
        if required:
            raise _fail(name, "is required")
        return default
    value = data[key]
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise _fail(name, f"must be text, not {type(value).__name__}")
    return str(value)


def _integer(
    data: dict, key: str, *, minimum: int, maximum: int | None = None, default: int | None = None, where: str = ""
) -> int | None:
    name = f"{where}{key}"
    if key not in data or data[key] is None:
        return default
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(name, f"must be a whole number, not {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise _fail(name, f"must be {bound}, not {value}")
    return value


def _flag(data: dict, key: str, *, default: bool = False) -> bool:
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _fail(key, f"must be true or false, not {value!r}")
    return value


def _names(data: dict, key: str) -> list[str]:
    if key not in data or data[key] is None:
        return []
    value = data[key]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _fail(key, "must be a list of names")
    return list(value)


def _languages(data: dict) -> list[str]:
    """Languages the participant pages may use: ones the site has a translation for (settings.LANGUAGES)."""
    from django.conf import settings

    available = [code for code, _name in settings.LANGUAGES]
    languages = _names(data, "languages") or [settings.LANGUAGE_CODE]
    for i, code in enumerate(languages):
        if code not in available:
            raise _fail(f"languages[{i}]", f"{code!r} is not available (available: {', '.join(available)})")
    return languages


def _choice(data: dict, key: str, choices: list[str], default: str, where: str = "") -> str:
    value = data.get(key, default)
    if value is None:
        return default
    if value not in choices:
        raise _fail(f"{where}{key}", f"must be one of {', '.join(choices)}, not {value!r}")
    return value


def _dimension(item: object, i: int) -> DimensionSpec:
    where = f"dimensions[{i}]."
    if isinstance(item, str):
        defaults = {d["name"]: d for d in DEFAULT_DIMENSIONS}
        if item not in defaults:
            raise _fail(f"dimensions[{i}]", f"{item!r} is not a default dimension; give name, prompt and scale")
        d = defaults[item]
        return DimensionSpec(
            name=d["name"],
            prompt=d["prompt"],
            kind=d["kind"],
            points=d["points"],
            low_label=d["low_label"],
            high_label=d["high_label"],
        )
    if not isinstance(item, dict):
        raise _fail(f"dimensions[{i}]", "must be a mapping with name, prompt and scale")
    unknown = sorted(set(item) - DIMENSION_KEYS)
    if unknown:
        raise _fail(f"{where}{unknown[0]}", f"unknown key (allowed: {', '.join(sorted(DIMENSION_KEYS))})")
    name = _text(item, "name", where=where, required=True)
    if not SLUG.match(name):
        raise _fail(f"{where}name", f"must be a lower-case slug, not {name!r}")
    default = next((d for d in DEFAULT_DIMENSIONS if d["name"] == name), None)
    prompt = _text(item, "prompt", where=where, required=default is None, default=(default or {}).get("prompt", ""))
    scale = item.get("scale") or {}
    if not isinstance(scale, dict):
        raise _fail(f"{where}scale", "must be a mapping (kind, points, low, high)")
    unknown = sorted(set(scale) - SCALE_KEYS)
    if unknown:
        raise _fail(f"{where}scale.{unknown[0]}", f"unknown key (allowed: {', '.join(sorted(SCALE_KEYS))})")
    kind = _choice(scale, "kind", ["likert", "slider"], "likert", where=f"{where}scale.")
    points = _integer(scale, "points", minimum=2, maximum=9, default=7, where=f"{where}scale.")
    low = _text(scale, "low", where=f"{where}scale.", default=(default or {}).get("low_label", "Not at all"))
    high = _text(scale, "high", where=f"{where}scale.", default=(default or {}).get("high_label", "Very much"))
    return DimensionSpec(name=name, prompt=prompt, kind=kind, points=points, low_label=low, high_label=high)


def _pairs(data: dict, task: str) -> PairsSpec:
    raw = data.get("pairs")
    if raw is None:
        return PairsSpec()
    if task != Study.Task.PAIRWISE:
        raise _fail("pairs", "only applies to `task: pairwise`")
    if not isinstance(raw, dict):
        raise _fail("pairs", "must be a mapping (design, per_participant, within_fraction, allow_tie)")
    unknown = sorted(set(raw) - PAIRS_KEYS)
    if unknown:
        raise _fail(f"pairs.{unknown[0]}", f"unknown key (allowed: {', '.join(sorted(PAIRS_KEYS))})")
    fraction = raw.get("within_fraction")
    if fraction is not None and (
        isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 <= fraction <= 1
    ):
        raise _fail("pairs.within_fraction", f"must be a number between 0 and 1, not {fraction!r}")
    allow_tie = raw.get("allow_tie", False)
    if not isinstance(allow_tie, bool):
        raise _fail("pairs.allow_tie", f"must be true or false, not {allow_tie!r}")
    return PairsSpec(
        design=_choice(raw, "design", list(Study.PairDesign.values), Study.PairDesign.BALANCED, where="pairs."),
        per_participant=_integer(raw, "per_participant", minimum=1, maximum=2000, default=20, where="pairs."),
        within_fraction=None if fraction is None else float(fraction),
        allow_tie=allow_tie,
    )


def study_spec_parse(data: object) -> StudySpec:
    """Validate a study mapping; raise StudySpecError naming the first bad key."""
    if not isinstance(data, dict):
        raise StudySpecError("study file must be a mapping of keys (slug, title, ...)")
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise _fail(unknown[0], f"unknown key (allowed: {', '.join(sorted(TOP_KEYS))})")
    slug = _text(data, "slug", required=True)
    if not SLUG.match(slug) or len(slug) > 100:
        raise _fail("slug", f"must be a lower-case slug (letters, digits, - and _), not {slug!r}")
    dimensions_raw = data.get("dimensions")
    if dimensions_raw is None:
        dimensions = [_dimension(d["name"], i) for i, d in enumerate(DEFAULT_DIMENSIONS)]
    elif not isinstance(dimensions_raw, list) or not dimensions_raw:
        raise _fail("dimensions", "must be a non-empty list")
    else:
        dimensions = [_dimension(item, i) for i, item in enumerate(dimensions_raw)]
    names = [d.name for d in dimensions]
    if len(set(names)) != len(names):
        raise _fail("dimensions", f"names must be unique: {names}")
    completion_url = _text(data, "completion_url")
    if completion_url and not completion_url.startswith(("https://", "http://")):
        raise _fail(
            "completion_url", "must be an http(s) URL, e.g. https://app.prolific.com/submissions/complete?cc={code}"
        )
    no_consent_url = _text(data, "no_consent_url")
    if no_consent_url and not no_consent_url.startswith(("https://", "http://")):
        raise _fail("no_consent_url", "must be an http(s) URL")
    screen_out_url = _text(data, "screen_out_url")
    if screen_out_url and not screen_out_url.startswith(("https://", "http://")):
        raise _fail(
            "screen_out_url", "must be an http(s) URL, e.g. https://app.prolific.com/submissions/complete?cc={code}"
        )
    timed_out_url = _text(data, "timed_out_url")
    if timed_out_url and not timed_out_url.startswith(("https://", "http://")):
        raise _fail(
            "timed_out_url", "must be an http(s) URL, e.g. https://app.prolific.com/submissions/complete?cc={code}"
        )
    bots = data.get("bots") or {}
    if not isinstance(bots, dict):
        raise _fail("bots", "must be a mapping (see docs/study.md)")
    task = _choice(data, "task", list(Study.Task.values), Study.Task.RATING)
    pairs = _pairs(data, task)
    if task == Study.Task.PAIRWISE:
        rating_prompts = {d["name"]: d["prompt"] for d in DEFAULT_DIMENSIONS}
        for d in dimensions:
            if d.name in PAIR_PROMPTS and d.prompt == rating_prompts.get(d.name):
                d.prompt = PAIR_PROMPTS[d.name]
    return StudySpec(
        task=task,
        pairs=pairs,
        slug=slug,
        title=_text(data, "title", required=True),
        status=_choice(data, "status", list(Study.Status.values), Study.Status.DRAFT),
        consent=_text(data, "consent"),
        instructions=_text(data, "instructions"),
        debrief=_text(data, "debrief"),
        stimulus_sets=_names(data, "stimulus_sets"),
        conditions=_names(data, "conditions"),
        dimensions=dimensions,
        layout=_choice(data, "layout", list(Study.Layout.values), Study.Layout.TOGETHER),
        between_subject=_choice(data, "between_subject", list(Study.BetweenFactor.values), Study.BetweenFactor.NONE),
        trials_per_participant=_integer(data, "trials_per_participant", minimum=1, maximum=2000, default=12),
        practice_trials=_integer(data, "practice_trials", minimum=0, maximum=50, default=2),
        attention_checks=_integer(data, "attention_checks", minimum=0, maximum=50, default=2),
        max_run_length=_integer(data, "max_run_length", minimum=1, maximum=100, default=2),
        max_participants=_integer(data, "max_participants", minimum=1, default=None),
        completion_code=_text(data, "completion_code"),
        completion_url=completion_url,
        no_consent_url=no_consent_url,
        time_limit_minutes=_integer(data, "time_limit_minutes", minimum=1, default=None),
        screen_out_after=_integer(data, "screen_out_after", minimum=1, maximum=50, default=None),
        screen_out_code=_text(data, "screen_out_code"),
        screen_out_url=screen_out_url,
        anonymous_entry=_flag(data, "anonymous_entry"),
        timed_out_code=_text(data, "timed_out_code"),
        timed_out_url=timed_out_url,
        languages=_languages(data),
        bots=bots,
        raw=data,
    )


def study_spec_read(path: Path) -> StudySpec:
    """Read and validate a study YAML file."""
    if not path.is_file():
        raise StudySpecError(f"{path}: no such file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise StudySpecError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    return study_spec_parse(data)
