"""URL map: admin, health check, staff file downloads, the participant pages, and stimulus images."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path

from config.health import healthz
from generation.views import stimulus_image
from study.staff_views import report_file

admin.site.site_header = "Aesthetics studies"
admin.site.site_title = "Aesthetics studies"

# Bad requests, foreign pages and unknown addresses get the participants' calm page, not Django's default.
handler400 = "study.error_pages.bad_request"
handler403 = "study.error_pages.permission_denied"
handler404 = "study.error_pages.page_not_found"
# A calm page during an outage; it says the answers given so far are safe (config/error_views.py).
handler500 = "config.error_views.server_error"

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("staff/reports/<int:report_id>/<path:name>", report_file, name="report_file"),
    path("", include("study.urls")),
]

if settings.SERVE_MEDIA:
    # Only stimulus images are public, each through a view whose headers carry nothing but the bytes' hash.
    media = settings.MEDIA_URL.strip("/")
    urlpatterns += [re_path(rf"^{media}/stimuli/(?P<name>[^/]+)$", stimulus_image, name="stimulus_image")]
