"""Participant-facing URLs."""


app_name = "study"
urlpatterns: list = []
