"""Studies, their rating dimensions, participants, frozen trial lists, ratings and questionnaires.

Integrity lives in the schema: one participant per (study, pseudonym), one trial per (participant, index),
one rating per (trial, dimension), one questionnaire per participant.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

DEFAULT_DIMENSIONS = [
    {
        "name": "artistry",
        "prompt": "How much does this image look like a work of art?",
        "kind": "likert",
        "points": 7,
        "low_label": "Not at all",
        "high_label": "Very much",
    },
    {
        "name": "symbolism",
        "prompt": "How much does this image look like a symbol or sign rather than a depiction?",
        "kind": "likert",
        "points": 7,
        "low_label": "A depiction",
        "high_label": "A symbol or sign",
    },
]

# The default dimensions' questions in a pairwise study (used when a study file names them without a prompt).
PAIR_PROMPTS = {
    "artistry": "Which image looks more like a work of art?",
    "symbolism": "Which image looks more like a symbol or sign rather than a depiction?",
}


def new_token() -> str:
    """Unguessable id for URLs, so nothing about one participant can be reached from another's."""
    return secrets.token_urlsafe(16)


# Study fields only the assignment writes, under the study lock (study/fastpath.py).
ASSIGNMENT_OWNED = frozenset({"assignment_serial", "allocation_counts", "allocation_basis"})


