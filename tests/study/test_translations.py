"""Every participant page is fully translated: a complete German catalogue, and no English left on German pages.

The page test renders each participant page twice, for a study offered only in English and for the same study
offered only in German (to an English browser, which must still get German), and compares their visible text
(text nodes and the alt, aria-label, title and data-msg-* attributes that reach the participant): any piece that
is the same in both renders must be the researcher's own text (title, consent, prompts, scale labels), which is
shown as written. An English sentence hard-coded in a template or a view shows up as such a piece.
"""

from __future__ import annotations

import gettext
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.test import Client, RequestFactory, override_settings
from django.utils import timezone

from config.error_views import server_error
from study import services
from study.models import Participant, Study, Trial
from tests.study.factories import make_study
from tests.study.helpers import answer_current, enter, post_step, to_trials

ROOT = Path(__file__).resolve().parents[2]
CATALOGUES = {app: ROOT / app / "locale" / "de" / "LC_MESSAGES" / "django.po" for app in ("study", "config")}
# How each catalogue is rebuilt (the header comment of each .po says the same).
MAKEMESSAGES = {
    "study": ["--ignore", "management/*"],
    "config": ["--ignore", "management/*", "--ignore", "templates/admin/*", "--ignore", "settings/*"],
}
ENGLISH_BROWSER = "en-GB,en;q=0.9"


# The catalogues ----------------------------------------------------------------------------------------------------


def _unquote(line: str) -> str:
    body = line[line.index('"') + 1 : line.rindex('"')]
    escapes = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}
    return re.sub(r"\\(.)", lambda m: escapes.get(m.group(1), m.group(0)), body)


def read_po(path: Path) -> list[dict]:
    """The entries of a .po file: msgid, msgid_plural, msgstr list, flags (enough of the format for our files)."""
    entries: list[dict] = []
    entry: dict = {}
    field = None
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        if not line.strip():
            if "msgid" in entry:
                entries.append(entry)
            entry, field = {}, None
        elif line.startswith("#,"):
            entry.setdefault("flags", set()).update(flag.strip() for flag in line[2:].split(","))
        elif line.startswith("#"):
            continue
        else:
            keyword = line.split(" ", 1)[0] if not line.startswith('"') else None
            if keyword is not None:
                field = keyword
                entry.setdefault("flags", set())
                if field.startswith("msgstr"):
                    entry.setdefault("msgstr", []).append("")
                else:
                    entry[field] = ""
            if field and field.startswith("msgstr"):
                entry["msgstr"][-1] += _unquote(line)
            elif field:
                entry[field] += _unquote(line)
    return entries


@pytest.mark.parametrize("app", sorted(CATALOGUES))
def test_the_german_catalogue_has_no_untranslated_or_fuzzy_entry(app):
    entries = [e for e in read_po(CATALOGUES[app]) if e["msgid"]]
    assert entries, f"{app}: empty catalogue"
    fuzzy = [e["msgid"] for e in entries if "fuzzy" in e["flags"]]
    untranslated = [e["msgid"] for e in entries if not all(e["msgstr"])]
    assert not fuzzy, f"{app}: fuzzy entries (check the translation, then remove the flag): {fuzzy}"
    assert not untranslated, f"{app}: untranslated entries: {untranslated}"
    # Placeholders survive translation (a lost %(name)s would raise or drop a number on the page).
    for e in entries:
        wanted = set(re.findall(r"%\(\w+\)s", e["msgid"] + e.get("msgid_plural", "")))
        for text in e["msgstr"]:
            assert set(re.findall(r"%\(\w+\)s", text)) <= wanted and (
                wanted <= set(re.findall(r"%\(\w+\)s", text)) or e.get("msgid_plural")
            ), (app, e["msgid"], text)


@pytest.mark.parametrize("app", sorted(CATALOGUES))
def test_the_committed_mo_matches_the_po(app):
    """The .mo Django reads holds exactly the .po's translations (run compilemessages after editing the .po)."""
    po = CATALOGUES[app]
    with po.with_suffix(".mo").open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    for e in read_po(po):
        if not e["msgid"]:
            continue
        if "msgid_plural" in e:
            assert compiled.ngettext(e["msgid"], e["msgid_plural"], 1) == e["msgstr"][0], e["msgid"]
            assert compiled.ngettext(e["msgid"], e["msgid_plural"], 2) == e["msgstr"][1], e["msgid"]
        else:
            assert compiled.gettext(e["msgid"]) == e["msgstr"][0], e["msgid"]


