"""Participant pages: thin translations of HTTP into study.services calls (oTree-style page sequence).

One URL per participant renders whatever step they are at, so reload, back, a second tab or a returning link all
land on the current step. Every POST names the step it answers; a stale one is redirected, a forged one gets 4xx.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import get_script_prefix, reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.crypto import constant_time_compare, get_random_string
from django.utils.http import http_date
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods

from study import selectors, services, throttle
from study.caching import BoundedCache
from study.counts import participant_counts
from study.error_pages import error_page
from study.forms import QuestionnaireForm
from study.languages import in_study_language
from study.models import Participant, RatingDimension, Study, Trial
from study.page_skeletons import STEP_TEMPLATES, render_step_page, render_trial_page
from study.tickets import TICKET_FIELD, ticket_issue, ticket_read

RECRUITMENT_ID = re.compile(r"^[A-Za-z0-9_.@:-]{1,128}$")
UNAVAILABLE_MESSAGES = {
    "full": gettext_lazy("Thank you for your interest. This study has reached the number of participants it needs."),
    "closed": gettext_lazy("Thank you for your interest. This study is closed."),
    "paused": gettext_lazy("This study is paused at the moment. Please try again later."),
    "draft": gettext_lazy("This study is not open yet."),
    "not_ready": gettext_lazy("This study is not open yet."),
    "released": gettext_lazy(
        "This session has expired, so no further answers can be recorded. Thank you for your time."
    ),
    "recruitment_id_required": gettext_lazy(
        "This study can only be started from the link on the recruitment site (for example Prolific), which keeps "
        "your place in the study. Please go back there and open the study from its link."
    ),
}
# Reasons that refuse the request itself rather than describe the study's state.
UNAVAILABLE_STATUS = {"recruitment_id_required": 403}


class SeeOther(HttpResponseRedirect):
    status_code = 303


KEPT_NOTE = "?kept=1"  # the redirect after a stale trial answer: the page says the earlier answer stays
COOKIE_SALT = "study.participant"
COOKIE_MAX_AGE = 60 * 60 * 24 * 30


NEVER_CACHE = "max-age=0, no-cache, no-store, must-revalidate, private"  # what add_never_cache_headers writes


_LAST_HTTP_DATE: list[tuple[int, str]] = [(0, "")]  # one (second, text) pair, replaced whole


def _http_date_now() -> str:
    """http_date() for this second, formatted once per second (email.utils.formatdate showed in the profile).

    An HTTP date has a resolution of one second, so the text is the same; the pair is swapped whole (atomic under
    the GIL).
    """
    now = int(time.time())
    second, text = _LAST_HTTP_DATE[0]
    if second != now:
        text = http_date(now)
        _LAST_HTTP_DATE[0] = (now, text)
    return text


def never_cache(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Django's never_cache with its two headers written directly (its header parsing showed in the profile).

    A response that already has either header goes through Django's add_never_cache_headers, which merges.
    """

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        response = view(request, *args, **kwargs)
        if "Cache-Control" in response or "Expires" in response:
            add_never_cache_headers(response)
        else:
            response.headers["Expires"] = _http_date_now()
            response.headers["Cache-Control"] = NEVER_CACHE
        return response

    return wrapper


def _cookie_name(slug: str) -> str:
    return f"study-{slug}"


# Verified cookies and page-URL prefixes, per process: every request of a participant presents the same signed cookie
# and redirects to the same URL, and checking the HMAC or reversing the URL each time was a measurable share of a
# submission's CPU (bench/study.py). Only what passed verification is remembered; the key is the whole cookie.
_VERIFIED_COOKIES = BoundedCache(16384)
_PAGE_URL_HEADS = BoundedCache(1024)


def _bound_participant_id(request: HttpRequest, slug: str) -> str:
    """The participant this browser belongs to: a signed cookie (no session row to read on every request)."""
    name = _cookie_name(slug)
    raw = request.COOKIES.get(name)
    if not raw:
        return ""
    key = (name, raw)
    value = _VERIFIED_COOKIES.get(key)
    if value is None:
        value = request.get_signed_cookie(name, default="", salt=COOKIE_SALT)
        if value:
            _VERIFIED_COOKIES.put(key, value)
    return value


