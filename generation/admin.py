"""Admin: stimulus sets (with a contact sheet), stimuli with thumbnails/recipe/descriptors, render jobs."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from config.errors import SetupError
from generation.builds import stimuli_import_zip, stimulus_set_build_state, stimulus_set_request_build
from generation.forms import StimulusSetUploadForm
from generation.latents import condition_summary, stimulus_label, stimulus_order
from generation.models import RenderJob, Stimulus, StimulusSet
from generation.services import UNTRAINED_LABEL, render_job_retry, runs_in_process
from generation.spec import parse_spec


def _thumbnail(stimulus: Stimulus, size: int = 64) -> str:
    if not stimulus.image:
        return "—"
    return format_html('<img src="{}" width="{}" height="{}" alt="">', stimulus.image.url, size, size)


def _pretty_json(value: object) -> str:
    return format_html('<pre class="pretty-json">{}</pre>', json.dumps(value, indent=2, sort_keys=True))


class ProjectStyles:
    css = {"all": ["generation/admin.css"]}


@admin.register(StimulusSet)
class StimulusSetAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "source",
        "model_id",
        "weights",
        "stimulus_count",
        "build_state",
        "contact_sheet_link",
        "created_at",
    ]
    list_filter = ["source", "untrained"]
    search_fields = ["name", "model_id", "description"]
    readonly_fields = ["build_state", "weights", "spec_pretty", "contact_sheet_link", "created_at"]
    exclude = ["spec", "build_status", "build_error"]
    actions = ["render_again"]

    class Media:
        css = ProjectStyles.css
        js = ["generation/build_state.js"]

    @admin.display(description="build")
    def build_state(self, obj: StimulusSet) -> str:
        if not obj.pk:
            return "—"
        state = stimulus_set_build_state(stimulus_set=obj)
        words = state.state or "made by a command"
        if state.total:
            words += f" · {state.done} of {state.total} images"
        if state.error:
            words += f" · {state.error}"
        return format_html(
            '<span data-build-state="{}" data-build-state-url="{}"><span data-build-text>{}</span></span>',
            state.state,
            reverse("admin:generation_stimulusset_build_state", args=[obj.pk]),
            words,
        )

    def build_state_json(self, request: HttpRequest, pk: int) -> JsonResponse:
        stimulus_set = get_object_or_404(StimulusSet, pk=pk)
        return JsonResponse(stimulus_set_build_state(stimulus_set=stimulus_set).as_dict())

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None) -> HttpResponse:
        """Adding a set means uploading what it is made of; an empty record would be useless."""
        if not self.has_add_permission(request):
            return HttpResponse(status=403)
        form = StimulusSetUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                if form.parsed_spec is not None:
                    stimulus_set = stimulus_set_request_build(spec=form.parsed_spec)
                    self.message_user(
                        request, f"Set {stimulus_set.name}: rendering queued; progress below.", messages.SUCCESS
                    )
                else:
                    data = form.cleaned_data
                    created, skipped = stimuli_import_zip(
                        archive=data["archive"],
                        archive_name=data["archive"].name,
                        set_name=data["name"],
                        labels=data.get("labels"),
                    )
                    stimulus_set = StimulusSet.objects.get(name=data["name"])
                    self.message_user(
                        request,
                        f"Set {stimulus_set.name}: imported {created} images, {skipped} already there.",
                        messages.SUCCESS,
                    )
            except SetupError as exc:
                form.add_error(None, str(exc))
            else:
                return HttpResponseRedirect(reverse("admin:generation_stimulusset_change", args=[stimulus_set.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "form": form,
            "title": "Add stimulus set",
        }
        return TemplateResponse(
            request,
            "admin/generation/stimulusset/upload.html",
            context,
            status=400 if request.method == "POST" else 200,
        )

    @admin.action(description="Render missing stimuli again (from the set's design file)")
    def render_again(self, request: HttpRequest, queryset) -> None:
        for stimulus_set in queryset:
            try:
                if stimulus_set.source != StimulusSet.Source.RENDERED or not stimulus_set.spec:
                    raise SetupError("it has no design file (imported images)")
                stimulus_set_request_build(spec=parse_spec(stimulus_set.spec))
            except SetupError as exc:
                self.message_user(request, f"{stimulus_set.name}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{stimulus_set.name}: rendering queued", messages.SUCCESS)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(n_stimuli=Count("stimuli"))

    @admin.display(description="stimuli", ordering="n_stimuli")
    def stimulus_count(self, obj: StimulusSet) -> int:
        return getattr(obj, "n_stimuli", None) or obj.stimuli.count()

    @admin.display(description="weights")
    def weights(self, obj: StimulusSet) -> str:
        if obj.untrained:
            return format_html('<strong class="untrained-label">{}</strong>', UNTRAINED_LABEL)
        return obj.weights_sha256[:12] or "—"

    @admin.display(description="design file")
    def spec_pretty(self, obj: StimulusSet) -> str:
        return _pretty_json(obj.spec)

    @admin.display(description="contact sheet")
    def contact_sheet_link(self, obj: StimulusSet) -> str:
        if not obj.pk:
            return "—"
        return format_html(
            '<a href="{}">conditions x classes</a>',
            reverse("admin:generation_stimulusset_contact_sheet", args=[obj.pk]),
        )

    def get_urls(self):
        return [
            path(
                "<int:pk>/contact-sheet/",
                self.admin_site.admin_view(self.contact_sheet),
                name="generation_stimulusset_contact_sheet",
            ),
            path(
                "<int:pk>/build-state/",
                self.admin_site.admin_view(self.build_state_json),
                name="generation_stimulusset_build_state",
            ),
            *super().get_urls(),
        ]

    def contact_sheet(self, request: HttpRequest, pk: int) -> HttpResponse:
        stimulus_set = get_object_or_404(StimulusSet, pk=pk)
        # Generator stimuli in recipe order (walk frames by t), optimisation snapshots by iteration.
        stimuli = sorted(
            stimulus_set.stimuli.all(),
            key=lambda s: ((s.labels or {}).get("iteration", 0), stimulus_order(s.recipe), s.public_id),
        )
        for s in stimuli:
            s.label = stimulus_label(s.recipe) if s.recipe.get("model") else s.condition
        spec_order = [c.get("name") for c in (stimulus_set.spec or {}).get("conditions", []) if isinstance(c, dict)]
        conditions = [c for c in spec_order if any(s.condition == c for s in stimuli)]
        conditions += sorted({s.condition for s in stimuli} - set(conditions))
        classes = sorted({s.class_index for s in stimuli}, key=lambda c: (c is None, c if c is not None else 0))
        names = {s.class_index: s.class_name for s in stimuli}
        kinds = condition_kinds(stimulus_set.spec)
        rows = [
            {
                "condition": condition,
                "kind": kinds.get(condition, ""),
                "summary": next(
                    (
                        condition_summary(s.recipe)
                        for s in stimuli
                        if s.condition == condition and s.recipe.get("model")
                    ),
                    "",
                ),
                "cells": [[s for s in stimuli if s.condition == condition and s.class_index == c] for c in classes],
            }
            for condition in conditions
        ]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Contact sheet: {stimulus_set}",
            "stimulus_set": stimulus_set,
            "untrained_label": UNTRAINED_LABEL,
            "columns": [{"index": c, "name": names.get(c, "")} for c in classes],
            "rows": rows,
        }
        return TemplateResponse(request, "admin/generation/stimulusset/contact_sheet.html", context)


def condition_kinds(spec: dict) -> dict[str, str]:
    """Each condition's kind as the design file states it: baseline, multiplicative, semantic, style-transfer,
    deepdream."""
    kinds = {}
    for condition in (spec or {}).get("conditions", []):
        if not isinstance(condition, dict):
            continue
        if "style_transfer" in condition:
            kind = "style-transfer"
        elif "deepdream" in condition:
            kind = "deepdream"
        else:
            kind = (condition.get("perturbation") or {}).get("kind") or "baseline"
        kinds[str(condition.get("name"))] = kind
    return kinds


class ClassIndexFilter(admin.SimpleListFilter):
    title = "class"
    parameter_name = "class_index"

    def lookups(self, request, model_admin):
        pairs = Stimulus.objects.exclude(class_index=None).values_list("class_index", "class_name").distinct()
        return sorted({(str(i), f"{i} {n}".strip()) for i, n in pairs}, key=lambda p: int(p[0]))

    def queryset(self, request, queryset):
        return queryset.filter(class_index=int(self.value())) if self.value() else queryset


@admin.register(Stimulus)
class StimulusAdmin(admin.ModelAdmin):
    Media = ProjectStyles
    list_display = [
        "thumbnail",
        "public_id",
        "stimulus_set",
        "condition",
        "class_index",
        "class_name",
        "seed",
        "epsilon",
        "draw",
    ]
    list_filter = ["stimulus_set", "condition", ClassIndexFilter, "draw"]
    search_fields = ["public_id", "recipe_id", "class_name", "condition"]
    list_select_related = ["stimulus_set"]
    readonly_fields = [
        "preview",
        "public_id",
        "recipe_pretty",
        "descriptors_table",
        "provenance_pretty",
        "recipe_id",
        "sha256",
        "width",
        "height",
        "created_at",
    ]
    # Images enter a set only by rendering or import_stimuli, which store them uniformly (generation.files); an
    # upload here would keep its own format and metadata and could tell its condition apart.
    exclude = ["recipe", "descriptors", "provenance", "image"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="image")
    def thumbnail(self, obj: Stimulus) -> str:
        return _thumbnail(obj)

    @admin.display(description="image")
    def preview(self, obj: Stimulus) -> str:
        return _thumbnail(obj, size=obj.width or 256)

    @admin.display(description="recipe")
    def recipe_pretty(self, obj: Stimulus) -> str:
        return _pretty_json(obj.recipe)

    @admin.display(description="provenance")
    def provenance_pretty(self, obj: Stimulus) -> str:
        return _pretty_json(obj.provenance)

    @admin.display(description="descriptors")
    def descriptors_table(self, obj: Stimulus) -> str:
        rows = format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", sorted(obj.descriptors.items()))
        return format_html("<table>{}</table>", rows)


@admin.register(RenderJob)
class RenderJobAdmin(admin.ModelAdmin):
    list_display = ["id", "stimulus_set", "status", "progress", "attempts", "short_error", "created_at", "finished_at"]
    list_filter = ["status", "stimulus_set"]
    readonly_fields = [
        "stimulus_set",
        "status",
        "total",
        "done",
        "error",
        "celery_task_id",
        "attempts",
        "created_at",
        "started_at",
        "finished_at",
    ]
    exclude = ["payload"]
    actions = ["retry_failed"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Jobs come from rendering a set (upload its design file under Stimulus sets); a bare job has nothing to do.
        return False

    @admin.display(description="progress")
    def progress(self, obj: RenderJob) -> str:
        return f"{obj.done}/{obj.total}"

    @admin.display(description="error")
    def short_error(self, obj: RenderJob) -> str:
        lines = obj.error.strip().splitlines()
        return lines[-1][:120] if lines else ""

    @admin.action(description="Retry selected failed jobs")
    def retry_failed(self, request: HttpRequest, queryset) -> None:
        from config.celery import require_broker
        from config.errors import SetupError

        failed = list(queryset.filter(status=RenderJob.Status.FAILED))
        if not failed:
            self.message_user(request, "none of the selected jobs has failed", messages.WARNING)
            return
        try:
            if not runs_in_process():
                require_broker()
            for job in failed:
                render_job_retry(job=job)
        except SetupError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        where = "rendered now" if runs_in_process() else "queued"
        self.message_user(request, f"{len(failed)} job(s) {where}", messages.SUCCESS)
