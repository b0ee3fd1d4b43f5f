"""Drawing a participant's frozen trial list: which stimuli (least-rated first), in which order.

Pure functions over plain data and a seeded `random.Random`, so a list can be re-derived from its seed and the
allocation counts, and tested without a database.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class StimulusRef:
    id: int
    condition: str


@dataclass(frozen=True)
class PlannedTrial:
    kind: str  # practice | rating | attention
    stimulus_id: int
    dimensions: tuple[str, ...]
    block: int = 0
    expected_value: int | None = None


@dataclass(frozen=True)
class ScaleRange:
    name: str
    minimum: int
    maximum: int
    is_slider: bool


def condition_quotas(
    *, conditions: dict[str, int], counts_by_condition: dict[str, int], n: int, rng: random.Random
) -> dict[str, int]:
    """Split n trials over conditions as evenly as possible; spare trials go to the least-rated conditions.

    `conditions` maps condition -> number of available stimuli, so a small condition is never over-asked.
    """
    quotas = dict.fromkeys(conditions, 0)
    remaining = n
    while remaining > 0:
        open_conditions = [c for c in conditions if quotas[c] < conditions[c]]
        if not open_conditions:
            raise ValueError(f"only {sum(conditions.values())} stimuli for {n} trials")
        base = remaining // len(open_conditions)
        if base == 0:
            # Fewer trials left than conditions: prefer conditions rated least so far (then at random).
            open_conditions.sort(key=lambda c: (counts_by_condition.get(c, 0) + quotas[c], rng.random()))
            for c in open_conditions[:remaining]:
                quotas[c] += 1
            break
        for c in open_conditions:
            take = min(base, conditions[c] - quotas[c])
            quotas[c] += take
            remaining -= take
    return quotas


def pick_stimuli(
    *, pool: Sequence[StimulusRef], counts: dict[int, int], n: int, rng: random.Random
) -> list[StimulusRef]:
    """Least-rated first within each condition, conditions balanced within the participant; ties broken at random."""
    by_condition: dict[str, list[StimulusRef]] = {}
    for ref in pool:
        by_condition.setdefault(ref.condition, []).append(ref)
    counts_by_condition = Counter()
    for ref in pool:
        counts_by_condition[ref.condition] += counts.get(ref.id, 0)
    quotas = condition_quotas(
        conditions={c: len(refs) for c, refs in by_condition.items()},
        counts_by_condition=dict(counts_by_condition),
        n=n,
        rng=rng,
    )
    chosen: list[StimulusRef] = []
    for condition in sorted(by_condition):
        refs = sorted(by_condition[condition], key=lambda r: (counts.get(r.id, 0), rng.random()))
        chosen.extend(refs[: quotas[condition]])
    return chosen


def longest_run(conditions: Sequence[str]) -> int:
    best = run = 0
    previous = None
    for c in conditions:
        run = run + 1 if c == previous else 1
        previous = c
        best = max(best, run)
    return best


def order_without_long_runs(
    items: Sequence[StimulusRef], *, max_run: int, rng: random.Random, attempts: int = 200
) -> list[StimulusRef]:
    """Random order in which no condition appears more than `max_run` times in a row (when that is possible).

    Sequential sampling weighted by what is left, restarted on a dead end; the best attempt is kept otherwise.
    """
    best: list[StimulusRef] = list(items)
    rng.shuffle(best)
    best_run = longest_run([r.condition for r in best])
    if max_run < 1 or best_run <= max_run:
        return best
    for _ in range(attempts):
        left: dict[str, list[StimulusRef]] = {}
        for ref in items:
            left.setdefault(ref.condition, []).append(ref)
        for refs in left.values():
            rng.shuffle(refs)
        order: list[StimulusRef] = []
        while any(left.values()):
            tail = [r.condition for r in order[-max_run:]]
            blocked = tail[0] if len(tail) == max_run and len(set(tail)) == 1 else None
            options = sorted(c for c, refs in left.items() if refs and c != blocked)
            if not options:
                break
            # Weighting by what is left avoids painting the largest condition into a corner at the end.
            weights = [len(left[c]) for c in options]
            condition = rng.choices(options, weights=weights)[0]
            order.append(left[condition].pop())
        if len(order) == len(items):
            return order
        candidate = order + [r for refs in left.values() for r in refs]
        run = longest_run([r.condition for r in candidate])
        if run < best_run:
            best, best_run = candidate, run
    return best


def instructed_value(scale: ScaleRange, rng: random.Random) -> int:
    """The response an attention check asks for: a random scale point, or a slider end (easy to hit exactly)."""
    if scale.is_slider:
        return rng.choice([scale.minimum, scale.maximum])
    return rng.randint(scale.minimum, scale.maximum)


def spread_positions(*, length: int, count: int, rng: random.Random) -> list[int]:
    """Insertion points for attention checks: one per equal segment, never first, so they cannot be anticipated."""
    if count <= 0:
        return []
    positions = []
    for i in range(count):
        low = max(1, (length * i) // count)
        high = max(low, (length * (i + 1)) // count)
        positions.append(rng.randint(low, high))
    return positions


def extra_stimuli(
    *, pool: Sequence[StimulusRef], rated_ids: set[int], counts: dict[int, int], n: int, rng: random.Random
) -> list[StimulusRef]:
    """Stimuli for practice trials and attention checks, each used once: a participant never sees an image twice.

    Drawn without replacement from outside the participant's rated set, least-used first (so the extras do not
    wear out a few images); only a pool too small for that falls back on rated stimuli, least-used first too.
    """

    def by_use(refs: list[StimulusRef]) -> list[StimulusRef]:
        return sorted(refs, key=lambda r: (counts.get(r.id, 0), rng.random()))

    outside = by_use([r for r in pool if r.id not in rated_ids])
    chosen = outside[:n]
    if len(chosen) < n:
        inside = by_use([r for r in pool if r.id in rated_ids])
        chosen += inside[: n - len(chosen)]
    while len(chosen) < n:  # a pool smaller than the extras themselves: repeats cannot be avoided
        chosen.append(rng.choice(list(pool)))
    rng.shuffle(chosen)  # least-used decides which images, not which comes first
    return chosen


def plan_trials(
    *,
    pool: Sequence[StimulusRef],
    counts: dict[int, int],
    scales: Sequence[ScaleRange],
    n_rated: int,
    n_practice: int,
    n_attention: int,
    layout: str,
    max_run: int,
    rng: random.Random,
) -> list[PlannedTrial]:
    """The whole frozen list: practice first, then rated stimuli (in blocks if asked) with attention checks mixed in."""
    chosen = pick_stimuli(pool=pool, counts=counts, n=n_rated, rng=rng)
    chosen_ids = {r.id for r in chosen}
    names = tuple(s.name for s in scales)
    blocks: list[tuple[str, ...]]
    if layout == "blocks" and len(names) > 1:
        order = list(names)
        rng.shuffle(order)
        blocks = [(name,) for name in order]
    else:
        blocks = [names]

    per_block = [n_attention // len(blocks) + (1 if b < n_attention % len(blocks) else 0) for b in range(len(blocks))]
    extras = extra_stimuli(pool=pool, rated_ids=chosen_ids, counts=counts, n=n_practice + sum(per_block), rng=rng)
    plan: list[PlannedTrial] = []
    for i in range(n_practice):
        ref = extras.pop(0)
        dims = blocks[i % len(blocks)] if len(blocks) > 1 else blocks[0]
        plan.append(PlannedTrial(kind="practice", stimulus_id=ref.id, dimensions=dims))

    by_name = {s.name: s for s in scales}
    for b, dims in enumerate(blocks):
        ordered = order_without_long_runs(chosen, max_run=max_run, rng=rng)
        sequence = [PlannedTrial(kind="rating", stimulus_id=r.id, dimensions=dims, block=b) for r in ordered]
        for position in sorted(spread_positions(length=len(sequence), count=per_block[b], rng=rng), reverse=True):
            scale = by_name[dims[0]]
            check = PlannedTrial(
                kind="attention",
                stimulus_id=extras.pop(0).id,
                dimensions=(scale.name,),
                block=b,
                expected_value=instructed_value(scale, rng),
            )
            sequence.insert(position, check)
        plan.extend(sequence)
    return plan
