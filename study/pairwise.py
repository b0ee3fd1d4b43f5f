"""Pairwise studies: drawing a participant's pairs, storing choices exactly once, the adaptive posterior.

The pair designs themselves live in `analysis.pairs` (Django-free, shared with the simulations); this module
wires them to the database:

* **Assignment** (inside `services.participant_consent`, which already holds the study row's lock): every
  dimension is one block of `pairs_per_participant` pairs in random block order, practice pairs first and
  attention pairs ("please choose the image on the left") spread one per segment, never first. Left/right is
  randomised per pair and stored (`Trial.stimulus` is left, `Trial.stimulus_right` right); `Trial.pair_source`
  records the design and `Participant.seed` the seed.
* **Balanced** pairs take each stimulus's use so far in that dimension (non-pilot, not released) as the
  starting counts. **Adaptive** pairs are drawn from the dimension's shared posterior, with the pairs other
  participants hold but have not answered yet folded in by their expected update, so people who arrive at the
  same time get complementary pairs (one batch per participant, chosen at consent).
* **Answers**: the same compare-and-set on (step, position) as rating trials, then one `Choice` per
  (trial, dimension) (a unique constraint). An answer does not touch the posterior: an earlier version updated
  it in the answer's transaction under the posterior row's lock, and at 50 participants with zero think time
  every answer queued on that one row (bench/study.py --task pairwise: adaptive cost 4-13 ms more per
  submission than random pairs and halved the throughput).
* **The posterior catches up when it is read** (`posterior_catch_up`): the next consent, which draws pairs from
  it and already holds the study row's lock, first applies every answer not applied yet, in the order they were
  stored, under the posterior row's lock, and numbers them (`Choice.posterior_seq`), so `posterior_rebuild`
  replays them exactly. Each answer is applied exactly once, O(n^2) each (well under a millisecond at a few
  hundred stimuli), and no answer request waits for another.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from django.db import transaction
from django.db.models import Count, F
from django.utils import timezone
from django.utils.translation import gettext  # the reasons are shown on the error page

from analysis.pairs import ScalePosterior, draw_pairs, random_pairs
from study.models import Choice, PairPosterior, Participant, RatingDimension, Study, Trial

PRIOR_SD = 1.5
ATTENTION_SIDES = ("left", "right")  # Trial.expected_value 0 / 1 on attention pairs


class PairSubmissionError(Exception):
    """A pairwise answer no honest page can produce; services turn it into BadSubmission (HTTP 400)."""


@dataclass(frozen=True)
class PoolItem:
    id: int
    condition: str


# ---- the shared posterior --------------------------------------------------------------------------------


def _to_posterior(row: PairPosterior) -> ScalePosterior:
    n = len(row.items)
    mu = np.frombuffer(bytes(row.mu), dtype=np.float64).copy()
    cov = np.empty((n, n))
    upper = np.triu_indices(n)
    # Only the upper triangle is stored: the covariance is symmetric, and the bytes are what a read and a write
    # of the row cost (about half the server time of an update at 200 stimuli).
    cov[upper] = np.frombuffer(bytes(row.cov), dtype=np.float64)
    cov.T[upper] = cov[upper]
    return ScalePosterior(mu=mu, cov=cov, n_updates=row.n_updates)


def _store(row: PairPosterior, posterior: ScalePosterior) -> None:
    row.mu = posterior.mu.astype(np.float64).tobytes()
    row.cov = posterior.cov[np.triu_indices(len(posterior.mu))].astype(np.float64).tobytes()
    row.n_updates = posterior.n_updates


def posterior_get_or_create(*, study: Study, dimension: RatingDimension, items: Sequence[int]) -> PairPosterior:
    """The dimension's posterior row; a prior over `items` when there is none, rebuilt if the pool changed."""
    row = PairPosterior.objects.filter(study=study, dimension=dimension).first()
    if row is not None and list(row.items) == list(items):
        return posterior_catch_up(study=study, dimension=dimension)
    if row is not None:
        # The stimulus pool changed (conditions or sets edited with --force): replay the answers on the new pool.
        return posterior_rebuild(study=study, dimension=dimension, items=items)
    row = PairPosterior(study=study, dimension=dimension, items=list(items), prior_sd=PRIOR_SD)
    _store(row, ScalePosterior.prior(n_items=len(items), prior_sd=PRIOR_SD))
    with transaction.atomic():
        PairPosterior.objects.bulk_create([row], ignore_conflicts=True)
    return PairPosterior.objects.get(study=study, dimension=dimension)


