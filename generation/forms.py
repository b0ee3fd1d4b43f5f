"""The admin's "Add stimulus set" form: a design file to render, or a ZIP of images with labels to import."""

from __future__ import annotations

from django import forms

from config.errors import SetupError
from generation.builds import spec_from_upload
from generation.spec import StimulusSpec


class StimulusSetUploadForm(forms.Form):
    spec = forms.FileField(
        required=False,
        label="Design file (YAML)",
        help_text="As for <code>render_set</code>: name, model, classes, seeds, conditions. Rendered by a task; "
        "follow the progress on the set's page.",
    )
    archive = forms.FileField(
        required=False,
        label="or: images (ZIP)",
        help_text="A ZIP of images with a labels CSV (columns <code>filename</code>, <code>condition</code>, any "
        "others become labels), as for <code>import_stimuli</code>.",
    )
    labels = forms.FileField(required=False, label="Labels CSV", help_text="Only if it is not inside the ZIP.")
    name = forms.SlugField(required=False, label="Set name", help_text="For a ZIP import.")

    def clean(self) -> dict:
        data = super().clean()
        spec_file, archive = data.get("spec"), data.get("archive")
        if bool(spec_file) == bool(archive):
            raise forms.ValidationError("Upload either a design file or a ZIP of images.")
        if spec_file:
            try:
                data["parsed_spec"] = spec_from_upload(data=spec_file.read(), file_name=spec_file.name)
            except SetupError as exc:
                self.add_error("spec", str(exc))
        elif not data.get("name"):
            self.add_error("name", "A ZIP import needs a set name.")
        return data

    @property
    def parsed_spec(self) -> StimulusSpec | None:
        return self.cleaned_data.get("parsed_spec")