def _error(request: HttpRequest, status: int, message: str = "") -> HttpResponse:
    return error_page(request, status=status, message=message)


def _too_many(request: HttpRequest) -> HttpResponse:
    response = error_page(request, status=429)
    response["Retry-After"] = "60"
    return response


def _unavailable(request: HttpRequest, study: Study, reason: str) -> HttpResponse:
    message = UNAVAILABLE_MESSAGES.get(reason, UNAVAILABLE_MESSAGES["closed"])
    return render(
        request,
        "study/unavailable.html",
        {"study": study, "message": message, "reason": reason},
        status=UNAVAILABLE_STATUS.get(reason, 200),
    )


def _page_url(participant: Participant) -> str:
    return _page_url_for(participant.study.slug, participant.public_id)


def _page_url_for(slug: str, public_id: str) -> str:
    key = (get_script_prefix(), slug)
    head = _PAGE_URL_HEADS.get(key)
    if head is None:  # the URL pattern stays the one owner of the URL: reverse it once per study and prefix
        probe = reverse("study:page", kwargs={"slug": slug, "participant_id": "0"})
        assert probe.endswith("/0/"), probe
        head = _PAGE_URL_HEADS.put(key, probe[:-2])
    return f"{head}{public_id}/"


def _bind(request: HttpRequest, participant: Participant) -> HttpResponse:
    response = SeeOther(_page_url(participant))
    response.set_signed_cookie(
        _cookie_name(participant.study.slug),
        participant.public_id,
        salt=COOKIE_SALT,
        max_age=COOKIE_MAX_AGE,
        httponly=True,
        samesite="Lax",
        secure=request.is_secure(),
        path=f"/s/{participant.study.slug}/",
    )
    return response


def _recruitment(request: HttpRequest) -> tuple[str, str, dict[str, str]] | None:
    """(source, external id, other parameters) from the query string; None when no id was given."""
    params = request.GET
    for key, source in (("PROLIFIC_PID", "prolific"), ("pid", "pid")):
        if params.get(key):
            extra = {k: params[k] for k in ("STUDY_ID", "SESSION_ID") if params.get(k)}
            return source, params[key], extra
    return None


@never_cache
@require_GET
@in_study_language
def study_entry(request: HttpRequest, slug: str) -> HttpResponse:
    """The recruitment link: /s/<slug>/?PROLIFIC_PID=...&STUDY_ID=...&SESSION_ID=... (or ?pid=...)."""
    study = selectors.study_by_slug(slug=slug)
    if study is None:
        return _error(request, 404, _("There is no study at this address. Please check the link you were given."))
    recruitment = _recruitment(request)
    if recruitment is None:
        bound = _bound_participant_id(request, slug)
        participant = Participant.objects.filter(study=study, public_id=bound).first() if bound else None
        if participant is not None:
            return SeeOther(_page_url(participant))
        recruitment = (services.ANONYMOUS, get_random_string(24), {})
    source, external_id, extra = recruitment
    if not RECRUITMENT_ID.match(external_id) or any(not RECRUITMENT_ID.match(v) for v in extra.values()):
        return _error(request, 400, _("The link you followed is malformed. Please use the link you were given."))
    if throttle.entry_throttled(request):
        return _too_many(request)
    try:
        participant = services.participant_enter(
            study=study,
            source=source,
            external_id=external_id,
            recruitment=extra,
            user_agent=request.headers.get("User-Agent", ""),
        )
    except services.StudyUnavailable as exc:
        return _unavailable(request, study, exc.reason)
    return _bind(request, participant)


