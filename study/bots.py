"""Bots: simulated participants that walk the real pages (oTree style), in-process or over HTTP.

A bot reads each page the way a person would (the step, the form, the visible instruction) and answers from an
`AnswerModel`: condition effects per dimension, a participant bias, stimulus and trial noise, a few decliners and a
few inattentive participants. The condition is never in the page, so the caller passes a map from image URL to
condition (the bot's "ground truth"), built from the database.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, Protocol
from urllib.parse import urlencode, urljoin, urlparse

DEFAULT_EFFECTS = {
    # Shifts on a 0..1 latent scale (fraction of the scale range), relative to the baseline condition.
    "artistry": {"baseline": 0.0, "artistic-0.5": 0.12, "artistic-1.0": 0.22, "symbolic": 0.06},
    "symbolism": {"baseline": 0.0, "artistic-0.5": 0.04, "artistic-1.0": 0.08, "symbolic": 0.2},
}


class BotError(Exception):
    """The site answered something a participant could not continue from; `outcome` holds what was done so far."""

    outcome: BotOutcome | None = None


@dataclass
class AnswerModel:
    effects: dict[str, dict[str, float]] = field(
        default_factory=lambda: {k: dict(v) for k, v in DEFAULT_EFFECTS.items()}
    )
    intercept: float = 0.4
    participant_sd: float = 0.08
    stimulus_sd: float = 0.06
    noise_sd: float = 0.12
    decline_rate: float = 0.05
    inattentive_rate: float = 0.1
    rt_median_ms: float = 1800.0
    rt_sigma: float = 0.4

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> AnswerModel:
        model = cls()
        for key, value in (data or {}).items():
            if not hasattr(model, key):
                raise ValueError(f"bots.{key}: unknown answer-model setting")
            setattr(model, key, value)
        return model


@dataclass
class StimulusTruth:
    condition: str
    public_id: str


@dataclass
class BotOutcome:
    pid: str
    result: str  # completed | declined | unavailable | screened_out
    completion_code: str = ""
    ratings: int = 0
    attention_failed: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    # Trial index -> the values the site acknowledged: a redirect after the POST, or (when the response was lost)
    # a reload that shows the participant past that trial. What the bench compares with the database.
    acknowledged: dict[int, dict[str, int]] = field(default_factory=dict)
    reloads: int = 0  # pages reloaded after a dropped connection or a 5xx/429 answer


@dataclass
class Page:
    url: str
    status: int
    text: str


class Unreachable(Exception):
    """No answer at all: connection refused, reset or dropped mid-response (a person would reload)."""


@dataclass(frozen=True)
class Patience:
    """How a person whose page failed behaves: reload after a short wait, waiting longer each time, then give up."""

    attempts: int = 40
    first_wait_s: float = 0.25
    max_wait_s: float = 4.0

    def waits(self) -> list[float]:
        return [min(self.max_wait_s, self.first_wait_s * 2 ** min(i, 16)) for i in range(self.attempts)]


# Answers worth reloading for: the server or a proxy in front is down for a moment, or asks us to slow down.
TRANSIENT_STATUSES = {429, 500, 502, 503, 504}


class Transport(Protocol):
    def get(self, url: str) -> Page: ...

    def post(self, url: str, data: dict[str, str]) -> Page: ...


class DjangoClientTransport:
    """In-process: Django's test Client with CSRF checks enforced, so bots exercise what browsers do.

    Rate limits are off here: in-process bots are the researcher's own simulation, all from one "address".
    """

    def __init__(self) -> None:
        from django.test import Client

        self.client = Client(enforce_csrf_checks=True)

    def get(self, url: str) -> Page:
        from django.test import override_settings

        with override_settings(RATELIMIT_ENABLE=False):
            for _ in range(10):
                response = self.client.get(url)
                if response.status_code in (301, 302, 303):
                    url = urljoin(url, response["Location"])
                    continue
                return Page(url=url, status=response.status_code, text=response.content.decode())
        raise BotError(f"too many redirects at {url}")

    def post(self, url: str, data: dict[str, str]) -> Page:
        from django.test import override_settings

        with override_settings(RATELIMIT_ENABLE=False):
            response = self.client.post(url, data)
        return Page(url=response.get("Location", url), status=response.status_code, text=response.content.decode())


class HttpTransport:
    """Over HTTP against a running server (requests, cookies and CSRF like a browser); loopback or real."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        import requests

        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.timeout = timeout
        self.dropped = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)

    def _absolute(self, url: str) -> str:
        return url if url.startswith("http") else self.base_url + url

    def get(self, url: str) -> Page:
        try:
            response = self.session.get(self._absolute(url), timeout=self.timeout)
        except self.dropped as exc:
            raise Unreachable(f"GET {url}: {type(exc).__name__}") from None
        return Page(url=urlparse(response.url).path, status=response.status_code, text=response.text)

    def post(self, url: str, data: dict[str, str]) -> Page:
        try:
            response = self.session.post(
                self._absolute(url),
                data=data,
                allow_redirects=False,
                timeout=self.timeout,
                headers={"Referer": self._absolute(url)},
            )
        except self.dropped as exc:
            raise Unreachable(f"POST {url}: {type(exc).__name__}") from None
        return Page(url=response.headers.get("Location", url), status=response.status_code, text=response.text)


