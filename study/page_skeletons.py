"""Participant pages from pre-rendered skeletons: a template runs once per page variant, not once per request.

Rendering trial.html was half of a trial GET's server CPU, and the questionnaire's form widgets cost more than
every trial page together. Everything on the page is either fixed for a
study version, a language and a handful of flags (practice or not, an attention check and its value, the
notices, pilot), or one of a few per-request values (numbers, URLs, the trial index, the CSRF token). The
template is rendered once per variant with unique markers in place of those values, and each request fills the
markers in, escaped exactly as the template would escape them. tests/study/test_page_skeletons.py proves the
result equals a plain render of the template, byte for byte.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.template.loader import render_to_string
from django.utils.html import escape
from django.utils.translation import get_language

# Marker text the template cannot produce or escape: it only holds letters, digits and underscores.
_MARK = "QZ9trial_{}_9ZQ"
_VALUES = (
    "number",
    "total",
    "progress_value",
    "action",
    "next_image_url",
    "trial_index",
    "image_url",
    "width",
    "height",
    "csrf",
    "ticket",
)
_SKELETONS: dict[tuple, str] = {}
_LIMIT = 512


class _Marked:
    """Stands in for the trial in the skeleton's context: its per-request attributes render as markers."""

    def __init__(self, trial, has_size: bool) -> None:
        self.index = _MARK.format("trial_index")
        self.expected_value = trial.expected_value
        self.stimulus = _MarkedStimulus() if has_size else None


class _MarkedStimulus:
    width = _MARK.format("width")
    height = _MARK.format("height")


def render_trial_page(request: HttpRequest, context: dict) -> HttpResponse:
    """Render the trial page of `context` (as views._render_trial builds it) from a cached skeleton."""
    trial, study, participant = context["trial"], context["study"], context["participant"]
    has_size = bool(trial.stimulus.width)
    key = (
        study.pk,
        study.updated_at,
        get_language(),
        context["scales"],
        context["is_practice"],
        context["is_attention"],
        trial.expected_value if context["is_attention"] else None,
        context["practice_over"],
        context["new_block"],
        bool(context["next_image_url"]),
        participant.is_pilot,
        has_size,
        bool(context.get("answer_kept")),
    )
    skeleton = _SKELETONS.get(key)
    if skeleton is None:
        marked = {**context, **{name: _MARK.format(name) for name in _VALUES if name != "csrf"}}
        marked["trial"] = _Marked(trial, has_size)
        marked["csrf_token"] = _MARK.format("csrf")
        if not context["next_image_url"]:
            marked["next_image_url"] = ""
        skeleton = render_to_string("study/trial.html", marked)
        if len(_SKELETONS) >= _LIMIT:
            _SKELETONS.clear()
        _SKELETONS[key] = skeleton
    values = {
        "number": context["number"],
        "total": context["total"],
        "progress_value": context["progress_value"],
        "action": context["action"],
        "next_image_url": context["next_image_url"],
        "trial_index": trial.index,
        "image_url": context["image_url"],
        "width": trial.stimulus.width,
        "height": trial.stimulus.height,
        "csrf": get_token(request),
        "ticket": context["ticket"],
    }
    html = skeleton
    for name, value in values.items():
        html = html.replace(_MARK.format(name), escape(str(value)))
    return HttpResponse(html)


# The other steps' pages depend only on the study version, the language and these few things of the participant.
STEP_TEMPLATES = {
    "consent": "study/consent.html",
    "declined": "study/declined.html",
    "instructions": "study/instructions.html",
    "questionnaire": "study/questionnaire.html",
    "screened_out": "study/screened_out.html",
    "done": "study/done.html",
}


def render_step_page(request: HttpRequest, context: dict) -> HttpResponse:
    """Render a non-trial step (an unbound form only) from a skeleton keyed on all it depends on.

    The key holds everything of the participant a page shows (pilot flag, group, trial counts, the kept-answer
    note); the action URL and the CSRF token are the only per-request values.
    """
    study, participant, counts = context["study"], context["participant"], context["counts"]
    template = STEP_TEMPLATES[context["step"]]
    key = (
        template,
        study.pk,
        study.updated_at,
        get_language(),
        participant.is_pilot,
        participant.group,
        counts.practice,
        counts.main,
        bool(context.get("answer_kept")),
    )
    skeleton = _SKELETONS.get(key)
    if skeleton is None:
        marked = {**context, "action": _MARK.format("action"), "csrf_token": _MARK.format("csrf")}
        skeleton = render_to_string(template, marked)
        if len(_SKELETONS) >= _LIMIT:
            _SKELETONS.clear()
        _SKELETONS[key] = skeleton
    html = skeleton.replace(_MARK.format("action"), escape(context["action"]))
    return HttpResponse(html.replace(_MARK.format("csrf"), escape(get_token(request))))
