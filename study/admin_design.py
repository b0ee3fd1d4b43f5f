"""Admin views for setting up a study: status buttons on its page, cloning, structured design widgets."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse

from config.errors import SetupError
from study import authoring, services
from study.models import Study

# The buttons on a study's page, in the order a study goes through them.
STATUS_BUTTONS = [
    (Study.Status.PILOT, "Start pilot"),
    (Study.Status.LIVE, "Publish"),
    (Study.Status.PAUSED, "Pause"),
    (Study.Status.CLOSED, "Close"),
]


def conditions_field(*, current: list[str]) -> forms.MultipleChoiceField:
    """Tick boxes for the conditions present in any stimulus set (plus any already chosen)."""
    from generation.models import Stimulus

    rows = Stimulus.objects.values_list("condition", "stimulus_set__name").distinct()
    sets: dict[str, set[str]] = {}
    for condition, set_name in rows:
        sets.setdefault(condition, set()).add(set_name)
    for condition in current or []:
        sets.setdefault(condition, set())
    choices = [(c, f"{c} ({', '.join(sorted(sets[c])) or 'in no set'})") for c in sorted(sets)]
    return forms.MultipleChoiceField(
        choices=choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every condition of the chosen stimulus sets.",
    )


def languages_field() -> forms.MultipleChoiceField:
    return forms.MultipleChoiceField(
        choices=settings.LANGUAGES,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Languages of the participant pages; a participant gets their browser's language if it is "
        "ticked, else the first ticked one. None ticked: English.",
    )


class CloneForm(forms.Form):
    slug = forms.SlugField(max_length=100, help_text="Name of the new study (in its link).")
    title = forms.CharField(max_length=200, required=False)


def design_admin_urls(model_admin) -> list:
    view = model_admin.admin_site.admin_view
    return [
        path(
            "<int:pk>/set-status/<str:status>/",
            view(lambda request, pk, status: status_view(model_admin, request, pk, status)),
            name="study_study_set_status",
        ),
        path(
            "<int:pk>/clone/", view(lambda request, pk: clone_view(model_admin, request, pk)), name="study_study_clone"
        ),
    ]


def status_view(model_admin, request: HttpRequest, pk: int, status: str) -> HttpResponse:
    """A status button: publishing or piloting runs the readiness check and says what is missing."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    study = get_object_or_404(Study, pk=pk)
    if not model_admin.has_change_permission(request, study):
        return HttpResponse(status=403)
    try:
        services.study_set_status(study=study, status=status)
    except SetupError as exc:
        model_admin.message_user(request, f"{study.slug}: {exc}", messages.ERROR)
    else:
        model_admin.message_user(
            request, f"{study.slug} is now {study.get_status_display().lower()}.", messages.SUCCESS
        )
    return HttpResponseRedirect(reverse("admin:study_study_change", args=[study.pk]))


def clone_view(model_admin, request: HttpRequest, pk: int) -> HttpResponse:
    study = get_object_or_404(Study, pk=pk)
    if not model_admin.has_add_permission(request):
        return HttpResponse(status=403)
    form = CloneForm(
        request.POST or None, initial={"slug": f"{study.slug}-copy"[:100], "title": f"{study.title} (copy)"}
    )
    if request.method == "POST" and form.is_valid():
        try:
            clone = authoring.study_clone(study=study, slug=form.cleaned_data["slug"], title=form.cleaned_data["title"])
        except SetupError as exc:
            form.add_error("slug", str(exc).removeprefix("slug: "))
        else:
            model_admin.message_user(
                request, f"Cloned {study.slug} as {clone.slug} (a draft, without participants).", messages.SUCCESS
            )
            return HttpResponseRedirect(reverse("admin:study_study_change", args=[clone.pk]))
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": Study._meta,
        "original": study,
        "form": form,
        "title": f"Clone {study.slug}",
    }
    return TemplateResponse(request, "admin/study/study/clone.html", context)
