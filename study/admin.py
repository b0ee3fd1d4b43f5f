"""The researcher's side: studies with their dimensions, status actions, links, exports, participants, ratings."""

from __future__ import annotations

import tempfile
from pathlib import Path

from django.contrib import admin, messages
from django.db.models import Count, Q, QuerySet
from django.http import FileResponse, HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from config.errors import SetupError
from study import admin_design, authoring, operations, pairwise, selectors, services
from study.admin_ops import study_admin_urls
from study.models import (
    AuditEntry,
    Choice,
    Participant,
    QuestionnaireResponse,
    Rating,
    RatingDimension,
    Study,
    StudyReport,
    Trial,
)
from study.private_files import EXPORTS_DIR, can_read_study_files, private_root, report_file_url

DESIGN_FIELDS = [
    "stimulus_sets",
    "conditions",
    "layout",
    "between_factor",
    "trials_per_participant",
    "practice_trials",
    "attention_checks",
    "max_run_length",
    "task",
    "pair_design",
    "pairs_per_participant",
    "pair_within_fraction",
    "pair_allow_tie",
]


def design_is_frozen(study: Study | None) -> bool:
    """Once real participants have consented, the design is fixed so earlier and later data stay comparable."""
    return bool(study and study.pk and study.participants.filter(is_pilot=False, consented_at__isnull=False).exists())