class Study(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PILOT = "pilot", "Pilot"
        LIVE = "live", "Live"
        PAUSED = "paused", "Paused"
        CLOSED = "closed", "Closed"

    class Layout(models.TextChoices):
        TOGETHER = "together", "All dimensions together on each image"
        BLOCKS = "blocks", "One block per dimension"

    class BetweenFactor(models.TextChoices):
        NONE = "none", "None (everyone rates every dimension)"
        DIMENSION = "dimension", "Dimension (each participant rates one dimension, balanced)"

    class Task(models.TextChoices):
        RATING = "rating", "Rating scales (one image at a time)"
        PAIRWISE = "pairwise", "Pairwise comparison (which of two images)"

    class PairDesign(models.TextChoices):
        RANDOM = "random", "Random pairs"
        BALANCED = "balanced", "Balanced (every stimulus equally often, connected graph)"
        ADAPTIVE = "adaptive", "Adaptive (pairs that shrink the scale's uncertainty most)"

    slug = models.SlugField(max_length=100, unique=True)
    title = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT, db_index=True)
    consent_text = models.TextField(blank=True)
    instructions = models.TextField(blank=True)
    debrief = models.TextField(blank=True)
    stimulus_sets = models.ManyToManyField("generation.StimulusSet", related_name="studies", blank=True)
    conditions = models.JSONField(default=list, blank=True, help_text="Conditions to use; empty means all.")
    layout = models.CharField(max_length=16, choices=Layout.choices, default=Layout.TOGETHER)
    between_factor = models.CharField(max_length=16, choices=BetweenFactor.choices, default=BetweenFactor.NONE)
    trials_per_participant = models.PositiveIntegerField(default=12, help_text="Rated stimuli per participant.")
    practice_trials = models.PositiveIntegerField(default=2)
    attention_checks = models.PositiveIntegerField(default=2)
    max_run_length = models.PositiveIntegerField(
        default=2, help_text="Longest allowed run of one condition in a trial list."
    )
    max_participants = models.PositiveIntegerField(null=True, blank=True, help_text="Empty means no limit.")
    task = models.CharField(max_length=16, choices=Task.choices, default=Task.RATING)
    pair_design = models.CharField(
        max_length=16,
        choices=PairDesign.choices,
        default=PairDesign.BALANCED,
        help_text="Pairwise studies: how pairs are chosen.",
    )
    pairs_per_participant = models.PositiveIntegerField(default=20, help_text="Pairwise studies: pairs per dimension.")
    pair_within_fraction = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Balanced design: share of within-condition pairs (empty: any partner).",
    )
    pair_allow_tie = models.BooleanField(default=False, help_text="Offer a 'no difference' answer.")
    completion_code = models.CharField(max_length=64, blank=True)
    completion_url_template = models.CharField(
        max_length=500, blank=True, help_text="e.g. https://app.prolific.com/submissions/complete?cc={code}"
    )
    no_consent_url = models.CharField(max_length=500, blank=True, help_text="Where decliners are sent back to.")
    screen_out_after = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Screen a participant out after this many failed attention checks; empty means never.",
    )
    screen_out_code = models.CharField(max_length=64, blank=True, help_text="Code shown to screened-out participants.")
    screen_out_url_template = models.CharField(
        max_length=500,
        blank=True,
        help_text="Where screened-out participants are sent, e.g. "
        "https://app.prolific.com/submissions/complete?cc={code}",
    )
    time_limit_minutes = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Release participants idle longer than this (their stimuli go to newcomers); empty means never.",
    )
    anonymous_entry = models.BooleanField(
        default=False,
        help_text="Let people in without a recruitment id (demos, class tests). Off: a live study's link needs "
        "PROLIFIC_PID or pid, so one client cannot fill the quota with anonymous visits.",
    )
    timed_out_code = models.CharField(
        max_length=64, blank=True, help_text="Code for participants released as returned / timed out."
    )
    timed_out_url = models.CharField(
        max_length=500,
        blank=True,
        help_text="Where released participants are sent back to; {code} becomes the timed-out code. Empty: the "
        "completion URL template with the timed-out code.",
    )
    languages = models.JSONField(default=list, blank=True)
    pilot_token = models.CharField(max_length=64, unique=True, default=new_token, editable=False)
    assignment_serial = models.PositiveBigIntegerField(
        default=0, editable=False, help_text="Bumped under lock at each assignment; serialises concurrent arrivals."
    )
    # The allocation counts ({stimulus id: participants rating it}) as of the last assignment, kept by the assignment
    # under the study lock so a consent need not aggregate every trial of the study. `allocation_basis` is the number
    # of counted participants they were built from: a release or a withdrawal changes that number and the next
    # consent counts afresh (services.participant_consent). -1: never built (studies from before these fields).
    allocation_counts = models.JSONField(default=dict, editable=False)
    allocation_basis = models.IntegerField(default=0, editable=False)
    source = models.JSONField(default=dict, blank=True, help_text="The YAML this study was loaded from.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "studies"

    def __str__(self) -> str:
        return self.slug

    def save(self, *args, **kwargs) -> None:
        """An edit (admin, spec reload) writes every field but those the assignment keeps under the study lock: a
        copy read before the last consents must not overwrite them."""
        if not self._state.adding and kwargs.get("update_fields") is None and not kwargs.get("force_insert"):
            kwargs["update_fields"] = [
                f.name for f in self._meta.concrete_fields if not f.primary_key and f.name not in ASSIGNMENT_OWNED
            ]
        super().save(*args, **kwargs)

    @property
    def completion_url(self) -> str:
        """The redirect with the completion code filled in (`{code}` in the template)."""
        return self.completion_url_template.replace("{code}", self.completion_code)

    @property
    def screen_out_url(self) -> str:
        return self.screen_out_url_template.replace("{code}", self.screen_out_code)

    @property
    def timed_out_return_url(self) -> str:
        """The return link of a released participant: never the no-consent one (Prolific tells them apart)."""
        if self.timed_out_url:
            return self.timed_out_url.replace("{code}", self.timed_out_code)
        if self.timed_out_code and self.completion_url_template:
            return self.completion_url_template.replace("{code}", self.timed_out_code)
        return ""


class RatingDimension(models.Model):
    class Kind(models.TextChoices):
        LIKERT = "likert", "k-point Likert"
        SLIDER = "slider", "0-100 slider"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="dimensions")
    name = models.SlugField(max_length=50)
    prompt = models.CharField(max_length=500)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.LIKERT)
    points = models.PositiveIntegerField(default=7, help_text="Likert points (ignored for sliders).")
    low_label = models.CharField(max_length=100, default="Not at all")
    high_label = models.CharField(max_length=100, default="Very much")
    order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["study", "order", "pk"]
        constraints = [models.UniqueConstraint(fields=["study", "name"], name="unique_dimension_per_study")]

    def __str__(self) -> str:
        return self.name

    @property
    def minimum(self) -> int:
        return 0 if self.kind == self.Kind.SLIDER else 1

    @property
    def maximum(self) -> int:
        return 100 if self.kind == self.Kind.SLIDER else self.points

    @property
    def scale_points(self) -> list[int]:
        return list(range(1, self.points + 1))