def posterior_rebuild(*, study: Study, dimension: RatingDimension, items: Sequence[int] | None = None) -> PairPosterior:
    """Replay every non-pilot answer of the dimension in its recorded order onto a fresh prior."""
    with transaction.atomic():
        row = PairPosterior.objects.select_for_update().filter(study=study, dimension=dimension).first()
        if items is None:
            items = list(row.items) if row else [s.id for s in study_pool(study=study)]
        if row is None:
            row = PairPosterior(study=study, dimension=dimension, items=list(items), prior_sd=PRIOR_SD)
        index = {pk: i for i, pk in enumerate(items)}
        posterior = ScalePosterior.prior(n_items=len(items), prior_sd=row.prior_sd)
        answers = (
            _adaptive_answers(study=study, dimension=dimension)
            .order_by(F("posterior_seq").asc(nulls_last=True), "pk")
            .values_list("pk", "side", "trial__stimulus_id", "trial__stimulus_right_id")
        )
        seqs = []
        for pk, side, left, right in answers:
            if left in index and right in index:
                _apply(posterior, side, index[left], index[right])
                seqs.append((pk, posterior.n_updates))
        row.items = list(items)
        _store(row, posterior)
        row.save()
        for pk, seq in seqs:
            Choice.objects.filter(pk=pk).update(posterior_seq=seq)
    return row


def _apply(posterior: ScalePosterior, side: str, left: int, right: int) -> None:
    if side == Choice.Side.LEFT:
        posterior.update(winner=left, loser=right)
    elif side == Choice.Side.RIGHT:
        posterior.update(winner=right, loser=left)
    else:
        posterior.update_tie(a=left, b=right)


def _adaptive_answers(*, study: Study, dimension: RatingDimension):
    """What the posterior learns from: adaptive main pairs (no practice or attention pairs) of counted participants."""
    return Choice.objects.filter(
        trial__participant__study=study,
        dimension=dimension,
        trial__kind=Trial.Kind.RATING,
        trial__pair_source=Study.PairDesign.ADAPTIVE,
        trial__participant__is_pilot=False,
    )


def posterior_catch_up(*, study: Study, dimension: RatingDimension) -> PairPosterior | None:
    """Apply the answers stored since the posterior was last read, in storage order, each exactly once.

    Under the posterior row's lock (two catch-ups, or a catch-up and a rebuild, run one after the other); an
    answer committed while this runs is applied by the next one. Returns the row (None: no posterior yet).
    """
    with transaction.atomic():
        row = PairPosterior.objects.select_for_update().filter(study=study, dimension=dimension).first()
        if row is None:
            return None
        new = list(
            _adaptive_answers(study=study, dimension=dimension)
            .filter(posterior_seq=None)
            .order_by("pk")
            .values_list("pk", "side", "trial__stimulus_id", "trial__stimulus_right_id")
        )
        if not new:
            return row
        index = {pk: i for i, pk in enumerate(row.items)}
        posterior = _to_posterior(row)
        numbered = []
        for pk, side, left, right in new:
            if left in index and right in index:  # a stimulus since removed from the pool teaches nothing
                _apply(posterior, side, index[left], index[right])
                numbered.append(Choice(pk=pk, posterior_seq=posterior.n_updates))
        _store(row, posterior)
        row.save(update_fields=["mu", "cov", "n_updates", "updated_at"])
        Choice.objects.bulk_update(numbered, ["posterior_seq"], batch_size=500)
    return row


# ---- assignment ------------------------------------------------------------------------------------------


def study_pool(*, study: Study) -> list[PoolItem]:
    from study.selectors import study_pool as pool_of

    return [PoolItem(id=pk, condition=c) for pk, c in pool_of(study=study)]


