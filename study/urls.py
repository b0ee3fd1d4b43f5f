"""Participant-facing URLs: the recruitment link, the admin's pilot preview, and each participant's page."""

from django.urls import path, register_converter

from study import views


class TokenConverter:
    """URL-safe random tokens (models.new_token); anything else is a 404 before any database lookup."""

    regex = r"[A-Za-z0-9_-]{1,64}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(TokenConverter, "token")

app_name = "study"
urlpatterns = [
    path("s/<slug:slug>/", views.study_entry, name="entry"),
    path("s/<slug:slug>/preview/<token:token>/", views.study_preview, name="preview"),
    path("s/<slug:slug>/p/<token:participant_id>/", views.participant_page, name="page"),
]
