"""The post-study questionnaire: short, every question answerable with "prefer not to say"."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

AGE_BANDS = [
    ("18-24", _("18 to 24")),
    ("25-34", _("25 to 34")),
    ("35-44", _("35 to 44")),
    ("45-54", _("45 to 54")),
    ("55-64", _("55 to 64")),
    ("65+", _("65 or older")),
    ("na", _("Prefer not to say")),
]
GENDERS = [
    ("woman", _("Woman")),
    ("man", _("Man")),
    ("non-binary", _("Non-binary")),
    ("other", _("Another gender")),
    ("na", _("Prefer not to say")),
]
ART_TRAINING = [
    ("none", _("None")),
    ("some", _("Some courses or self-taught practice")),
    ("degree", _("A degree in art, design or art history")),
    ("professional", _("I work in the arts")),
    ("na", _("Prefer not to say")),
]
EXPERTISE = [(str(i), str(i)) for i in range(1, 8)]


class QuestionnaireForm(forms.Form):
    age_band = forms.ChoiceField(label=_("Your age"), choices=AGE_BANDS, widget=forms.RadioSelect)
    gender = forms.ChoiceField(label=_("Your gender"), choices=GENDERS, widget=forms.RadioSelect)
    art_training = forms.ChoiceField(label=_("Your training in art"), choices=ART_TRAINING, widget=forms.RadioSelect)
    art_expertise = forms.TypedChoiceField(
        label=_("How knowledgeable about art are you? (1 = not at all, 7 = expert)"),
        choices=EXPERTISE,
        coerce=int,
        widget=forms.RadioSelect,
    )
    comment = forms.CharField(
        label=_("Any comments? (optional)"), required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 3})
    )