class PageReader(HTMLParser):
    """What a participant sees, in a form a bot can act on: the step, form fields, the image, the instruction."""

    def __init__(self) -> None:
        super().__init__()
        self.step = ""
        self.hidden: dict[str, str] = {}
        self.action = ""
        self.image = ""
        self.instructed: int | None = None
        self.completion_code = ""
        self.dimensions: list[dict[str, str]] = []
        self.radios: dict[str, list[str]] = {}
        self.textareas: list[str] = []
        self.pair_images: dict[str, str] = {}  # pairwise trials: "left" / "right" -> image URL
        self.instructed_side = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "main":
            self.step = a.get("data-step", "")
        elif tag == "form" and not self.action:
            self.action = a.get("action", "")
        elif tag == "input":
            kind = a.get("type", "text")
            if kind == "hidden" and a.get("name"):
                self.hidden[a["name"]] = a.get("value", "")
            elif kind == "radio":
                self.radios.setdefault(a["name"], []).append(a.get("value", ""))
        elif tag == "textarea" and a.get("name"):
            self.textareas.append(a["name"])
        elif tag == "img" and a.get("id") == "stimulus":
            self.image = a.get("src", "")
        elif tag == "img" and a.get("id") in ("stimulus-left", "stimulus-right"):
            self.pair_images[a["id"].removeprefix("stimulus-")] = a.get("src", "")
        elif "data-instructed-side" in a:
            self.instructed_side = a["data-instructed-side"]
        elif tag == "fieldset" and a.get("data-dimension"):
            self.dimensions.append(a)
        elif "data-instructed-value" in a:
            self.instructed = int(a["data-instructed-value"])
        elif "data-completion-code" in a:
            self.completion_code = a["data-completion-code"]


def read_page(text: str) -> PageReader:
    reader = PageReader()
    reader.feed(text)
    return reader


