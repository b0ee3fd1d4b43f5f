"""Where files derived from participants live (PRIVATE_ROOT, never the public MEDIA_ROOT) and who may read them.

Reports and exports hold pseudonyms, free-text comments and the image → condition map. They are written under
settings.PRIVATE_ROOT and read only through `study.staff_views.report_file`, which asks `can_read_study_files`.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.urls import reverse

from study.models import Study, StudyReport

REPORTS_DIR = "reports"
EXPORTS_DIR = "exports"
# Model permissions that let a staff member read a study's participant-derived files.
READ_PERMISSIONS = ("study.view_study", "study.view_studyreport")


def private_root() -> Path:
    return Path(settings.PRIVATE_ROOT)


def report_folder(*, report: StudyReport) -> str:
    """The report's folder relative to PRIVATE_ROOT (what StudyReport.folder stores)."""
    return f"{REPORTS_DIR}/{report.study.slug}-{report.pk}"


def report_file_path(*, report: StudyReport, name: str) -> Path | None:
    """The file if the report lists it; anything else (other names, `..`) is None."""
    if not report.folder or name not in (report.files or []):
        return None
    folder = (private_root() / report.folder).resolve()
    path = (folder / name).resolve()
    if not path.is_relative_to(folder) or not path.is_file():
        return None
    return path


def report_file_url(*, report: StudyReport, name: str, base_url: str = "") -> str:
    return base_url.rstrip("/") + reverse("report_file", kwargs={"report_id": report.pk, "name": name})


def can_read_study_files(*, user, study: Study | None) -> bool:
    """Active staff with the view permissions on studies and their reports (superusers have them all).

    Permissions are per model today; an object-permission backend answers `has_perm(perm, study)` too.
    """
    if not (user.is_authenticated and user.is_active and user.is_staff):
        return False
    return all(user.has_perm(p) or (study is not None and user.has_perm(p, study)) for p in READ_PERMISSIONS)
