"""Trial lists: least-rated first, conditions balanced within a participant, no long runs, checks spread out."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from study.assignment import (
    ScaleRange,
    StimulusRef,
    longest_run,
    order_without_long_runs,
    pick_stimuli,
    plan_trials,
)

CONDITIONS = ["baseline", "artistic-0.5", "artistic-1.0", "symbolic"]
POOL = [StimulusRef(id=i, condition=CONDITIONS[i % 4]) for i in range(24)]
SCALES = [ScaleRange("artistry", 1, 7, False), ScaleRange("symbolism", 1, 7, False)]


def test_sequential_participants_keep_counts_within_one():
    counts: Counter = Counter()
    rng = random.Random(1)
    for _ in range(30):
        chosen = pick_stimuli(pool=POOL, counts=counts, n=12, rng=rng)
        assert len({r.id for r in chosen}) == 12
        assert Counter(r.condition for r in chosen) == dict.fromkeys(CONDITIONS, 3)
        counts.update(r.id for r in chosen)
        values = [counts[r.id] for r in POOL]
        assert max(values) - min(values) <= 1


def test_uneven_trial_count_goes_to_least_rated_conditions():
    counts: Counter = Counter()
    rng = random.Random(2)
    for _ in range(12):
        chosen = pick_stimuli(pool=POOL, counts=counts, n=10, rng=rng)
        per_condition = Counter(r.condition for r in chosen)
        assert max(per_condition.values()) - min(per_condition.values()) <= 1
        counts.update(r.id for r in chosen)
    values = [counts[r.id] for r in POOL]
    assert max(values) - min(values) <= 1  # 12 * 10 = 120 = 5 * 24


def test_small_condition_is_never_over_asked():
    pool = [StimulusRef(i, "a") for i in range(10)] + [StimulusRef(100, "b")]
    chosen = pick_stimuli(pool=pool, counts={}, n=6, rng=random.Random(0))
    assert Counter(r.condition for r in chosen) == {"a": 5, "b": 1}
    with pytest.raises(ValueError, match="only 11 stimuli"):
        pick_stimuli(pool=pool, counts={}, n=12, rng=random.Random(0))


@pytest.mark.parametrize("seed", range(20))
def test_no_condition_runs_longer_than_allowed(seed):
    rng = random.Random(seed)
    items = pick_stimuli(pool=POOL, counts={}, n=12, rng=rng)
    order = order_without_long_runs(items, max_run=2, rng=rng)
    assert sorted(r.id for r in order) == sorted(r.id for r in items)
    assert longest_run([r.condition for r in order]) <= 2


def test_order_keeps_all_items_when_runs_cannot_be_avoided():
    items = [StimulusRef(i, "a") for i in range(5)] + [StimulusRef(9, "b")]
    order = order_without_long_runs(items, max_run=1, rng=random.Random(0))
    assert sorted(r.id for r in order) == [0, 1, 2, 3, 4, 9]


def test_plan_is_reproducible_from_its_seed_and_complete():
    def plan(seed):
        return plan_trials(
            pool=POOL,
            counts={},
            scales=SCALES,
            n_rated=12,
            n_practice=2,
            n_attention=2,
            layout="together",
            max_run=2,
            rng=random.Random(seed),
        )

    first = plan(42)
    assert first == plan(42)
    assert first != plan(43)
    kinds = [t.kind for t in first]
    assert kinds[:2] == ["practice", "practice"]
    assert kinds.count("rating") == 12 and kinds.count("attention") == 2
    assert kinds[2] != "attention"
    rated = {t.stimulus_id for t in first if t.kind == "rating"}
    assert not rated & {t.stimulus_id for t in first if t.kind == "practice"}
    for t in first:
        if t.kind == "attention":
            assert len(t.dimensions) == 1 and 1 <= t.expected_value <= 7
        else:
            assert t.dimensions == ("artistry", "symbolism")


def test_blocks_layout_rates_every_stimulus_once_per_dimension():
    plan = plan_trials(
        pool=POOL,
        counts={},
        scales=SCALES,
        n_rated=8,
        n_practice=2,
        n_attention=2,
        layout="blocks",
        max_run=2,
        rng=random.Random(5),
    )
    rated = [t for t in plan if t.kind == "rating"]
    assert len(rated) == 16
    blocks = {t.block: t.dimensions for t in rated}
    assert sorted(d for dims in blocks.values() for d in dims) == ["artistry", "symbolism"]
    for b in blocks:
        assert len({t.stimulus_id for t in rated if t.block == b}) == 8
    # Blocks are contiguous.
    order = [t.block for t in plan if t.kind != "practice"]
    assert order == sorted(order)


def test_slider_attention_checks_ask_for_an_end_of_the_scale():
    scales = [ScaleRange("liking", 0, 100, True)]
    plan = plan_trials(
        pool=POOL,
        counts={},
        scales=scales,
        n_rated=8,
        n_practice=0,
        n_attention=6,
        layout="together",
        max_run=2,
        rng=random.Random(1),
    )
    assert {t.expected_value for t in plan if t.kind == "attention"} <= {0, 100}
