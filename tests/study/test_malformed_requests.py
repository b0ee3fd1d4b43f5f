"""Every malformed participant request is a 4xx with the calm error page, whatever the value; nothing is stored.

Run on SQLite and on PostgreSQL (DATABASE_URL=postgres://...): NUL bytes, for one, only fail on PostgreSQL.
"""

from __future__ import annotations

import pytest
from django.test import Client

from study.models import Participant, QuestionnaireResponse, Rating
from tests.study.helpers import enter, to_trials

pytestmark = pytest.mark.django_db

FORM = "application/x-www-form-urlencoded"


def assert_calm(response, *statuses: int) -> None:
    assert response.status_code in statuses, (response.status_code, response.content[:300])
    body = response.content.decode("utf-8", "replace")
    assert "Sorry" in body and f'data-status="{response.status_code}"' in body
    assert "Traceback" not in body and "Exception" not in body


def trial_body(**fields: str) -> dict[str, str]:
    return {"step": "trials", "trial": "0", "artistry": "3", "symbolism": "3", **fields}


@pytest.mark.parametrize(
    "field, value",
    [
        ("artistry", "inf"),
        ("artistry", "-inf"),
        ("artistry", "nan"),
        ("artistry", "1e400"),
        ("artistry", "9" * 5000),
        ("artistry", "3\x00"),
        ("artistry", "٣"),
        ("trial", "9" * 5000),
        ("trial", "1e3"),
        ("trial", "inf"),
        ("trial", "0\x00"),
        ("step", "trials\x00"),
        ("artistry", "x" * 60_000),
    ],
)
def test_bad_answer_values_are_400_and_store_nothing(study, field, value):
    client = Client(raise_request_exception=True)
    url, participant = to_trials(client, study)
    assert_calm(client.post(url, trial_body(**{field: value})), 400)
    assert not Rating.objects.exists()
    participant.refresh_from_db()
    assert participant.position == 0


@pytest.mark.parametrize("rt", ["inf", "-inf", "nan", "1e400", "9" * 5000, "-1", "1" * 40, "0x10", ""])
def test_absurd_reaction_times_are_stored_as_missing(study, rt):
    # RTs are advisory (the server stamps its own times): nonsense becomes a missing value, never a 500.
    client = Client()
    url, _ = to_trials(client, study)
    response = client.post(url, trial_body(rt_ms=rt, rt_ms_artistry=rt, rt_ms_symbolism=rt))
    assert response.status_code == 303
    assert list(Rating.objects.values_list("rt_ms", flat=True)) == [None, None]


def test_nul_and_junk_in_the_address_are_4xx(study):
    client = Client()
    url = enter(client, study)
    for path in [
        f"/s/{study.slug}/p/%00/",
        f"/s/{study.slug}/p/a%00b/",
        f"/s/{study.slug}/preview/%00/",
        f"/s/{study.slug}/p/%FF%FE/",
        f"/s/{study.slug}/p/{'x' * 300}/",
        f"/s/{study.slug}/%00/",
        f"/s/{study.slug}/p/\u00e9/",
        f"{url}extra/",
        "/s/%00/",
    ]:
        assert_calm(client.get(path), 400, 404)
    for query in [
        {"PROLIFIC_PID": "a\x00b"},
        {"pid": "\x00"},
        {"PROLIFIC_PID": "ok", "SESSION_ID": "\x00"},
        {"PROLIFIC_PID": "x" * 5000},
        {"\x00": "1"},
    ]:
        assert_calm(client.get(f"/s/{study.slug}/", query), 400)
    assert_calm(client.get(f"/s/{study.slug}/?PROLIFIC_PID=%FF%FE%00"), 400)
    assert Participant.objects.count() == 1


@pytest.mark.parametrize(
    "content_type, body",
    [
        (f"{FORM}; charset=utf-16", "step=trials&trial=0&artistry=3&symbolism=3".encode("utf-16")),
        (f"{FORM}; charset=utf-16", b"step=trials&trial=0&artistry=3&symbolism=3"),
        (f"{FORM}; charset=utf-32", b"step=trials"),
        (f"{FORM}; charset=latin-1", b"step=trials&artistry=\xe9"),
        (f"{FORM}; charset=no-such-codec", b"step=trials"),
        (FORM, b"step=trials&trial=0&artistry=\xff\xfe&symbolism=3"),
        (FORM, b"step=\xc3\x28&trial=0"),
        ("multipart/form-data; boundary=x", b"--x\r\nbroken"),
        ("multipart/form-data", b"no boundary"),
        ("multipart/form-data; boundary=" + "b" * 300, b"--"),
        ("text/plain; charset=utf-16", "step=trials".encode("utf-16")),
    ],
)
def test_undecodable_bodies_are_4xx_before_csrf(study, content_type, body):
    client = Client(enforce_csrf_checks=True)  # the guard must answer before the CSRF middleware parses the body
    url, _ = to_trials(Client(), study)
    response = client.generic("POST", url, body, content_type=content_type)
    assert_calm(response, 400, 403, 415)
    if "charset=utf" in content_type or "latin" in content_type or "no-such" in content_type:
        assert response.status_code == 415
    assert not Rating.objects.exists()


