"""Celery tasks of the study app: building the analysis report of a study."""

from __future__ import annotations

import traceback

from celery import shared_task
from django.utils import timezone

from study import services
from study.models import StudyReport
from study.private_files import private_root, report_folder


@shared_task(name="study.build_report")
def study_report_build(report_id: int) -> str:
    """Export the study's ratings and run `analysis.build_report` on them.

    The files hold participant data, so they land in PRIVATE_ROOT/reports/, which only staff read (study.staff_views).
    """
    report = StudyReport.objects.select_related("study").get(pk=report_id)
    StudyReport.objects.filter(pk=report_id).update(status=StudyReport.Status.RUNNING)
    folder = report_folder(report=report)
    out_dir = private_root() / folder
    from analysis import build_report  # the analysis package is optional for the survey itself
    from analysis.report import ReportError

    try:
        out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        ratings_file = out_dir / "ratings.csv"
        services.ratings_export(study=report.study, path=ratings_file)
        # The report reads exactly the file a researcher would download, so both always agree.
        outcome = build_report(ratings_file, out_dir, **report.options)
    except ReportError as exc:  # nothing could be written: the one-line reason is all a researcher needs
        StudyReport.objects.filter(pk=report_id).update(
            status=StudyReport.Status.FAILED, finished_at=timezone.now(), error=str(exc)
        )
        return "failed"
    except Exception as exc:  # noqa: BLE001 - any failure is reported on the report row, where researchers look
        StudyReport.objects.filter(pk=report_id).update(
            status=StudyReport.Status.FAILED,
            finished_at=timezone.now(),
            error=f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()[-4000:]}",
        )
        return "failed"
    files = sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*") if p.is_file())
    StudyReport.objects.filter(pk=report_id).update(
        status=StudyReport.Status.DONE,
        folder=folder,
        files=files,
        finished_at=timezone.now(),
        error="",
        notes="" if outcome.complete else outcome.message(),
    )
    return "done"


@shared_task(name="study.release_idle_participants")
def study_release_idle_participants() -> dict[str, int]:
    """Periodic (Celery beat): release participants idle past their study's time limit. Assignment does it too."""
    from study.operations import studies_release_idle

    return studies_release_idle()