@pytest.mark.skipif(shutil.which("xgettext") is None, reason="xgettext (gettext) is not installed")
@pytest.mark.parametrize("app", sorted(CATALOGUES))
def test_every_marked_string_is_in_the_catalogue(app, tmp_path):
    """makemessages on a copy of the app finds nothing the committed catalogue lacks (a new string was marked but
    the catalogue not regenerated and translated)."""
    copy = tmp_path / app
    shutil.copytree(ROOT / app, copy, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
    subprocess.run(
        [
            str(Path(sys.executable).parent / "django-admin"),
            "makemessages",
            "-l",
            "de",
            "--no-location",
            "--no-wrap",
            *MAKEMESSAGES[app],
        ],
        cwd=copy,
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "config.settings.base"},
    )
    fresh = {e["msgid"] for e in read_po(copy / "locale" / "de" / "LC_MESSAGES" / "django.po")}
    committed = {e["msgid"] for e in read_po(CATALOGUES[app])}
    assert fresh <= committed, f"run makemessages and translate: {sorted(fresh - committed)}"


def test_participant_scripts_take_their_messages_from_the_page():
    """Messages the scripts show come from data-msg-* attributes of translated template text, never from the JS."""
    templates = " ".join(t.read_text(encoding="utf-8") for t in (ROOT / "study" / "templates" / "study").glob("*.html"))
    names = set(re.findall(r"""static ['"](study/[\w-]+\.js)['"]""", templates))
    assert {"study/study.js", "study/pairwise.js"} <= names
    for name in names:  # the scripts of participant pages (the admin's are in English, as the admin is)
        script = ROOT / "study" / "static" / name
        source = script.read_text(encoding="utf-8")
        literal = re.findall(r"""(?:textContent|innerText|innerHTML)\s*=\s*["'][^"']*[A-Za-z]""", source)
        assert not literal, f"{script.name}: {literal}"
        for key in re.findall(r"dataset\.(msg\w+)", source):  # each message the script reads is on the page
            attribute = "data-" + re.sub(r"([A-Z])", lambda m: "-" + m.group(1).lower(), key)
            assert f"{attribute}=" in templates, f"{script.name} reads {attribute}, which no template sets"


# The pages ---------------------------------------------------------------------------------------------------------


class _Text(HTMLParser):
    ATTRIBUTES = ("alt", "aria-label", "title", "placeholder")

    def __init__(self) -> None:
        super().__init__()
        self.pieces: set[str] = set()
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skip += 1
        for name, value in attrs:
            if value and (name in self.ATTRIBUTES or name.startswith("data-msg-")):
                self._add(value)

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self._add(data)

    def _add(self, text: str) -> None:
        text = " ".join(text.split())
        if re.search(r"[A-Za-z]{2}", text):
            self.pieces.add(text)


def visible_text(html: str) -> set[str]:
    parser = _Text()
    parser.feed(html)
    return parser.pieces


def researcher_texts(study: Study) -> set[str]:
    """What the researcher wrote: shown as written in every language (docs/study.md, Languages)."""
    texts = {study.title, study.completion_code, study.screen_out_code, study.timed_out_code}
    for field in ("consent_text", "instructions", "debrief"):
        texts.update(visible_text(f"<p>{getattr(study, field)}</p>"))
    for dimension in study.dimensions.all():
        texts.update({dimension.prompt, dimension.low_label, dimension.high_label})
        texts.add(f"{dimension.prompt} (0 = {dimension.low_label}, 100 = {dimension.high_label})")  # slider label
    return {" ".join(t.split()) for t in texts if t}


def _client() -> Client:
    return Client(HTTP_ACCEPT_LANGUAGE=ENGLISH_BROWSER)


def _study(stimulus_set, language: str, **fields) -> Study:
    defaults = {
        "languages": [language],
        "trials_per_participant": 2,
        "practice_trials": 1,
        "attention_checks": 1,
        "screen_out_code": "SCR33N",
        "timed_out_code": "T1M3D",
    }
    return make_study(stimulus_set=stimulus_set, **{**defaults, **fields})