def _active_pairs(*, study: Study) -> tuple[dict[str, Counter[int]], list[tuple[int, int, list[str]]]]:
    """Comparisons per dimension and stimulus, and the pairs not answered yet, of every counted participant.

    The counts are summed in SQL: the trials grow with every participant and consent holds the study row's lock,
    so reading them all into Python made each assignment slower as a study filled (about 0.4 ms per participant
    already in the study at 60 stimuli, so ~0.2 s per consent at 500), and every arrival waited for it.
    """
    rows = Trial.objects.filter(
        participant__study=study,
        participant__is_pilot=False,
        participant__released_at=None,
        kind=Trial.Kind.RATING,
        stimulus_right__isnull=False,
    )
    uses: dict[str, Counter[int]] = defaultdict(Counter)
    for side in ("stimulus_id", "stimulus_right_id"):
        for pk, dims, n in rows.values_list(side, "dimensions").annotate(n=Count("pk")).order_by():
            for name in dims:
                uses[name][pk] += n
    pending = list(rows.filter(answered_at=None).values_list("stimulus_id", "stimulus_right_id", "dimensions"))
    return uses, pending


def _segments(n_trials: int, n_checks: int, rng: np.random.Generator) -> list[int]:
    """Positions for attention checks: one per segment of the list, never first."""
    if n_checks <= 0 or n_trials <= 0:
        return []
    size = n_trials / n_checks
    return sorted(
        min(n_trials, max(1, int(size * k + rng.integers(1, max(2, math.ceil(size)))))) for k in range(n_checks)
    )


def plan_pair_trials(
    *, study: Study, participant: Participant, dimensions: list[RatingDimension], pool: Sequence[PoolItem], seed: int
) -> list[Trial]:
    """The participant's frozen list of (unsaved) pairwise trials; called under the study row's lock."""
    rng = np.random.default_rng(seed)
    ids = [item.id for item in pool]
    index = {pk: i for i, pk in enumerate(ids)}
    codes = {c: k for k, c in enumerate(sorted({item.condition for item in pool}))}
    conditions = [codes[item.condition] for item in pool]
    design = study.pair_design
    uses, unanswered = _active_pairs(study=study) if design != Study.PairDesign.RANDOM else ({}, [])
    order = list(rng.permutation(len(dimensions)))
    blocks: list[tuple[int, RatingDimension, np.ndarray]] = []
    for block, k in enumerate(order):
        dimension = dimensions[int(k)]
        counts = np.zeros(len(ids))
        for pk, n in uses.get(dimension.name, {}).items():
            if pk in index:
                counts[index[pk]] = n
        posterior = None
        if design == Study.PairDesign.ADAPTIVE:
            row = posterior_get_or_create(study=study, dimension=dimension, items=ids)
            pending = [
                (index[a], index[b])
                for a, b, dims in unanswered
                if dimension.name in dims and a in index and b in index
            ]
            posterior = _to_posterior(row).with_pending(pending)
        pairs = draw_pairs(
            design=design,
            n_items=len(ids),
            n_pairs=study.pairs_per_participant,
            rng=rng,
            conditions=conditions,
            within_fraction=study.pair_within_fraction,
            counts=counts,
            posterior=posterior,
        )
        blocks.append((block, dimension, pairs))
    trials: list[Trial] = []

    def add(
        kind: str, a: int, b: int, *, dimension: RatingDimension, block: int, source: str, expected: int | None = None
    ) -> None:
        if rng.random() < 0.5:  # left/right at random, recorded by which stimulus is stored as left
            a, b = b, a
        trials.append(
            Trial(
                participant=participant,
                index=len(trials),
                kind=kind,
                stimulus_id=ids[a],
                stimulus_right_id=ids[b],
                dimensions=[dimension.name],
                block=block,
                expected_value=expected,
                pair_source=source,
            )
        )

    first_block, first_dimension = blocks[0][0], blocks[0][1]
    for a, b in random_pairs(n_items=len(ids), n_pairs=study.practice_trials, rng=rng):
        add(Trial.Kind.PRACTICE, int(a), int(b), dimension=first_dimension, block=first_block, source="practice")
    main = [(block, dimension, int(a), int(b)) for block, dimension, pairs in blocks for a, b in pairs]
    checks = _segments(len(main), study.attention_checks, rng)
    for position, (block, dimension, a, b) in enumerate(main):
        while checks and checks[0] == position:
            checks.pop(0)
            x, y = random_pairs(n_items=len(ids), n_pairs=1, rng=rng)[0]
            add(
                Trial.Kind.ATTENTION,
                int(x),
                int(y),
                dimension=dimension,
                block=block,
                source="attention",
                expected=int(rng.integers(0, 2)),
            )
        add(Trial.Kind.RATING, a, b, dimension=dimension, block=block, source=design)
    for _ in checks:  # a check placed at the very end
        block, dimension = blocks[-1][0], blocks[-1][1]
        x, y = random_pairs(n_items=len(ids), n_pairs=1, rng=rng)[0]
        add(
            Trial.Kind.ATTENTION,
            int(x),
            int(y),
            dimension=dimension,
            block=block,
            source="attention",
            expected=int(rng.integers(0, 2)),
        )
    return trials


