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
    """The site answered something a participant could not continue from."""


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
    result: str  # completed | declined | unavailable
    completion_code: str = ""
    ratings: int = 0
    attention_failed: int = 0
    latencies_ms: list[float] = field(default_factory=list)


@dataclass
class Page:
    url: str
    status: int
    text: str


class Transport(Protocol):
    def get(self, url: str) -> Page: ...

    def post(self, url: str, data: dict[str, str]) -> Page: ...


class DjangoClientTransport:
    """In-process: Django's test Client with CSRF checks enforced, so bots exercise what browsers do."""

    def __init__(self) -> None:
        from django.test import Client

        self.client = Client(enforce_csrf_checks=True)

    def get(self, url: str) -> Page:
        for _ in range(10):
            response = self.client.get(url)
            if response.status_code in (301, 302, 303):
                url = urljoin(url, response["Location"])
                continue
            return Page(url=url, status=response.status_code, text=response.content.decode())
        raise BotError(f"too many redirects at {url}")

    def post(self, url: str, data: dict[str, str]) -> Page:
        response = self.client.post(url, data)
        return Page(url=response.get("Location", url), status=response.status_code, text=response.content.decode())


class HttpTransport:
    """Over HTTP against a running server (requests, cookies and CSRF like a browser); loopback or real."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        import requests

        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.timeout = timeout

    def _absolute(self, url: str) -> str:
        return url if url.startswith("http") else self.base_url + url

    def get(self, url: str) -> Page:
        response = self.session.get(self._absolute(url), timeout=self.timeout)
        return Page(url=urlparse(response.url).path, status=response.status_code, text=response.text)

    def post(self, url: str, data: dict[str, str]) -> Page:
        response = self.session.post(self._absolute(url), data=data, allow_redirects=False, timeout=self.timeout,
                                     headers={"Referer": self._absolute(url)})
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
        latent = self.model.intercept + effect + stimulus + self.bias.get(name, 0.0) + self.rng.gauss(
            0, self.model.noise_sd)
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


def run_bot(*, transport: Transport, slug: str, pid: str, model: AnswerModel, truth: Mapping[str, StimulusTruth],
            rng: random.Random, max_pages: int = 2000, on_rating: Callable[[float], None] | None = None) -> BotOutcome:
    """Walk one participant from the recruitment link to the end; records rating-submission latencies."""
    bot = Bot(pid=pid, model=model, truth=truth, rng=rng)
    outcome = BotOutcome(pid=pid, result="")
    query = urlencode({"PROLIFIC_PID": pid, "STUDY_ID": f"study-{slug}", "SESSION_ID": f"session-{pid}"})
    page = transport.get(f"/s/{slug}/?{query}")
    for _ in range(max_pages):
        _expect(page, (200,), "reading a page")
        reader = read_page(page.text)
        data = dict(reader.hidden)
        if reader.step == "consent":
            data["choice"] = "decline" if bot.declines else "agree"
        elif reader.step == "instructions":
            pass
        elif reader.step == "trials" and reader.pair_images:
            name = reader.dimensions[0]["data-dimension"]
            side = bot.choose(name, reader.pair_images.get("left", ""), reader.pair_images.get("right", ""))
            if reader.instructed_side and not bot.inattentive:
                side = reader.instructed_side
            rt = str(bot.rt_ms())
            data.update({name: side, f"rt_ms_{name}": rt, "rt_ms": rt})
            if reader.instructed_side and side != reader.instructed_side:
                outcome.attention_failed += 1
        elif reader.step == "trials":
            values = {d["data-dimension"]: bot.answer(d, reader.image) for d in reader.dimensions}
            if reader.instructed is not None and not bot.inattentive:
                values[reader.dimensions[0]["data-dimension"]] = reader.instructed
            rt = bot.rt_ms()
            data.update({name: str(v) for name, v in values.items()})
            data.update({f"rt_ms_{name}": str(rt) for name in values})
            data["rt_ms"] = str(rt)
            if reader.instructed is not None and values[reader.dimensions[0]["data-dimension"]] != reader.instructed:
                outcome.attention_failed += 1
        elif reader.step == "questionnaire":
            data.update({name: rng.choice(options) for name, options in reader.radios.items()})
            data.update({name: "" for name in reader.textareas})
        elif reader.step == "done":
            outcome.result, outcome.completion_code = "completed", reader.completion_code
            return outcome
        elif reader.step in {"declined", "unavailable"}:
            outcome.result = reader.step
            return outcome
        else:
            raise BotError(f"unexpected page {reader.step!r} at {page.url}")
        started = time.perf_counter()
        answer = transport.post(reader.action or page.url, data)
        if reader.step == "trials":
            latency = (time.perf_counter() - started) * 1000
            outcome.latencies_ms.append(latency)
            outcome.ratings += len(reader.dimensions)
            if on_rating:
                on_rating(latency)
        _expect(answer, (302, 303), f"answering {reader.step}")
        page = transport.get(answer.url)
    raise BotError(f"{pid} did not finish within {max_pages} pages")


def stimulus_truth(*, study) -> dict[str, StimulusTruth]:
    """Image URL path -> condition, for the bots' answer model (never shown to participants)."""
    from study.selectors import study_stimuli

    return {urlparse(s.image.url).path: StimulusTruth(condition=s.condition, public_id=s.public_id)
            for s in study_stimuli(study=study)}