def rating_pages(stimulus_set, language: str) -> tuple[dict[str, object], set[str]]:
    """Every page of a rating study's flow and its error pages, by name; and the researcher's texts."""
    study = _study(stimulus_set, language)
    pages: dict[str, object] = {}
    client = _client()
    url = enter(client, study, "walker")
    pages["consent"] = client.get(url)
    pages["consent without a choice"] = post_step(client, url, "consent")
    post_step(client, url, "consent", choice="agree")
    pages["instructions"] = client.get(url)
    post_step(client, url, "instructions")
    participant = Participant.objects.get(study=study, public_id=url.rstrip("/").rsplit("/", 1)[-1])
    trial_number = 0
    while True:
        participant.refresh_from_db()
        if participant.step != Participant.Step.TRIALS:
            break
        pages[f"trial {trial_number}"] = client.get(url)
        if trial_number == 0:
            pages["trial with the kept note"] = client.get(url + "?kept=1")
            pages["bad answer"] = post_step(client, url, "trials", trial=participant.position)
        answer_current(client, url, participant)
        trial_number += 1
    pages["questionnaire"] = client.get(url)
    pages["questionnaire with errors"] = post_step(client, url, "questionnaire")
    post_step(
        client,
        url,
        "questionnaire",
        age_band="25-34",
        gender="na",
        art_training="none",
        art_expertise="3",
        comment="",
    )
    pages["done"] = client.get(url)

    decliner = _client()
    declined_url = enter(decliner, study, "decliner")
    post_step(decliner, declined_url, "consent", choice="decline")
    pages["declined"] = decliner.get(declined_url)

    # Screen-out: fail the attention check in a study that ends at the first failure.
    strict = _study(stimulus_set, language, screen_out_after=1)
    careless = _client()
    strict_url, careful = to_trials(careless, strict, "careless")
    while careful.step == Participant.Step.TRIALS:
        trial = careful.trials.get(index=careful.position)
        wrong = (
            {} if trial.expected_value is None else {n: 1 if trial.expected_value != 1 else 2 for n in trial.dimensions}
        )
        answer_current(careless, strict_url, careful, **wrong)
        careful.refresh_from_db()
    pages["screened out"] = careless.get(strict_url)

    # Released after the time limit.
    idle = _client()
    idle_url, idler = to_trials(idle, study, "idler")
    services.participants_release(participants=Participant.objects.filter(pk=idler.pk))
    pages["released"] = idle.get(idle_url)

    # Errors from the views, Django's handlers and the request guard.
    pages["404 page"] = client.get(f"/s/{study.slug}/p/nonexistent/")
    pages["404 address"] = client.get(f"/s/{study.slug}/nothing-here/")
    pages["403 another session"] = _client().get(url)
    pages["400 step"] = post_step(client, url, "nonsense")
    pages["400 malformed link"] = _client().get(f"/s/{study.slug}/", {"PROLIFIC_PID": "bad id!"})
    pages["400 guard"] = _client().get(f"/s/{study.slug}/", {"PROLIFIC_PID": "x\x01"})
    pages["405"] = client.put(url)
    pages["413"] = client.post(url, data=b"x" * 2_000_000, content_type="application/x-www-form-urlencoded")
    pages["415"] = client.post(
        url, data=b"step=consent", content_type="application/x-www-form-urlencoded; charset=utf-16"
    )
    pages["preview 404"] = client.get(f"/s/{study.slug}/preview/wrong-token/")
    with override_settings(STUDY_ENTRY_RATE="1/h"):
        Client(REMOTE_ADDR="192.0.2.9", HTTP_ACCEPT_LANGUAGE=ENGLISH_BROWSER).get(
            f"/s/{study.slug}/", {"PROLIFIC_PID": "a"}
        )
        pages["429"] = Client(REMOTE_ADDR="192.0.2.9", HTTP_ACCEPT_LANGUAGE=ENGLISH_BROWSER).get(
            f"/s/{study.slug}/", {"PROLIFIC_PID": "b"}
        )
    request = RequestFactory(HTTP_ACCEPT_LANGUAGE=ENGLISH_BROWSER).get(url)
    pages["500"] = server_error(request)

    # A study that cannot take anyone (each status has its own sentence), and a live study entered without an id.
    for status in ("paused", "closed", "draft"):
        Study.objects.filter(pk=study.pk).update(status=status)
        pages[f"unavailable {status}"] = _client().get(f"/s/{study.slug}/", {"PROLIFIC_PID": f"late-{status}"})
    Study.objects.filter(pk=study.pk).update(status="live", max_participants=1)
    pages["unavailable full"] = _client().get(f"/s/{study.slug}/", {"PROLIFIC_PID": "late-full"})
    pages["recruitment id required"] = _client().get(f"/s/{study.slug}/")
    return pages, researcher_texts(study) | researcher_texts(strict)


