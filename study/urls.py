"""Participant-facing URLs: the recruitment link, the admin's pilot preview, and each participant's page."""

from django.urls import path

from study import views

app_name = "study"
urlpatterns = [
    path("s/<slug:slug>/", views.study_entry, name="entry"),
    path("s/<slug:slug>/preview/<str:token>/", views.study_preview, name="preview"),
    path("s/<slug:slug>/p/<str:participant_id>/", views.participant_page, name="page"),
]