@never_cache
@require_GET
@in_study_language
def study_preview(request: HttpRequest, slug: str, token: str) -> HttpResponse:
    """Pilot link from the admin: a fresh, flagged participant through the full flow, outside every quota."""
    study = Study.objects.filter(slug=slug).first()
    if study is None or not constant_time_compare(token, study.pilot_token):
        return _error(request, 404, _("This preview link is not valid."))
    if selectors.study_readiness_problems(study=study):
        return _unavailable(request, study, "not_ready")
    participant = services.participant_enter(
        study=study,
        source="pilot",
        external_id=get_random_string(24),
        user_agent=request.headers.get("User-Agent", ""),
        pilot=True,
    )
    return _bind(request, participant)


@never_cache
@require_http_methods(["GET", "POST"])
@in_study_language
def participant_page(request: HttpRequest, slug: str, participant_id: str) -> HttpResponse:
    own = constant_time_compare(_bound_participant_id(request, slug), participant_id)
    if own and request.method == "POST" and request.POST.get("step") == Participant.Step.TRIALS:
        # The common answer in one statement, from the page's signed ticket; anything else takes the full path.
        ticket = ticket_read(
            token=request.POST.get(TICKET_FIELD), public_id=participant_id, index=request.POST.get("trial")
        )
        if ticket is not None:
            answers, rts = _trial_answers(request)
            if services.trial_answer_ticketed(
                slug=slug, ticket=ticket, answers=answers, rt_ms=request.POST.get("rt_ms"), rt_by_dimension=rts
            ):
                return SeeOther(_page_url_for(slug, participant_id))
    # A GET of one's own page may be the trial page: its "shown" stamp rides on the state read (one statement).
    stamp = timezone.now() if own and request.method == "GET" else None
    participant = selectors.participant_page_state(
        slug=slug, public_id=participant_id, stamp_shown_at=stamp, neighbours=request.method != "POST"
    )
    if participant is None:
        return _error(request, 404, _("This page does not exist. Please use the link you were given."))
    if not own:
        return _error(request, 403, _("This page belongs to another session. Please use the link you were given."))
    if participant.released_at is not None and participant.step != Participant.Step.DONE:
        return _unavailable(request, participant.study, "released")
    if request.method == "POST":
        return _handle_post(request, participant)
    return _render_step(request, participant)


def _handle_post(request: HttpRequest, participant: Participant) -> HttpResponse:
    step = request.POST.get("step", "")
    if step not in Participant.Step.values:
        return _error(request, 400, _("This request was not understood."))
    if step != participant.step:
        # A stale form (back button, second tab, double click): the server's state wins, and an answer the
        # participant may think they changed gets a short note saying it was kept.
        return SeeOther(_page_url(participant) + (KEPT_NOTE if step == Participant.Step.TRIALS else ""))
    try:
        if step == Participant.Step.CONSENT:
            choice = request.POST.get("choice")
            if choice == "agree":
                if not participant.is_pilot and throttle.consent_throttled(request):
                    return _too_many(request)
                services.participant_consent(participant=participant)
            elif choice == "decline":
                services.participant_decline(participant=participant)
            else:
                return _error(request, 400, _("Please choose whether you consent."))
        elif step == Participant.Step.INSTRUCTIONS:
            services.participant_start_trials(participant=participant)
        elif step == Participant.Step.TRIALS:
            answers, rts = _trial_answers(request)
            outcome = services.trial_answer(
                participant=participant,
                index=request.POST.get("trial"),
                answers=answers,
                rt_ms=request.POST.get("rt_ms"),
                rt_by_dimension=rts,
            )
            if not outcome.recorded:
                return SeeOther(_page_url(participant) + KEPT_NOTE)
        elif step == Participant.Step.QUESTIONNAIRE:
            form = QuestionnaireForm(request.POST)
            if not form.is_valid():
                return _render_step(request, participant, form=form, status=400)
            services.questionnaire_submit(participant=participant, answers=form.cleaned_data)
        else:
            return SeeOther(_page_url(participant))
    except services.BadSubmission as exc:
        return _error(
            request,
            400,
            _("This answer could not be accepted (%(reason)s). Please go back to the study.") % {"reason": exc},
        )
    except services.StudyUnavailable as exc:
        return _unavailable(request, participant.study, exc.reason)
    return SeeOther(_page_url(participant))


