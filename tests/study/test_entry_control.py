"""Entry control: live studies need a recruitment id unless they opt in to anonymous entry; entering and consenting
are rate-limited per client address; people who have not consented reserve nothing and take no place in a quota."""

from __future__ import annotations

import pytest
from django.test import Client, RequestFactory, override_settings

from study import selectors
from study.models import Participant, Trial
from study.spec import study_spec_parse
from study.throttle import client_ip
from tests.study.factories import make_study
from tests.study.helpers import enter, post_step

pytestmark = pytest.mark.django_db


def test_a_live_study_refuses_entry_without_a_recruitment_id(study):
    assert study.status == "live" and not study.anonymous_entry
    response = Client().get(f"/s/{study.slug}/")
    assert response.status_code == 403
    page = response.content.decode()
    assert 'data-reason="recruitment_id_required"' in page
    assert "can only be started from the link on the recruitment site" in page
    assert not Participant.objects.exists()
    assert Client().get(f"/s/{study.slug}/", {"PROLIFIC_PID": "p1"}).status_code == 303  # with an id: in


def test_anonymous_entry_is_an_explicit_option(stimulus_set):
    study = make_study(stimulus_set=stimulus_set, anonymous_entry=True)
    assert Client().get(f"/s/{study.slug}/").status_code == 303
    pilot = make_study(stimulus_set=stimulus_set, status="pilot")  # pilots are flagged and outside quotas
    assert Client().get(f"/s/{pilot.slug}/").status_code == 303
    assert Participant.objects.get(study=pilot).is_pilot


def test_the_spec_key_defaults_to_off():
    base = {"slug": "s", "title": "t"}
    assert study_spec_parse(base).anonymous_entry is False
    assert study_spec_parse({**base, "anonymous_entry": True}).anonymous_entry is True


def test_unconsented_anonymous_participants_reserve_nothing(stimulus_set):
    study = make_study(stimulus_set=stimulus_set, anonymous_entry=True, max_participants=1)
    for _ in range(5):
        assert Client().get(f"/s/{study.slug}/").status_code == 303
    assert Participant.objects.filter(study=study).count() == 5
    assert not Trial.objects.exists()
    assert selectors.stimulus_allocation_counts(study=study) == {}
    assert selectors.study_enrolled_count(study=study) == 0
    # The one real place is still free for a recruited participant.
    client = Client()
    url = enter(client, study, "prolific-1")
    assert post_step(client, url, "consent", choice="agree").status_code == 303
    assert Participant.objects.get(consented_at__isnull=False).source == "prolific"


# django-ratelimit counts in fixed windows: a run that straddles a window's end may get up to twice the limit.
@override_settings(STUDY_ENTRY_RATE="30/h", STUDY_CONSENT_RATE="20/h")
def test_a_flood_of_anonymous_entries_from_one_address_is_throttled_and_reserves_nothing(stimulus_set):
    study = make_study(stimulus_set=stimulus_set, anonymous_entry=True, max_participants=200)
    statuses = []
    for _ in range(1000):  # a script that drops its cookies: every visit would be a new participant
        statuses.append(Client(REMOTE_ADDR="203.0.113.7").get(f"/s/{study.slug}/").status_code)
    admitted = statuses.count(303)
    assert 30 <= admitted <= 60
    assert statuses.count(429) == 1000 - admitted
    assert Participant.objects.filter(study=study).count() == admitted
    assert Trial.objects.count() == 0
    assert selectors.study_enrolled_count(study=study) == 0
    throttled = Client(REMOTE_ADDR="203.0.113.7").get(f"/s/{study.slug}/")
    assert "wait a minute" in throttled.content.decode() and throttled["Retry-After"] == "60"
    # Someone else, from another address, gets in at once.
    assert Client(REMOTE_ADDR="198.51.100.1").get(f"/s/{study.slug}/", {"PROLIFIC_PID": "real"}).status_code == 303


@override_settings(STUDY_ENTRY_RATE="1000/h", STUDY_CONSENT_RATE="5/d")
def test_consenting_is_throttled_per_address_so_one_client_cannot_fill_the_quota(stimulus_set):
    study = make_study(stimulus_set=stimulus_set, anonymous_entry=True, max_participants=10)
    outcomes = []
    for _ in range(12):
        client = Client(REMOTE_ADDR="203.0.113.9")
        url = client.get(f"/s/{study.slug}/")["Location"]
        outcomes.append(post_step(client, url, "consent", choice="agree").status_code)
    assert outcomes.count(303) == 5 and outcomes.count(429) == 7
    assert selectors.study_enrolled_count(study=study) == 5
    assert Trial.objects.values("participant").distinct().count() == 5
    # Real participants from elsewhere still find places.
    client = Client(REMOTE_ADDR="198.51.100.2")
    url = enter(client, study, "prolific-2")
    assert post_step(client, url, "consent", choice="agree").status_code == 303
    assert selectors.study_enrolled_count(study=study) == 6


def test_rate_limits_fail_open_when_the_cache_is_down(stimulus_set):
    study = make_study(stimulus_set=stimulus_set)
    broken = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    }
    with override_settings(CACHES=broken):
        assert Client().get(f"/s/{study.slug}/", {"PROLIFIC_PID": "p"}).status_code == 303


@override_settings(STUDY_CLIENT_IP_HEADER="HTTP_X_FORWARDED_FOR")
def test_behind_a_proxy_the_address_it_appended_counts():
    factory = RequestFactory()
    request = factory.get("/", HTTP_X_FORWARDED_FOR="6.6.6.6, 192.0.2.10", REMOTE_ADDR="10.0.0.1")
    assert client_ip(request) == "192.0.2.10"  # the client can forge the first entry, not the last
    assert client_ip(factory.get("/", HTTP_X_FORWARDED_FOR="junk", REMOTE_ADDR="10.0.0.1")) == "10.0.0.1"
    assert client_ip(factory.get("/", REMOTE_ADDR="10.0.0.1")) == "10.0.0.1"


def test_the_limits_count_in_redis_as_in_production(stimulus_set):
    """With the production cache (Redis) every worker shares one count; CI has Redis, local runs may skip."""
    import os
    import uuid

    from django.core.cache import caches

    from tests.conftest import skip_or_fail

    url = os.environ.get("CACHE_URL") or os.environ.get("CELERY_BROKER_URL") or ""
    if not url.startswith("redis"):
        skip_or_fail("no Redis URL (CACHE_URL or CELERY_BROKER_URL); CI sets one")
    redis = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": f"test-{uuid.uuid4().hex}",
        }
    }
    study = make_study(stimulus_set=stimulus_set, anonymous_entry=True)
    with override_settings(CACHES=redis, STUDY_ENTRY_RATE="10/h"):
        try:
            caches["default"].set("ping", 1)
        except Exception as exc:  # noqa: BLE001 - any connection failure means there is no Redis to test against
            skip_or_fail(f"Redis at {url} unreachable: {exc}")
        statuses = [Client(REMOTE_ADDR="203.0.113.20").get(f"/s/{study.slug}/").status_code for _ in range(40)]
    assert 10 <= statuses.count(303) <= 20 and statuses.count(429) == 40 - statuses.count(303)
    assert Participant.objects.filter(study=study).count() == statuses.count(303)
