"""URL map: admin, health check, the participant pages (study app), and media in local set-ups."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.static import serve

from config.health import healthz

admin.site.site_header = "Aesthetics studies"
admin.site.site_title = "Aesthetics studies"

# Bad requests, foreign pages and unknown addresses get the participants' calm page, not Django's default.
handler400 = "study.error_pages.bad_request"
handler403 = "study.error_pages.permission_denied"
handler404 = "study.error_pages.page_not_found"

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("", include("study.urls")),
]

if settings.SERVE_MEDIA:
    urlpatterns += [
        re_path(r"^media/(?P<path>.*)$", serve, {"document_root": settings.MEDIA_ROOT}),
    ]