class Participant(models.Model):
    class Step(models.TextChoices):
        CONSENT = "consent", "Consent"
        DECLINED = "declined", "Declined consent"
        INSTRUCTIONS = "instructions", "Instructions"
        TRIALS = "trials", "Trials"
        QUESTIONNAIRE = "questionnaire", "Questionnaire"
        DONE = "done", "Completed"
        SCREENED_OUT = "screened_out", "Screened out (failed attention checks)"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="participants")
    public_id = models.CharField(max_length=64, unique=True, default=new_token, editable=False)
    pseudonym = models.CharField(max_length=64, help_text="Keyed hash of the recruitment id.")
    source = models.CharField(max_length=32, help_text="prolific, pid, anonymous or pilot.")
    recruitment = models.JSONField(default=dict, blank=True, help_text="Keyed hashes of STUDY_ID / SESSION_ID.")
    # No single-column indexes on is_pilot and step: with a handful of values they never narrow a study's
    # participants, and under a prepared statement's generic plan PostgreSQL used the step index for
    # "WHERE id = ... AND step = ..." (the answer's compare-and-set), which scans every participant at that step.
    is_pilot = models.BooleanField(default=False)
    step = models.CharField(max_length=16, choices=Step.choices, default=Step.CONSENT)
    position = models.PositiveIntegerField(default=0, help_text="Index of the current trial.")
    trial_count = models.PositiveIntegerField(default=0, help_text="Length of the frozen trial list.")
    seed = models.BigIntegerField(null=True, blank=True, help_text="Seed of the randomised trial list.")
    group = models.CharField(max_length=50, blank=True, help_text="Between-subject level.")
    attention_failures = models.PositiveIntegerField(default=0)
    user_agent = models.CharField(max_length=300, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    consented_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    released_at = models.DateTimeField(
        null=True, blank=True, help_text="Released as abandoned: no longer counted for quotas and balancing."
    )
    screened_out_at = models.DateTimeField(null=True, blank=True)
    withdrawn_at = models.DateTimeField(
        null=True, blank=True, help_text="Withdrew (erasure): trials, ratings and answers deleted; only this row stays."
    )

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(fields=["study", "pseudonym"], name="one_participant_per_recruitment_id"),
        ]

    def __str__(self) -> str:
        return f"{self.study.slug}:{self.pseudonym[:10]}"

    @property
    def status(self) -> str:
        if self.withdrawn_at:
            return "withdrawn"
        if self.step == self.Step.SCREENED_OUT:
            return "screened_out"
        if self.step == self.Step.DONE:
            return "completed"
        if self.released_at:
            return "released"
        if self.step == self.Step.DECLINED:
            return "declined"
        return "in_progress"

    @property
    def duration_s(self) -> float | None:
        if self.consented_at and self.completed_at:
            return (self.completed_at - self.consented_at).total_seconds()
        return None


class Trial(models.Model):
    class Kind(models.TextChoices):
        PRACTICE = "practice", "Practice"
        RATING = "rating", "Rating"
        ATTENTION = "attention", "Attention check"

    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="trials")
    index = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, choices=Kind.choices)
    stimulus = models.ForeignKey("generation.Stimulus", on_delete=models.PROTECT, related_name="trials")
    dimensions = models.JSONField(help_text="Names of the dimensions rated on this screen.")
    block = models.PositiveIntegerField(default=0)
    expected_value = models.IntegerField(null=True, blank=True, help_text="Instructed response (attention checks).")
    attention_passed = models.BooleanField(null=True, blank=True)
    shown_at = models.DateTimeField(null=True, blank=True, help_text="Server time the trial was first served.")
    shown_count = models.PositiveIntegerField(default=0, help_text="How often it was served (reloads).")
    answered_at = models.DateTimeField(null=True, blank=True)
    rt_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Client RT from image display to submit.")
    # Pairwise trials: `stimulus` is shown on the left (top on phones), this one on the right.
    stimulus_right = models.ForeignKey(
        "generation.Stimulus", on_delete=models.PROTECT, related_name="right_trials", null=True, blank=True
    )
    pair_source = models.CharField(max_length=16, blank=True, help_text="Pair design that chose this pair.")

    class Meta:
        ordering = ["participant", "index"]
        constraints = [models.UniqueConstraint(fields=["participant", "index"], name="unique_trial_index")]
        indexes = [models.Index(fields=["stimulus", "kind"])]

    def __str__(self) -> str:
        return f"{self.participant} #{self.index} ({self.kind})"


class Rating(models.Model):
    trial = models.ForeignKey(Trial, on_delete=models.CASCADE, related_name="ratings")
    dimension = models.ForeignKey(RatingDimension, on_delete=models.PROTECT, related_name="ratings")
    value = models.FloatField()
    rt_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["trial", "dimension"]
        constraints = [models.UniqueConstraint(fields=["trial", "dimension"], name="one_rating_per_trial_dimension")]

    def __str__(self) -> str:
        return f"{self.trial} {self.dimension.name}={self.value}"