class RatingDimensionInline(admin.TabularInline):
    model = RatingDimension
    extra = 0
    fields = ["order", "name", "prompt", "kind", "points", "low_label", "high_label"]

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return not design_is_frozen(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return not design_is_frozen(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return not design_is_frozen(obj) and super().has_delete_permission(request, obj)


def _status_action(status: str, label: str):
    def action(modeladmin: StudyAdmin, request: HttpRequest, queryset: QuerySet[Study]) -> None:
        for study in queryset:
            try:
                services.study_set_status(study=study, status=status, actor=request.user)
            except SetupError as exc:
                modeladmin.message_user(request, f"{study.slug}: {exc}", messages.ERROR)
            else:
                modeladmin.message_user(request, f"{study.slug} is now {status}.", messages.SUCCESS)

    action.__name__ = f"make_{status}"
    return admin.action(description=label)(action)


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    list_display = ["slug", "title", "status", "n_consented", "n_completed", "max_participants", "links"]
    # Status changes only through the actions, so going live always passes the readiness check.
    list_filter = ["status"]
    search_fields = ["slug", "title"]
    inlines = [RatingDimensionInline]
    filter_horizontal = ["stimulus_sets"]
    readonly_fields = [
        "status",
        "links",
        "recruitment_url",
        "readiness",
        "progress",
        "allocation",
        "pilot_token",
        "published_at",
        "created_at",
        "updated_at",
    ]
    fieldsets = [
        (None, {"fields": ["slug", "title", "status", "links", "recruitment_url", "readiness", "progress"]}),
        ("Texts", {"fields": ["consent_text", "instructions", "debrief"]}),
        (
            "Stimuli and design",
            {
                "fields": [
                    "stimulus_sets",
                    "conditions",
                    "layout",
                    "between_factor",
                    "trials_per_participant",
                    "practice_trials",
                    "attention_checks",
                    "max_run_length",
                    "allocation",
                ]
            },
        ),
        (
            "Pairwise comparisons (task: pairwise)",
            {"fields": ["task", "pair_design", "pairs_per_participant", "pair_within_fraction", "pair_allow_tie"]},
        ),
        (
            "Recruitment",
            {
                "fields": [
                    "max_participants",
                    "completion_code",
                    "completion_url_template",
                    "no_consent_url",
                    "timed_out_code",
                    "timed_out_url",
                    "anonymous_entry",
                    "languages",
                    "time_limit_minutes",
                    "screen_out_after",
                    "screen_out_code",
                    "screen_out_url_template",
                ]
            },
        ),
        ("Record", {"classes": ["collapse"], "fields": ["pilot_token", "published_at", "created_at", "updated_at"]}),
    ]
    actions = [
        _status_action(Study.Status.LIVE, "Publish (go live; refused with what is missing if not ready)"),
        _status_action(Study.Status.PILOT, "Start pilot (participants flagged, outside quotas)"),
        _status_action(Study.Status.PAUSED, "Pause (no new participants; started ones may finish)"),
        _status_action(Study.Status.CLOSED, "Close"),
        "export_csv",
        "export_parquet",
        "generate_report",
    ]

    class Media:
        css = {"all": ["study/admin_design.css"]}

    def get_urls(self) -> list:
        return study_admin_urls(self) + admin_design.design_admin_urls(self) + super().get_urls()

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None):
        extra_context = {**(extra_context or {}), "status_buttons": admin_design.STATUS_BUTTONS}
        return super().change_view(request, object_id, form_url, extra_context)

    def formfield_for_dbfield(self, db_field, request: HttpRequest, **kwargs):
        # Tick boxes instead of raw JSON (only called for editable fields: a frozen design stays read-only).
        if db_field.name == "conditions":
            study = getattr(request, "_study_admin_object", None)
            return admin_design.conditions_field(current=study.conditions if study else [])
        if db_field.name == "languages":
            return admin_design.languages_field()
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_form(self, request: HttpRequest, obj: Study | None = None, change: bool = False, **kwargs):
        request._study_admin_object = obj
        return super().get_form(request, obj, change, **kwargs)

    def save_related(self, request: HttpRequest, form, formsets, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        if not change and authoring.study_dimensions_default(study=form.instance):
            self.message_user(
                request, "Added the default dimensions (artistry, symbolism); edit them below.", messages.INFO
            )

    def get_readonly_fields(self, request: HttpRequest, obj: Study | None = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        return fields + DESIGN_FIELDS if design_is_frozen(obj) else fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Study]:
        real = Q(participants__is_pilot=False)
        return (
            super()
            .get_queryset(request)
            .annotate(
                consented=Count("participants", filter=real & Q(participants__consented_at__isnull=False)),
                completed=Count("participants", filter=real & Q(participants__step=Participant.Step.DONE)),
            )
        )

    @admin.display(description="consented", ordering="consented")
    def n_consented(self, study: Study) -> int:
        return study.consented

    @admin.display(description="completed", ordering="completed")
    def n_completed(self, study: Study) -> int:
        return study.completed

    @admin.display(description="links")
    def links(self, study: Study) -> str:
        if not study.pk:
            return "-"
        urls = selectors.study_links(study=study, base_url="")
        participants = reverse("admin:study_participant_changelist") + f"?study__id__exact={study.pk}"
        ratings = reverse("admin:study_rating_changelist") + f"?trial__participant__study__id__exact={study.pk}"
        monitor = reverse("admin:study_study_monitor", args=[study.pk])
        ops = reverse("admin:study_study_participant_ops", args=[study.pk])
        return format_html(
            '<a href="{}">monitor</a> · <a href="{}" target="_blank">pilot preview</a> · '
            '<a href="{}">participants</a> · <a href="{}">ratings</a> · '
            '<a href="{}">participant operations</a>',
            monitor,
            urls["pilot preview"],
            participants,
            ratings,
            ops,
        )

    @admin.display(description="recruitment URL")
    def recruitment_url(self, study: Study) -> str:
        if not study.pk:
            return "-"
        url = selectors.study_links(study=study, base_url="")["prolific"]
        return format_html("<code>{}</code><br>Prefix with this site's address; Prolific fills in the ids.", url)

    @admin.display(description="ready to publish?")
    def readiness(self, study: Study) -> str:
        if not study.pk:
            return "save first"
        problems = selectors.study_readiness_problems(study=study)
        if not problems:
            return "yes"
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{}</li>", ((p,) for p in problems)))

    @admin.display(description="progress")
    def progress(self, study: Study) -> str:
        if not study.pk:
            return "-"
        return ", ".join(f"{k}: {v}" for k, v in selectors.study_summary(study=study).items())

    @admin.display(description="participants per stimulus")
    def allocation(self, study: Study) -> str:
        if not study.pk:
            return "-"
        pairwise_task = study.task == Study.Task.PAIRWISE
        counts = (
            pairwise.pair_counts(study=study) if pairwise_task else selectors.stimulus_allocation_counts(study=study)
        )
        pool = list(selectors.study_stimuli(study=study).values_list("pk", flat=True))
        if not pool:
            return "no stimuli"
        values = [counts.get(pk, 0) for pk in pool]
        what = "answered comparisons" if pairwise_task else "assigned participants"
        return f"{len(pool)} stimuli; {what} per stimulus: min {min(values)}, max {max(values)}"

    def _export(self, request: HttpRequest, queryset: QuerySet[Study], suffix: str):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one study to export.", messages.WARNING)
            return None
        study = queryset.get()
        # Participant data: written under PRIVATE_ROOT, never the public media, and unlinked once opened, so
        # nothing is left behind after the download.
        folder = private_root() / EXPORTS_DIR
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = Path(tempfile.mkdtemp(prefix=f"{study.slug}-", dir=folder)) / f"{study.slug}-ratings{suffix}"
        rows = services.ratings_export(study=study, path=path)
        operations.audit_record(
            action=AuditEntry.Action.EXPORT,
            study=study,
            actor=request.user,
            rows=rows,
            detail={"format": suffix.lstrip(".")},
        )
        handle = path.open("rb")
        path.unlink()
        path.parent.rmdir()
        return FileResponse(handle, as_attachment=True, filename=path.name)

    def has_export_permission(self, request: HttpRequest) -> bool:
        """Exports and reports are participant data: the same permissions as reading report files."""
        return can_read_study_files(user=request.user, study=None)

    @admin.action(description="Export ratings (CSV, long format)", permissions=["export"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Study]):
        return self._export(request, queryset, ".csv")

    @admin.action(description="Export ratings (Parquet)", permissions=["export"])
    def export_parquet(self, request: HttpRequest, queryset: QuerySet[Study]):
        return self._export(request, queryset, ".parquet")

    @admin.action(description="Generate report (analysis, runs as a Celery task)", permissions=["export"])
    def generate_report(self, request: HttpRequest, queryset: QuerySet[Study]) -> None:
        for study in queryset:
            try:
                report = services.study_report_request(study=study, actor=request.user)
            except SetupError as exc:
                self.message_user(request, f"{study.slug}: {exc}", messages.ERROR)
                return
            url = reverse("admin:study_studyreport_change", args=[report.pk])
            self.message_user(
                request,
                format_html('Report for {} queued: <a href="{}">follow its state here</a>.', study.slug, url),
                messages.INFO,
            )


class ReadOnlyAdmin(admin.ModelAdmin):
    """Participant data are written only by the participant flow; the admin shows them."""

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class QuestionnaireInline(admin.StackedInline):
    model = QuestionnaireResponse
    can_delete = False
    readonly_fields = ["age_band", "gender", "art_training", "art_expertise", "comment", "created_at"]

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class TrialInline(admin.TabularInline):
    model = Trial
    can_delete = False
    fields = [
        "index",
        "kind",
        "stimulus_link",
        "dimensions",
        "block",
        "expected_value",
        "attention_passed",
        "shown_at",
        "answered_at",
        "rt_ms",
        "shown_count",
        "answers",
    ]
    readonly_fields = fields
    ordering = ["index"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Trial]:
        return (
            super()
            .get_queryset(request)
            .select_related("stimulus", "stimulus_right")
            .prefetch_related("ratings__dimension", "choices__dimension")
        )

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(description="stimulus")
    def stimulus_link(self, trial: Trial) -> str:
        if trial.stimulus_right_id:  # a pair: left vs right
            return format_html(
                "{} ({}) vs {} ({})",
                trial.stimulus.public_id,
                trial.stimulus.condition,
                trial.stimulus_right.public_id,
                trial.stimulus_right.condition,
            )
        return format_html("{} ({})", trial.stimulus.public_id, trial.stimulus.condition)

    @admin.display(description="answers")
    def answers(self, trial: Trial) -> str:
        return ", ".join(
            [f"{r.dimension.name}={r.value:g}" for r in trial.ratings.all()]
            + [f"{c.dimension.name}={c.side}" for c in trial.choices.all()]
        )


@admin.register(Participant)
class ParticipantAdmin(ReadOnlyAdmin):
    list_display = [
        "short_pseudonym",
        "study",
        "step",
        "position",
        "is_pilot",
        "group",
        "attention_failures",
        "started_at",
        "completed_at",
    ]
    list_filter = ["study", "step", "is_pilot", "group"]
    search_fields = ["pseudonym", "public_id"]
    readonly_fields = [
        "study",
        "pseudonym",
        "source",
        "recruitment",
        "is_pilot",
        "step",
        "position",
        "seed",
        "group",
        "attention_failures",
        "user_agent",
        "started_at",
        "consented_at",
        "completed_at",
        "released_at",
        "screened_out_at",
        "withdrawn_at",
    ]
    exclude = ["public_id"]
    inlines = [QuestionnaireInline, TrialInline]
    actions = ["release"]

    @admin.action(description="Release as abandoned (returned / timed out): stop counting them for balance and quota")
    def release(self, request: HttpRequest, queryset: QuerySet[Participant]) -> None:
        count = services.participants_release(participants=queryset)
        study_ids = set(queryset.values_list("study_id", flat=True))
        study = Study.objects.get(pk=study_ids.pop()) if len(study_ids) == 1 else None
        operations.audit_record(
            action=AuditEntry.Action.RELEASE,
            study=study,
            actor=request.user,
            rows=count,
            detail={"reason": "admin action"},
        )
        self.message_user(request, f"Released {count} participant(s); completed and declined ones are never released.")

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[Participant], search_term: str):
        """Also find a participant by recruitment id (e.g. a Prolific ID): hash the query as entry does."""
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        hashes = operations.recruitment_pseudonyms(external_id=search_term)
        if hashes:
            results = results | queryset.filter(pseudonym__in=hashes)
        return results, may_have_duplicates

    @admin.display(description="participant", ordering="pseudonym")
    def short_pseudonym(self, participant: Participant) -> str:
        return participant.pseudonym[:12]


@admin.register(Rating)
class RatingAdmin(ReadOnlyAdmin):
    list_display = [
        "participant",
        "trial_index",
        "kind",
        "stimulus",
        "condition",
        "dimension",
        "value",
        "rt_ms",
        "created_at",
    ]
    list_filter = [
        "trial__participant__study",
        "dimension__name",
        "trial__kind",
        "trial__stimulus__condition",
        "trial__participant__is_pilot",
    ]
    list_select_related = ["trial__participant", "trial__stimulus", "dimension"]
    readonly_fields = ["trial", "dimension", "value", "rt_ms", "created_at"]

    @admin.display(description="participant")
    def participant(self, rating: Rating) -> str:
        return rating.trial.participant.pseudonym[:12]

    @admin.display(description="trial", ordering="trial__index")
    def trial_index(self, rating: Rating) -> int:
        return rating.trial.index

    @admin.display(description="kind")
    def kind(self, rating: Rating) -> str:
        return rating.trial.kind

    @admin.display(description="stimulus")
    def stimulus(self, rating: Rating) -> str:
        return rating.trial.stimulus.public_id

    @admin.display(description="condition")
    def condition(self, rating: Rating) -> str:
        return rating.trial.stimulus.condition


REPORT_STATES = {
    StudyReport.Status.PENDING: "queued",
    StudyReport.Status.RUNNING: "running",
    StudyReport.Status.DONE: "done",
    StudyReport.Status.FAILED: "failed",
}
REPORT_FIRST = ["report.html"]  # what a researcher opens; the tables and figures follow


@admin.register(Choice)
class ChoiceAdmin(ReadOnlyAdmin):
    list_display = ["trial", "dimension", "side", "chosen", "rt_ms", "posterior_seq", "created_at"]
    list_filter = ["trial__participant__study", "dimension__name", "side", "trial__kind"]
    list_select_related = ["trial__participant__study", "dimension", "chosen"]
    readonly_fields = ["trial", "dimension", "side", "chosen", "rt_ms", "posterior_seq", "created_at"]


@admin.register(StudyReport)
class StudyReportAdmin(ReadOnlyAdmin):
    list_display = ["study", "state", "created_at", "finished_at", "stale_since", "short_error"]
    list_filter = ["status", "study"]
    readonly_fields = [
        "study",
        "state",
        "stale_since",
        "notes",
        "file_links",
        "error",
        "celery_task_id",
        "created_at",
        "finished_at",
    ]

    @admin.display(description="state", ordering="status")
    def state(self, report: StudyReport) -> str:
        label = REPORT_STATES.get(report.status, report.status)
        if report.status in {StudyReport.Status.PENDING, StudyReport.Status.RUNNING}:
            where = "a worker thread of the web process" if report.celery_task_id.startswith("thread-") else "Celery"
            return format_html('<span data-report-state="{}">{}</span> (on {}; reload to follow)', label, label, where)
        return format_html('<span data-report-state="{}">{}</span>', label, label)

    @admin.display(description="message")
    def short_error(self, report: StudyReport) -> str:
        """The error's first line for a failed report, what was skipped for a finished one."""
        text = (report.error or report.notes).strip()
        return text.splitlines()[0][:160] if text else ""

    @admin.display(description="files")
    def file_links(self, report: StudyReport) -> str:
        if not report.files:
            return "-"
        # Through the staff-only view: the files hold participant data and are not under the public media.
        files = sorted(report.files, key=lambda name: (name not in REPORT_FIRST, name))
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                '<li><a href="{}" target="_blank" rel="noopener">{}</a></li>',
                ((report_file_url(report=report, name=name), name) for name in files),
            ),
        )
