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
from study import pairwise, selectors, services
from study.models import Choice, Participant, QuestionnaireResponse, Rating, RatingDimension, Study, StudyReport, Trial

DESIGN_FIELDS = ["stimulus_sets", "conditions", "layout", "between_factor", "trials_per_participant", "practice_trials",
                 "attention_checks", "max_run_length", "task", "pair_design", "pairs_per_participant",
                 "pair_within_fraction", "pair_allow_tie"]


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
                services.study_set_status(study=study, status=status)
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
    readonly_fields = ["status", "links", "recruitment_url", "readiness", "progress", "allocation", "pilot_token",
                       "published_at", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["slug", "title", "status", "links", "recruitment_url", "readiness", "progress"]}),
        ("Texts", {"fields": ["consent_text", "instructions", "debrief"]}),
        ("Stimuli and design", {"fields": ["stimulus_sets", "conditions", "layout", "between_factor",
                                           "trials_per_participant", "practice_trials", "attention_checks",
                                           "max_run_length", "allocation"]}),
        ("Pairwise comparisons (task: pairwise)", {"fields": ["task", "pair_design", "pairs_per_participant",
                                                              "pair_within_fraction", "pair_allow_tie"]}),
        ("Recruitment", {"fields": ["max_participants", "completion_code", "completion_url_template",
                                    "no_consent_url", "languages"]}),
        ("Record", {"classes": ["collapse"], "fields": ["pilot_token", "published_at", "created_at", "updated_at"]}),
    ]
    actions = [
        _status_action(Study.Status.LIVE, "Publish (go live; refused with what is missing if not ready)"),
        _status_action(Study.Status.PILOT, "Start pilot (participants flagged, outside quotas)"),
        _status_action(Study.Status.PAUSED, "Pause (no new participants; started ones may finish)"),
        _status_action(Study.Status.CLOSED, "Close"),
        "export_csv", "export_parquet", "generate_report",
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: Study | None = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        return fields + DESIGN_FIELDS if design_is_frozen(obj) else fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Study]:
        real = Q(participants__is_pilot=False)
        return super().get_queryset(request).annotate(
            consented=Count("participants", filter=real & Q(participants__consented_at__isnull=False)),
            completed=Count("participants", filter=real & Q(participants__step=Participant.Step.DONE)),
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
        return format_html('<a href="{}" target="_blank">pilot preview</a> · <a href="{}">participants</a> · '
                           '<a href="{}">ratings</a>', urls["pilot preview"], participants, ratings)

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
        counts = (pairwise.pair_counts(study=study) if pairwise_task
                  else selectors.stimulus_allocation_counts(study=study))
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
        path = Path(tempfile.mkdtemp(prefix="export-")) / f"{study.slug}-ratings{suffix}"
        services.ratings_export(study=study, path=path)
        return FileResponse(path.open("rb"), as_attachment=True, filename=path.name)

    @admin.action(description="Export ratings (CSV, long format)")
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Study]):
        return self._export(request, queryset, ".csv")

    @admin.action(description="Export ratings (Parquet)")
    def export_parquet(self, request: HttpRequest, queryset: QuerySet[Study]):
        return self._export(request, queryset, ".parquet")

    @admin.action(description="Generate report (analysis, runs as a Celery task)")
    def generate_report(self, request: HttpRequest, queryset: QuerySet[Study]) -> None:
        for study in queryset:
            try:
                report = services.study_report_request(study=study)
            except SetupError as exc:
                self.message_user(request, f"{study.slug}: {exc}", messages.ERROR)
                return
            url = reverse("admin:study_studyreport_change", args=[report.pk])
            self.message_user(request, format_html('Report for {} queued: <a href="{}">follow it here</a>.',
                                                   study.slug, url), messages.SUCCESS)


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
    fields = ["index", "kind", "stimulus_link", "dimensions", "block", "expected_value", "attention_passed",
              "shown_at", "answered_at", "rt_ms", "shown_count", "answers"]
    readonly_fields = fields
    ordering = ["index"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Trial]:
        return super().get_queryset(request).select_related("stimulus", "stimulus_right").prefetch_related(
            "ratings__dimension", "choices__dimension")

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(description="stimulus")
    def stimulus_link(self, trial: Trial) -> str:
        if trial.stimulus_right_id:  # a pair: left vs right
            return format_html("{} ({}) vs {} ({})", trial.stimulus.public_id, trial.stimulus.condition,
                               trial.stimulus_right.public_id, trial.stimulus_right.condition)
        return format_html("{} ({})", trial.stimulus.public_id, trial.stimulus.condition)

    @admin.display(description="answers")
    def answers(self, trial: Trial) -> str:
        return ", ".join([f"{r.dimension.name}={r.value:g}" for r in trial.ratings.all()]
                         + [f"{c.dimension.name}={c.side}" for c in trial.choices.all()])


@admin.register(Participant)
class ParticipantAdmin(ReadOnlyAdmin):
    list_display = ["short_pseudonym", "study", "step", "position", "is_pilot", "group", "attention_failures",
                    "started_at", "completed_at"]
    list_filter = ["study", "step", "is_pilot", "group"]
    search_fields = ["pseudonym", "public_id"]
    readonly_fields = ["study", "pseudonym", "source", "recruitment", "is_pilot", "step", "position", "seed", "group",
                       "attention_failures", "user_agent", "started_at", "consented_at", "completed_at",
                       "released_at"]
    exclude = ["public_id"]
    inlines = [QuestionnaireInline, TrialInline]
    actions = ["release"]

    @admin.action(description="Release as abandoned (returned / timed out): stop counting them for balance and quota")
    def release(self, request: HttpRequest, queryset: QuerySet[Participant]) -> None:
        count = services.participants_release(participants=queryset)
        self.message_user(request, f"Released {count} participant(s); completed and declined ones are never released.")

    @admin.display(description="participant", ordering="pseudonym")
    def short_pseudonym(self, participant: Participant) -> str:
        return participant.pseudonym[:12]


@admin.register(Rating)
class RatingAdmin(ReadOnlyAdmin):
    list_display = ["participant", "trial_index", "kind", "stimulus", "condition", "dimension", "value", "rt_ms",
                    "created_at"]
    list_filter = ["trial__participant__study", "dimension__name", "trial__kind", "trial__stimulus__condition",
                   "trial__participant__is_pilot"]
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


@admin.register(Choice)
class ChoiceAdmin(ReadOnlyAdmin):
    list_display = ["trial", "dimension", "side", "chosen", "rt_ms", "posterior_seq", "created_at"]
    list_filter = ["trial__participant__study", "dimension__name", "side", "trial__kind"]
    list_select_related = ["trial__participant__study", "dimension", "chosen"]
    readonly_fields = ["trial", "dimension", "side", "chosen", "rt_ms", "posterior_seq", "created_at"]


@admin.register(StudyReport)
class StudyReportAdmin(ReadOnlyAdmin):
    list_display = ["study", "status", "created_at", "finished_at"]
    list_filter = ["status", "study"]
    readonly_fields = ["study", "status", "file_links", "error", "celery_task_id", "created_at", "finished_at"]

    @admin.display(description="files")
    def file_links(self, report: StudyReport) -> str:
        if not report.files:
            return "-"
        from django.conf import settings

        base = settings.MEDIA_URL if settings.MEDIA_URL.startswith("/") else "/" + settings.MEDIA_URL
        return format_html("<ul>{}</ul>", format_html_join(
            "", '<li><a href="{}{}/{}" target="_blank">{}</a></li>',
            ((base, report.folder, name, name) for name in report.files)))