@dataclass
class Bot:
    """One simulated participant; `decide` draws its personality once so its answers are coherent."""

    pid: str
    model: AnswerModel
    truth: Mapping[str, StimulusTruth]
    rng: random.Random
    declines: bool = False
    inattentive: bool = False
    bias: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.declines = self.rng.random() < self.model.decline_rate
        self.inattentive = self.rng.random() < self.model.inattentive_rate
        self.bias = {name: self.rng.gauss(0, self.model.participant_sd) for name in self.model.effects}

    def stimulus_effect(self, public_id: str, dimension: str) -> float:
        # The same stimulus gets the same idiosyncratic effect from every bot: a crossed random effect.
        return random.Random(f"{public_id}:{dimension}").gauss(0, self.model.stimulus_sd)

    def answer(self, dimension: dict[str, str], image: str) -> int:
        low, high = int(dimension["data-min"]), int(dimension["data-max"])
        name = dimension["data-dimension"]
        if self.inattentive:
            return self.rng.randint(low, high)
        truth = self.truth.get(urlparse(image).path)
        effect = self.model.effects.get(name, {}).get(truth.condition, 0.0) if truth else 0.0
        stimulus = self.stimulus_effect(truth.public_id, name) if truth else 0.0
        latent = (
            self.model.intercept + effect + stimulus + self.bias.get(name, 0.0) + self.rng.gauss(0, self.model.noise_sd)
        )
        latent = min(1.0, max(0.0, latent))
        return round(low + latent * (high - low))

    def latent(self, image: str, dimension: str) -> float:
        """The image's true value on the 0..1 latent scale (no participant bias or noise): the known truth."""
        truth = self.truth.get(urlparse(image).path)
        if truth is None:
            return self.model.intercept
        return latent_truth(self.model, public_id=truth.public_id, condition=truth.condition, dimension=dimension)

    def choose(self, dimension: str, left: str, right: str) -> str:
        """Pairwise: each image is perceived with its own noise and the larger wins (Thurstone Case V)."""
        if self.inattentive:
            return self.rng.choice(("left", "right"))
        a = self.latent(left, dimension) + self.rng.gauss(0, self.model.noise_sd)
        b = self.latent(right, dimension) + self.rng.gauss(0, self.model.noise_sd)
        return "left" if a >= b else "right"

    def rt_ms(self) -> int:
        return round(self.model.rt_median_ms * math.exp(self.rng.gauss(0, self.model.rt_sigma)))


def latent_truth(model: AnswerModel, *, public_id: str, condition: str, dimension: str) -> float:
    """intercept + condition effect + the stimulus's own effect: what pairwise bots compare."""
    effect = model.effects.get(dimension, {}).get(condition, 0.0)
    stimulus = random.Random(f"{public_id}:{dimension}").gauss(0, model.stimulus_sd)
    return model.intercept + effect + stimulus


def _expect(page: Page, statuses: tuple[int, ...], doing: str) -> None:
    if page.status not in statuses:
        raise BotError(f"{doing}: HTTP {page.status} at {page.url}")


def _load(transport: Transport, url: str, patience: Patience, outcome: BotOutcome) -> Page:
    """GET a page like a person: on no answer or a 5xx/429, wait and reload the same address."""
    last = "no attempt"
    for wait in [0.0, *patience.waits()]:
        if wait:
            outcome.reloads += 1
            time.sleep(wait)
        try:
            page = transport.get(url)
        except Unreachable as exc:
            last = str(exc)
            continue
        if page.status not in TRANSIENT_STATUSES:
            return page
        last = f"HTTP {page.status}"
    raise BotError(f"gave up reloading {url} after {patience.attempts} tries ({last})")


def _trial_index(reader: PageReader) -> int | None:
    try:
        return int(reader.hidden.get("trial", ""))
    except ValueError:
        return None


def _moved_past(reader: PageReader, index: int) -> bool:
    """Whether a freshly loaded page shows the participant past trial `index` (its answer was stored)."""
    if reader.step in {"questionnaire", "done"}:
        return True
    shown = _trial_index(reader)
    return reader.step == "trials" and shown is not None and shown > index


def run_bot(
    *,
    transport: Transport,
    slug: str,
    pid: str,
    model: AnswerModel,
    truth: Mapping[str, StimulusTruth],
    rng: random.Random,
    max_pages: int = 2000,
    on_rating: Callable[[float], None] | None = None,
    patience: Patience | None = None,
) -> BotOutcome:
    """Walk one participant from the recruitment link to the end; records rating-submission latencies.

    A dropped connection or a 5xx is met as a person would meet it: wait, reload the page, and carry on from
    whatever the page then shows; a trial that comes back gets the same answer as before.
    """
    outcome = BotOutcome(pid=pid, result="")
    bot = Bot(pid=pid, model=model, truth=truth, rng=rng)
    try:
        return _walk(
            transport=transport,
            slug=slug,
            outcome=outcome,
            bot=bot,
            rng=rng,
            max_pages=max_pages,
            on_rating=on_rating,
            patience=patience or Patience(),
        )
    except BotError as exc:
        exc.outcome = outcome  # the answers acknowledged before it failed still count in a reconciliation
        raise


