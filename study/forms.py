"""The post-study questionnaire: short, every question answerable with "prefer not to say"."""

from __future__ import annotations

from django import forms

AGE_BANDS = [("18-24", "18 to 24"), ("25-34", "25 to 34"), ("35-44", "35 to 44"), ("45-54", "45 to 54"),
             ("55-64", "55 to 64"), ("65+", "65 or older"), ("na", "Prefer not to say")]
GENDERS = [("woman", "Woman"), ("man", "Man"), ("non-binary", "Non-binary"), ("other", "Another gender"),
           ("na", "Prefer not to say")]
ART_TRAINING = [("none", "None"), ("some", "Some courses or self-taught practice"),
                ("degree", "A degree in art, design or art history"), ("professional", "I work in the arts"),
                ("na", "Prefer not to say")]
EXPERTISE = [(str(i), str(i)) for i in range(1, 8)]


class QuestionnaireForm(forms.Form):
    age_band = forms.ChoiceField(label="Your age", choices=AGE_BANDS, widget=forms.RadioSelect)
    gender = forms.ChoiceField(label="Your gender", choices=GENDERS, widget=forms.RadioSelect)
    art_training = forms.ChoiceField(label="Your training in art", choices=ART_TRAINING, widget=forms.RadioSelect)
    art_expertise = forms.TypedChoiceField(
        label="How knowledgeable about art are you? (1 = not at all, 7 = expert)", choices=EXPERTISE, coerce=int,
        widget=forms.RadioSelect,
    )
    comment = forms.CharField(label="Any comments? (optional)", required=False, max_length=2000,
                              widget=forms.Textarea(attrs={"rows": 3}))
