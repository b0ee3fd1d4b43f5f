"""Staff-only downloads of participant-derived files (reports), checked here and sent by django-sendfile2.

Anonymous visitors get 404 (nothing confirms that a report exists), signed-in users without permission on
the study 403. With the nginx backend the proxy sends the bytes (X-Accel-Redirect to an `internal` location).
"""

from __future__ import annotations

from csp.decorators import csp_replace
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from django_sendfile import sendfile

from study.models import StudyReport
from study.private_files import can_read_study_files, report_file_path

# The report is a self-contained HTML file with inline CSS and data: images; it runs no script, ever.
REPORT_CSP = {
    "default-src": ["'none'"],
    "style-src": ["'unsafe-inline'"],
    "img-src": ["'self'", "data:"],
    "script-src": ["'none'"],
    "sandbox": True,
}


@never_cache
@require_safe
@csp_replace(REPORT_CSP)
def report_file(request: HttpRequest, report_id: int, name: str) -> HttpResponse:
    if not request.user.is_authenticated:
        raise Http404("no such file")
    report = StudyReport.objects.select_related("study").filter(pk=report_id).first()
    if report is None:
        raise Http404("no such file")
    if not can_read_study_files(user=request.user, study=report.study):
        return HttpResponse(
            "You have no permission to read this study's files.", status=403, content_type="text/plain; charset=utf-8"
        )
    path = report_file_path(report=report, name=name)
    if path is None:
        raise Http404("no such file")
    response = sendfile(request, str(path), attachment=path.suffix != ".html", attachment_filename=path.name)
    response["X-Robots-Tag"] = "noindex"
    return response