def _walk(
    *,
    transport: Transport,
    slug: str,
    outcome: BotOutcome,
    bot: Bot,
    rng: random.Random,
    max_pages: int,
    on_rating: Callable[[float], None] | None,
    patience: Patience,
) -> BotOutcome:
    pid = bot.pid
    query = urlencode({"PROLIFIC_PID": pid, "STUDY_ID": f"study-{slug}", "SESSION_ID": f"session-{pid}"})
    page = _load(transport, f"/s/{slug}/?{query}", patience, outcome)
    given: dict[int, dict[str, int]] = {}  # trial index -> answer, reused if the same trial is shown again
    questionnaire: dict[str, str] | None = None
    for _ in range(max_pages):
        _expect(page, (200,), "reading a page")
        reader = read_page(page.text)
        data = dict(reader.hidden)
        index = _trial_index(reader)
        if reader.step == "consent":
            data["choice"] = "decline" if bot.declines else "agree"
        elif reader.step == "instructions":
            pass
        elif reader.step == "trials" and reader.pair_images:
            name = reader.dimensions[0]["data-dimension"]
            if index not in given:  # a reloaded pair gets the same answer, like a person who resends it
                side = bot.choose(name, reader.pair_images.get("left", ""), reader.pair_images.get("right", ""))
                if reader.instructed_side and not bot.inattentive:
                    side = reader.instructed_side
                if reader.instructed_side and side != reader.instructed_side:
                    outcome.attention_failed += 1
                given[index] = {name: side}
            side = given[index][name]
            rt = str(bot.rt_ms())
            data.update({name: side, f"rt_ms_{name}": rt, "rt_ms": rt})
        elif reader.step == "trials":
            if index not in given:
                values = {d["data-dimension"]: bot.answer(d, reader.image) for d in reader.dimensions}
                checked = reader.dimensions[0]["data-dimension"] if reader.instructed is not None else None
                if checked and not bot.inattentive:
                    values[checked] = reader.instructed
                if checked and values[checked] != reader.instructed:
                    outcome.attention_failed += 1
                given[index] = values
            values = given[index]
            rt = bot.rt_ms()
            data.update({name: str(v) for name, v in values.items()})
            data.update({f"rt_ms_{name}": str(rt) for name in values})
            data["rt_ms"] = str(rt)
        elif reader.step == "questionnaire":
            if questionnaire is None:
                questionnaire = {name: rng.choice(options) for name, options in reader.radios.items()}
                questionnaire.update({name: "" for name in reader.textareas})
            data.update(questionnaire)
        elif reader.step == "done":
            outcome.result, outcome.completion_code = "completed", reader.completion_code
            return outcome
        elif reader.step in {"declined", "unavailable", "screened_out"}:
            outcome.result = reader.step
            return outcome
        else:
            raise BotError(f"unexpected page {reader.step!r} at {page.url}")
        started = time.perf_counter()
        try:
            answer = transport.post(reader.action or page.url, data)
        except Unreachable:
            answer = None
        if answer is not None and answer.status in (302, 303):
            if reader.step == "trials":
                latency = (time.perf_counter() - started) * 1000
                outcome.latencies_ms.append(latency)
                outcome.ratings += len(reader.dimensions)
                outcome.acknowledged[index] = given[index]
                if on_rating:
                    on_rating(latency)
            page = _load(transport, answer.url, patience, outcome)
            continue
        if answer is not None and answer.status not in TRANSIENT_STATUSES:
            _expect(answer, (302, 303), f"answering {reader.step}")
        # No answer, or the server failed: reload. If the page moved on, the answer was stored after all.
        outcome.reloads += 1
        page = _load(transport, page.url, patience, outcome)
        if reader.step == "trials" and page.status == 200 and _moved_past(read_page(page.text), index):
            outcome.ratings += len(reader.dimensions)
            outcome.acknowledged[index] = given[index]
    raise BotError(f"{pid} did not finish within {max_pages} pages")


def stimulus_truth(*, study) -> dict[str, StimulusTruth]:
    """Image URL path -> condition, for the bots' answer model (never shown to participants)."""
    from study.selectors import study_stimuli

    return {
        urlparse(s.image.url).path: StimulusTruth(condition=s.condition, public_id=s.public_id)
        for s in study_stimuli(study=study)
    }
