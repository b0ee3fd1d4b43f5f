"""One owner for image counts: `{images}` in texts, the readiness check, and the language list of a study file."""

from __future__ import annotations

import pytest

from study.counts import planned_counts
from study.selectors import study_readiness_problems
from study.spec import StudySpecError, study_spec_parse
from tests.study.factories import make_study


@pytest.mark.django_db
def test_a_text_stating_another_number_of_images_is_a_readiness_problem(stimulus_set):
    study = make_study(
        stimulus_set=stimulus_set,
        trials_per_participant=12,
        attention_checks=2,
        consent_text="You will look at 12 images.",
    )
    assert planned_counts(study=study).main == 14
    problems = study_readiness_problems(study=study)
    assert any("says 12 images but participants see 14" in p and "{images}" in p for p in problems)
    study.consent_text = "You will look at {images} images."
    study.save()
    assert not any("images but participants see" in p for p in study_readiness_problems(study=study))


@pytest.mark.django_db
def test_blocks_layout_counts_every_block(stimulus_set):
    study = make_study(stimulus_set=stimulus_set, layout="blocks", trials_per_participant=4, attention_checks=2)
    assert planned_counts(study=study).main == 4 * 2 + 2


def test_study_file_languages_must_be_available():
    base = {"slug": "s", "title": "T"}
    assert study_spec_parse({**base, "languages": ["de", "en"]}).languages == ["de", "en"]
    with pytest.raises(StudySpecError, match=r"^languages\[1\]: 'fr' is not available"):
        study_spec_parse({**base, "languages": ["en", "fr"]})