# ---- answers ---------------------------------------------------------------------------------------------


def _side(raw: object, *, allow_tie: bool, name: str) -> str:
    value = str(raw or "")
    if value in (Choice.Side.LEFT, Choice.Side.RIGHT) or (allow_tie and value == Choice.Side.TIE):
        return value
    raise PairSubmissionError(gettext("no valid choice for %(name)s") % {"name": name})


@dataclass(frozen=True)
class PairOutcome:
    recorded: bool
    screened_out: bool = False


def pair_answer(
    *,
    participant: Participant,
    trial: Trial,
    answers: Mapping[str, object],
    rt_ms: int | None,
    rt_by_dimension: Mapping[str, int | None],
    next_step: str,
) -> PairOutcome:
    """Store the current pair's choices exactly once, move the participant on and update the posterior.

    `trial` is the participant's current trial (checked by the caller, `services.trial_answer`); returns
    recorded=False when a racing request already answered it.
    """
    study = participant.study
    dimensions = {
        d.name: d for d in RatingDimension.objects.filter(study_id=participant.study_id, name__in=trial.dimensions)
    }
    if len(dimensions) != len(trial.dimensions):
        raise PairSubmissionError(gettext("a dimension of this trial was removed from the study"))
    sides = {
        name: _side(answers.get(name), allow_tie=study.pair_allow_tie and trial.kind != Trial.Kind.ATTENTION, name=name)
        for name in trial.dimensions
    }
    chosen = {Choice.Side.LEFT: trial.stimulus_id, Choice.Side.RIGHT: trial.stimulus_right_id, Choice.Side.TIE: None}
    passed = None
    if trial.kind == Trial.Kind.ATTENTION:
        passed = sides[trial.dimensions[0]] == ATTENTION_SIDES[trial.expected_value or 0]
    now = timezone.now()
    with transaction.atomic():
        moved = Participant.objects.filter(
            pk=participant.pk, step=Participant.Step.TRIALS, position=trial.index, released_at=None
        ).update(position=trial.index + 1, step=next_step)
        if not moved:
            return PairOutcome(recorded=False)
        screened_out = False
        if passed is False:
            from study.operations import participant_screen_out_if_due

            Participant.objects.filter(pk=participant.pk).update(attention_failures=F("attention_failures") + 1)
            participant.attention_failures += 1
            screened_out = participant_screen_out_if_due(
                participant=participant, failures=participant.attention_failures
            )
        Trial.objects.filter(pk=trial.pk).update(
            answered_at=now, rt_ms=rt_ms, attention_passed=passed, shown_at=trial.shown_at or now
        )
        # The adaptive posterior learns these at the next consent (posterior_catch_up), not here.
        Choice.objects.bulk_create(
            [
                Choice(
                    trial=trial,
                    dimension=dimensions[name],
                    side=side,
                    chosen_id=chosen[side],
                    rt_ms=rt_by_dimension.get(name, rt_ms),
                    created_at=now,
                )
                for name, side in sides.items()
            ]
        )
    return PairOutcome(recorded=True, screened_out=screened_out)


def pair_counts(*, study: Study) -> dict[int, int]:
    """Comparisons each stimulus has been in (non-pilot, answered): the admin's coverage at a glance."""
    out: dict[int, int] = {}
    base = Choice.objects.filter(
        trial__participant__study=study, trial__participant__is_pilot=False, trial__kind=Trial.Kind.RATING
    )
    for field in ("trial__stimulus_id", "trial__stimulus_right_id"):
        for row in base.values(field).annotate(n=Count("pk")):
            out[row[field]] = out.get(row[field], 0) + row["n"]
    return out
