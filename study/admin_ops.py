"""Admin pages for running a study: the live monitor, participant operations (withdrawal, Prolific outcomes) and
the read-only audit log. Views only translate HTTP into `study.monitor` / `study.operations` calls.

The monitor page is served with a strict Content-Security-Policy (no inline script or style): it is static HTML
plus `study/monitor.js`, which polls the JSON endpoint and redraws in place.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from config.errors import SetupError
from study import operations, services
from study.models import AuditEntry, Study
from study.monitor import study_monitor

STRICT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
POLL_INTERVAL_MS = 5000
STATUS_BUTTONS = [
    (Study.Status.LIVE, "Publish"),
    (Study.Status.PILOT, "Start pilot"),
    (Study.Status.PAUSED, "Pause"),
    (Study.Status.CLOSED, "Close"),
]
COUNT_LABELS = [
    ("entered", "entered"),
    ("on_consent_page", "on the consent page"),
    ("consented", "consented"),
    ("declined", "declined"),
    ("in_progress", "in progress"),
    ("completed", "completed"),
    ("screened_out", "screened out"),
    ("released", "timed out / released"),
    ("withdrawn", "withdrawn"),
    ("pilots", "pilot runs"),
    ("ratings", "ratings"),
]


class WithdrawForm(forms.Form):
    recruitment_id = forms.CharField(required=False, max_length=128, label="Recruitment id (e.g. Prolific ID)")
    pseudonym = forms.CharField(required=False, max_length=64, label="or pseudonym (the export's participant)")
    confirm = forms.BooleanField(label="Erase this participant's trials, ratings and questionnaire for good")

    def clean(self):
        data = super().clean()
        if bool(data.get("recruitment_id", "").strip()) == bool(data.get("pseudonym", "").strip()):
            raise forms.ValidationError("Give either a recruitment id or a pseudonym.")
        return data


class OutcomesForm(forms.Form):
    recruitment_ids = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8, "cols": 60}),
        max_length=2_000_000,
        label="Recruitment ids",
        help_text="One per line, or paste Prolific's submissions CSV (with its header).",
    )


def _csp(response: HttpResponse) -> HttpResponse:
    response["Content-Security-Policy"] = STRICT_CSP
    return response


def _study(model_admin: admin.ModelAdmin, request: HttpRequest, object_id: str, *, change: bool = False) -> Study:
    if not object_id.isdigit():  # /admin/study/study/abc/monitor/: a 404, not a ValueError from the query
        raise Http404("no such study")
    study = get_object_or_404(Study, pk=object_id)
    allowed = (model_admin.has_change_permission if change else model_admin.has_view_permission)(request, study)
    if not allowed:
        raise PermissionDenied
    return study


def _monitor_url(study: Study) -> str:
    return reverse("admin:study_study_monitor", args=[study.pk])


def study_admin_urls(model_admin: admin.ModelAdmin) -> list:
    """URLs added to StudyAdmin: /admin/study/study/<id>/monitor/ and friends, all behind admin_view (staff)."""
    wrap = model_admin.admin_site.admin_view

    def monitor_page(request: HttpRequest, object_id: str) -> HttpResponse:
        study = _study(model_admin, request, object_id)
        data = study_monitor(study=study)
        context = {
            **model_admin.admin_site.each_context(request),
            "opts": Study._meta,
            "title": f"Monitor: {study.title}",
            "study": study,
            "data": data,
            "counts": [(key, label, data[key]) for key, label in COUNT_LABELS],
            "status_buttons": STATUS_BUTTONS,
            "can_change": model_admin.has_change_permission(request, study),
            "interval_ms": getattr(settings, "STUDY_MONITOR_POLL_MS", POLL_INTERVAL_MS),
        }
        return _csp(TemplateResponse(request, "admin/study/monitor.html", context))

    def monitor_data(request: HttpRequest, object_id: str) -> HttpResponse:
        response = JsonResponse(study_monitor(study=_study(model_admin, request, object_id)))
        response["Cache-Control"] = "no-store"
        return response

    @require_POST
    def monitor_status(request: HttpRequest, object_id: str) -> HttpResponse:
        study = _study(model_admin, request, object_id, change=True)
        status = request.POST.get("status", "")
        if status not in dict(STATUS_BUTTONS):
            messages.error(request, f"Unknown status {status!r}.")
        else:
            try:
                services.study_set_status(study=study, status=status, actor=request.user)
            except SetupError as exc:
                messages.error(request, f"{study.slug}: {exc}")
            else:
                messages.success(request, f"{study.slug} is now {study.get_status_display().lower()}.")
        return redirect(_monitor_url(study))

    def participant_ops(request: HttpRequest, object_id: str) -> HttpResponse:
        study = _study(model_admin, request, object_id)
        withdraw_form, outcomes_form = WithdrawForm(), OutcomesForm()
        if request.method == "POST" and request.POST.get("operation") == "outcomes":
            if not request.user.has_perm("study.view_participant"):
                raise PermissionDenied
            outcomes_form = OutcomesForm(request.POST)
            if outcomes_form.is_valid():
                ids = operations.recruitment_ids_parse(outcomes_form.cleaned_data["recruitment_ids"])
                text = operations.recruitment_outcomes_csv(study=study, recruitment_ids=ids, actor=request.user)
                response = HttpResponse(text, content_type="text/csv; charset=utf-8")
                response["Content-Disposition"] = f'attachment; filename="{study.slug}-outcomes.csv"'
                return response
        elif request.method == "POST" and request.POST.get("operation") == "withdraw":
            if not request.user.has_perm("study.delete_participant"):
                raise PermissionDenied
            withdraw_form = WithdrawForm(request.POST)
            if withdraw_form.is_valid():
                data = withdraw_form.cleaned_data
                try:
                    participant = operations.participant_find(
                        study=study, recruitment_id=data["recruitment_id"].strip(), pseudonym=data["pseudonym"].strip()
                    )
                except operations.OperationError as exc:
                    withdraw_form.add_error(None, str(exc))
                else:
                    result = operations.participant_withdraw(participant=participant, actor=request.user)
                    messages.success(
                        request,
                        (
                            f"Withdrawn: erased {result.rows} rows ({result.ratings} ratings, {result.trials} trials, "
                            f"{result.questionnaires} questionnaire). {result.reports_marked_stale} report(s) and "
                            f"{result.exports_marked_stale} export(s) made before are marked stale."
                        ),
                    )
                    return redirect(reverse("admin:study_study_participant_ops", args=[study.pk]))
        context = {
            **model_admin.admin_site.each_context(request),
            "opts": Study._meta,
            "study": study,
            "title": f"Participant operations: {study.title}",
            "withdraw_form": withdraw_form,
            "outcomes_form": outcomes_form,
            "monitor_url": _monitor_url(study),
            "audit_url": reverse("admin:study_auditentry_changelist") + f"?study__id__exact={study.pk}",
        }
        return _csp(TemplateResponse(request, "admin/study/participant_ops.html", context))

    return [
        path("<path:object_id>/monitor/", wrap(monitor_page), name="study_study_monitor"),
        path("<path:object_id>/monitor/data/", wrap(monitor_data), name="study_study_monitor_data"),
        path("<path:object_id>/monitor/status/", wrap(monitor_status), name="study_study_monitor_status"),
        path("<path:object_id>/participant-operations/", wrap(participant_ops), name="study_study_participant_ops"),
    ]


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read-only: the log is written by the operations themselves, never edited."""

    list_display = ["created_at", "actor_label", "action", "study_slug", "rows", "stale_since", "detail"]
    list_filter = ["action", "study", "actor_label"]
    search_fields = ["study_slug", "actor_label"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