def pairwise_pages(stimulus_set, language: str) -> tuple[dict[str, object], set[str]]:
    study = _study(
        stimulus_set,
        language,
        task="pairwise",
        pair_design="random",
        pairs_per_participant=2,
        pair_allow_tie=True,
    )
    client = _client()
    url, participant = to_trials(client, study, "chooser")
    pages: dict[str, object] = {}
    number = 0
    while participant.step == Participant.Step.TRIALS:
        pages[f"pair {number}"] = client.get(url)
        trial = participant.trials.get(index=participant.position)
        side = ("left", "right")[trial.expected_value] if trial.kind == Trial.Kind.ATTENTION else "tie"
        if trial.kind == Trial.Kind.PRACTICE:
            side = "left"
        client.post(
            url,
            {"step": "trials", "trial": trial.index, "rt_ms": 900, **{n: side for n in trial.dimensions}},
        )
        participant.refresh_from_db()
        number += 1
    assert number >= 4
    kinds = {t.kind for t in participant.trials.all()}
    assert kinds == {Trial.Kind.PRACTICE, Trial.Kind.ATTENTION, Trial.Kind.RATING}
    return pages, researcher_texts(study)


def assert_no_english(english: dict, german: dict, allowed: set[str]) -> None:
    assert english.keys() == german.keys()
    problems = {}
    for name, response in german.items():
        html = response.content.decode()
        assert response.status_code == english[name].status_code, name
        if name[:3].isdigit():  # the error pages are named by the status they must answer with
            assert response.status_code == int(name[:3]), (name, response.status_code)
        assert response.status_code < 500 or name == "500", (name, response.status_code)
        assert response["Content-Language"] == "de", name
        assert re.search(r'<html lang="de"', html), name
        left = (visible_text(html) & visible_text(english[name].content.decode())) - allowed
        if left:
            problems[name] = sorted(left)
    assert not problems, f"English left on German pages: {problems}"


@pytest.mark.django_db
def test_rating_study_pages_in_german_have_no_english(stimulus_set):
    english, allowed_en = rating_pages(stimulus_set, "en")
    german, allowed_de = rating_pages(stimulus_set, "de")
    assert {name for name, r in english.items() if r["Content-Language"] != "en"} == set()
    assert_no_english(english, german, allowed_en | allowed_de)
    # Spot checks that the comparison saw the pages it names.
    text = {name: response.content.decode() for name, response in german.items()}
    assert "Information und Einwilligung" in text["consent"]
    assert "Vielen Dank für Ihre Zeit" in text["screened out"] and "SCR33N" in text["screened out"]
    assert "Diese Sitzung ist abgelaufen" in text["released"] and "T1M3D" in text["released"]
    assert "Gerade haben zu viele Personen" in text["429"] and german["429"].status_code == 429
    assert "Bitte laden Sie die Seite in einer Minute neu" in text["500"]
    assert "Rekrutierungsseite (zum Beispiel Prolific)" in text["recruitment id required"]
    assert "keine gültige Antwort" in text["bad answer"]


@pytest.mark.django_db
def test_pairwise_pages_in_german_have_no_english(stimulus_set):
    english, allowed_en = pairwise_pages(stimulus_set, "en")
    german, allowed_de = pairwise_pages(stimulus_set, "de")
    assert_no_english(english, german, allowed_en | allowed_de)
    pages = [response.content.decode() for response in german.values()]
    assert any("Paar 1 von" in page for page in pages) and any("<strong>Bild" in page for page in pages)
    assert all('data-msg-unanswered="Bitte wählen Sie eines der Bilder."' in page for page in pages)


@pytest.mark.django_db
def test_the_500_page_never_asks_the_database_for_the_language(stimulus_set, django_assert_num_queries):
    study = _study(stimulus_set, "de", slug=f"never-{timezone.now():%H%M%S%f}")
    request = RequestFactory(HTTP_ACCEPT_LANGUAGE=ENGLISH_BROWSER).get(f"/s/{study.slug}/p/abc/")
    with django_assert_num_queries(0):
        cold = server_error(request)  # nothing cached yet: the browser's language, not a query
    assert cold["Content-Language"] == "en"
    _client().get(f"/s/{study.slug}/")  # any participant request caches the study's languages
    with django_assert_num_queries(0):
        warm = server_error(request)
    assert warm["Content-Language"] == "de"
    assert "Ihre bisherigen Antworten sind gespeichert" in warm.content.decode()