_NOT_ANSWERS = {"csrfmiddlewaretoken", "step", "trial", "rt_ms", TICKET_FIELD}


def _trial_answers(request: HttpRequest) -> tuple[dict[str, object], dict[str, object]]:
    """A trial form's answers by dimension name, and their per-dimension RTs (fields rt_ms_<name>)."""
    names = {k for k in request.POST if k not in _NOT_ANSWERS}
    answers = {k: request.POST.get(k) for k in names if not k.startswith("rt_ms_")}
    rts = {k.removeprefix("rt_ms_"): request.POST.get(k) for k in names if k.startswith("rt_ms_")}
    return answers, rts


def _render_step(
    request: HttpRequest, participant: Participant, *, form: QuestionnaireForm | None = None, status: int = 200
) -> HttpResponse:
    study = participant.study
    context = {
        "study": study,
        "participant": participant,
        "step": participant.step,
        "action": _page_url(participant),
        "answer_kept": request.GET.get("kept") == "1",
        "counts": participant_counts(participant=participant),
    }
    step = participant.step
    if step == Participant.Step.TRIALS:
        return _render_trial(request, participant, context)
    if step == Participant.Step.INSTRUCTIONS:
        context["dimensions"] = list(selectors.study_dimensions(study=study).values())
        if participant.group:
            context["dimensions"] = [d for d in context["dimensions"] if d.name == participant.group]
    elif step == Participant.Step.QUESTIONNAIRE:
        context["form"] = form or QuestionnaireForm()
    elif step == Participant.Step.SCREENED_OUT:
        context["screen_out_url"] = study.screen_out_url
    elif step == Participant.Step.DONE:
        context["completion_url"] = study.completion_url
    if form is not None or status != 200:  # a form with its errors: this participant's own page
        return render(request, STEP_TEMPLATES[step], context, status=status)
    return render_step_page(request, context)


def _render_trial(request: HttpRequest, participant: Participant, context: dict) -> HttpResponse:
    if participant.study.task == Study.Task.PAIRWISE:
        from study.pairwise_views import render_pair_trial

        return render_pair_trial(request, participant, context)
    current = getattr(participant, "current_trial", None)
    if current is None:  # a trial list shorter than the position: nothing to show, so show the next step
        return SeeOther(_page_url(participant))
    previous = getattr(participant, "previous_trial", None)
    upcoming = getattr(participant, "next_trial", None)
    if not getattr(participant, "shown_stamped", False):
        services.trial_mark_shown(trial=current)
    study = participant.study
    dimensions = selectors.study_dimensions(study=study)
    names = tuple(name for name in current.dimensions if name in dimensions)
    counts = context["counts"]
    n_practice = counts.practice
    is_practice = current.kind == Trial.Kind.PRACTICE
    context.update(
        {
            "trial": current,
            "image_url": current.stimulus.image.url,
            "next_image_url": upcoming.stimulus.image.url if upcoming else "",
            "first_dimension": dimensions[names[0]] if names else None,
            "scales": selectors.scales_html(study=study, names=names),
            "is_practice": is_practice,
            "is_attention": current.kind == Trial.Kind.ATTENTION,
            "number": current.index + 1 if is_practice else current.index + 1 - n_practice,
            "total": n_practice if is_practice else counts.main,
            "practice_over": bool(previous and previous.kind == Trial.Kind.PRACTICE and not is_practice),
            "new_block": bool(
                previous
                and not is_practice
                and previous.kind != Trial.Kind.PRACTICE
                and previous.block != current.block
            ),
            "slider": RatingDimension.Kind.SLIDER,
            "ticket": ticket_issue(participant=participant, study=study, trial=current),
        }
    )
    context["progress_value"] = context["number"] - 1
    return render_trial_page(request, context)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """For settings.CSRF_FAILURE_VIEW: a calm 403 page (usually cookies blocked or a very old tab)."""
    return _error(
        request,
        403,
        _(
            "Your browser sent an expired or incomplete form. Please reload the page and "
            "make sure cookies are allowed for this site."
        ),
    )