class Choice(models.Model):
    """One answer of a pairwise trial: which image looked more like the dimension (empty = no difference)."""

    class Side(models.TextChoices):
        LEFT = "left", "Left"
        RIGHT = "right", "Right"
        TIE = "tie", "No difference"

    trial = models.ForeignKey(Trial, on_delete=models.CASCADE, related_name="choices")
    dimension = models.ForeignKey(RatingDimension, on_delete=models.PROTECT, related_name="choices")
    side = models.CharField(max_length=8, choices=Side.choices)
    chosen = models.ForeignKey("generation.Stimulus", on_delete=models.PROTECT, related_name="+", null=True, blank=True)
    rt_ms = models.PositiveIntegerField(null=True, blank=True)
    posterior_seq = models.PositiveIntegerField(
        null=True, blank=True, help_text="Adaptive design: position of this answer in the posterior's update order."
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["trial", "dimension"]
        constraints = [models.UniqueConstraint(fields=["trial", "dimension"], name="one_choice_per_trial_dimension")]

    def __str__(self) -> str:
        return f"{self.trial} {self.dimension.name}={self.side}"


class PairPosterior(models.Model):
    """The adaptive design's shared Gaussian belief about one dimension's scale (see analysis.pairs).

    Caught up under this row's lock whenever it is read for new pairs (study.pairwise.posterior_catch_up): the
    answers stored since are applied in storage order, each exactly once; `n_updates` counts them.
    """

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="pair_posteriors")
    dimension = models.ForeignKey(RatingDimension, on_delete=models.CASCADE, related_name="+")
    items = models.JSONField(help_text="Stimulus ids in the order of the posterior's entries.")
    mu = models.BinaryField()
    cov = models.BinaryField(help_text="Upper triangle of the covariance, row-major float64.")
    prior_sd = models.FloatField(default=1.5)
    n_updates = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["study", "dimension"], name="one_posterior_per_dimension")]

    def __str__(self) -> str:
        return f"posterior {self.study.slug}:{self.dimension.name} ({self.n_updates} answers)"


class QuestionnaireResponse(models.Model):
    participant = models.OneToOneField(Participant, on_delete=models.CASCADE, related_name="questionnaire")
    age_band = models.CharField(max_length=16)
    gender = models.CharField(max_length=32)
    art_training = models.CharField(max_length=32)
    art_expertise = models.PositiveSmallIntegerField(help_text="Self-rated art expertise, 1-7.")
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"questionnaire of {self.participant}"


class StudyReport(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="reports")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    options = models.JSONField(default=dict, blank=True, help_text="Keyword options of analysis.build_report.")
    folder = models.CharField(max_length=300, blank=True, help_text="Relative to PRIVATE_ROOT (never public).")
    files = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    notes = models.TextField(blank=True, help_text="What the finished report skipped, and why (one line).")
    celery_task_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    stale_since = models.DateTimeField(
        null=True, blank=True, help_text="A participant withdrew after this report was made: it includes erased data."
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"report {self.pk} of {self.study.slug} ({self.status})"


class AuditEntry(models.Model):
    """One data operation (who, when, what, how many rows): the record a data-protection officer asks for."""

    class Action(models.TextChoices):
        EXPORT = "export", "Export"
        REPORT = "report", "Report requested"
        WITHDRAWAL = "withdrawal", "Withdrawal (erasure)"
        RELEASE = "release", "Release"
        STATUS = "status", "Status change"
        OUTCOMES = "outcomes", "Recruitment outcomes matched"

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=150, help_text="User name, 'command line' or 'automatic'.")
    action = models.CharField(max_length=16, choices=Action.choices, db_index=True)
    study = models.ForeignKey(Study, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_entries")
    study_slug = models.CharField(max_length=100, blank=True, help_text="Kept when the study is deleted.")
    rows = models.PositiveIntegerField(default=0, help_text="Rows exported, erased, released or changed.")
    detail = models.JSONField(default=dict, blank=True)
    stale_since = models.DateTimeField(
        null=True, blank=True, help_text="Exports only: a participant withdrew later, so the file holds erased data."
    )

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = "audit log entry"
        verbose_name_plural = "audit log"

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_label} {self.action} {self.study_slug} ({self.rows})"