def test_undecodable_bodies_from_the_participant_themselves(study):
    # The same bodies with a valid cookie and CSRF token: the guard, not the view, refuses them.
    client = Client()
    url, _ = to_trials(client, study)
    for content_type, body in [
        (f"{FORM}; charset=utf-16", "step=trials&trial=0".encode("utf-16")),
        (FORM, b"step=trials&trial=0&artistry=\x00&symbolism=3"),
        (FORM, b"step=trials&trial=0&artistry=%00&symbolism=3"),
        (FORM, b"step=trials&trial=0&artistry=3&symbolism=3&" + b"k=v&" * 1200),
    ]:
        assert_calm(client.generic("POST", url, body, content_type=content_type), 400, 413, 415)
    assert not Rating.objects.exists()


def test_oversized_bodies_are_413(study, settings):
    client = Client()
    url, _ = to_trials(client, study)
    big = b"step=trials&trial=0&artistry=3&symbolism=3&comment=" + b"x" * (settings.STUDY_MAX_BODY_BYTES + 1)
    assert_calm(client.generic("POST", url, big, content_type=FORM), 413)
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000  # Django's own limit, below ours: still the calm page
    settings.STUDY_MAX_BODY_BYTES = 10**9
    assert_calm(client.generic("POST", url, b"step=trials&x=" + b"y" * 5000, content_type=FORM), 413)
    assert not Rating.objects.exists()


def test_bad_content_length_is_400(study):
    client = Client()
    url, _ = to_trials(client, study)
    assert_calm(client.generic("POST", url, b"step=trials", content_type=FORM, CONTENT_LENGTH="-5"), 400)
    assert_calm(client.generic("POST", url, b"step=trials", content_type=FORM, CONTENT_LENGTH="lots"), 400)


def test_questionnaire_nul_and_huge_comment_are_400(study):
    client = Client()
    url = enter(client, study)
    Participant.objects.update(step="questionnaire")
    answers = {
        "step": "questionnaire",
        "age_band": "25-34",
        "gender": "na",
        "art_training": "none",
        "art_expertise": "3",
    }
    assert_calm(client.post(url, {**answers, "comment": "hello\x00"}), 400)
    for bad in [{"comment": "x" * 20_000}, {"art_expertise": "1e400"}, {"age_band": "\u00e9" * 100}]:
        response = client.post(url, {**answers, **bad})  # the questionnaire again, with the problem marked
        assert response.status_code == 400 and 'data-step="questionnaire"' in response.content.decode()
    assert not QuestionnaireResponse.objects.exists()


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "BREW"])
def test_wrong_methods_are_a_calm_405(study, method):
    client = Client()
    url = enter(client, study)
    for path in [url, f"/s/{study.slug}/", f"/s/{study.slug}/preview/{study.pilot_token}/"]:
        response = client.generic(method, path, b"step=consent&choice=agree", content_type=FORM)
        assert_calm(response, 405)
        assert "GET" in response["Allow"]
    assert client.post(f"/s/{study.slug}/", {"PROLIFIC_PID": "x"}).status_code == 405
    assert Participant.objects.get().step == "consent"


def test_nul_in_a_header_is_a_calm_400(study):
    # The User-Agent is stored with the participant: PostgreSQL would refuse the NUL with a DataError.
    assert_calm(Client().get(f"/s/{study.slug}/", {"PROLIFIC_PID": "p"}, HTTP_USER_AGENT="bot\x00"), 400)
    assert_calm(Client().get(f"/s/{study.slug}/", {"PROLIFIC_PID": "p"}, HTTP_REFERER="\x00"), 400)
    assert not Participant.objects.exists()


def test_a_foreign_host_is_a_calm_400(study):
    assert_calm(Client().get(f"/s/{study.slug}/", {"PROLIFIC_PID": "p"}, HTTP_HOST="evil.example"), 400)
    assert_calm(Client().get(f"/s/{study.slug}/", {"PROLIFIC_PID": "p"}, HTTP_HOST="bad\x00host"), 400)
    assert not Participant.objects.exists()


def test_unknown_addresses_under_the_study_are_a_calm_404(study):
    assert_calm(Client().get(f"/s/{study.slug}/p/"), 404)
    assert_calm(Client().get(f"/s/{study.slug}/nothing/here/"), 404)


@pytest.mark.parametrize("charset", ["base64", "idna", "rot13", "hex", "zlib", "utf-16", "nonsense", '"utf-7"'])
def test_charsets_that_break_djangos_request_constructor_are_415_at_the_wsgi_entry(study, charset):
    # Django applies a declared charset while building the request (decoding the query string with it), so
    # charset=base64 used to raise before any middleware: the WSGI wrapper in config/wsgi.py takes it out first.
    import io

    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    from config.wsgi import application

    client = Client()
    url, _ = to_trials(client, study)
    body = b"step=trials&trial=0&artistry=3&symbolism=3"
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": url,
        "QUERY_STRING": "%FF%FE=%FF%FE&x=1",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "HTTP_HOST": "testserver",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": f"{FORM}; charset={charset}",
        "HTTP_COOKIE": "; ".join(f"{k}={v.value}" for k, v in client.cookies.items()),
    }
    started = []
    # As Django's test client does: keep the test's database connection open across the request.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        response = application(environ, lambda status, headers, exc_info=None: started.append(status))
        page = b"".join(response).decode()
        response.close()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    assert started[0].startswith("415"), started
    assert "Sorry" in page and "Traceback" not in page
    assert not Rating.objects.exists()
