"""The retry policy both clients share, in process: its clock, sleep and random are
injected, so every delay, attempt count and message is exact, and no socket is opened."""

from __future__ import annotations

import logging
import socket

import httpx
import pytest

from openai_costs.request_deadline import Deadline
from openai_costs.safe_http import (
    BearerClient,
    GaveUp,
    Refused,
    RetryPolicy,
    ServiceError,
    error_message,
    is_retryable,
    retry_after_seconds,
)
from tests.fake_clock import FakeClock

WHAT = "OpenAI GET /v1/organization/costs"


class Answers:
    """A request that answers each call with the next response, or raises the next
    exception; each call takes ``takes`` seconds of the fake clock."""

    def __init__(
        self, fake_time: FakeClock, *answers: httpx.Response | Exception, takes: float = 0.0
    ) -> None:
        self._fake_time = fake_time
        self._answers = list(answers)
        self._takes = takes
        self.calls = 0

    def __call__(self) -> httpx.Response:
        self.calls += 1
        self._fake_time.advance(self._takes)
        answer = self._answers[min(self.calls, len(self._answers)) - 1]  # the last repeats
        if isinstance(answer, Exception):
            raise answer
        return answer


class RecordingDeadline(Deadline):
    """Records the limit each attempt is given."""

    def __init__(self) -> None:
        super().__init__()
        self.limits: list[float] = []

    def start(self, seconds: float) -> None:
        self.limits.append(seconds)
        super().start(seconds)


def policy(
    fake_time: FakeClock, max_retry_seconds: float = 300, random: float = 0.5, **options
) -> RetryPolicy:
    return RetryPolicy(
        max_retry_seconds,
        sleep=fake_time.sleep,
        random=lambda: random,
        clock=fake_time.clock,
        **options,
    )


def busy(status: int = 503, message: str = "Service unavailable", **headers: str):
    return httpx.Response(status, json={"error": {"message": message}}, headers=headers)


OK = httpx.Response(200, json={"data": []})
DROPPED = httpx.RemoteProtocolError("Server disconnected without sending a response.")


# -- when it succeeds -----------------------------------------------------------------------


def test_a_first_answer_of_2xx_is_returned_after_one_attempt_without_sleeping(fake_time):
    created = httpx.Response(201, text="made")
    assert policy(fake_time).send(WHAT, Answers(fake_time, created)) == (created, 1)
    assert fake_time.sleeps == []


def test_backoff_doubles_from_one_second_with_full_jitter(fake_time):
    request = Answers(fake_time, busy(), busy(500), busy(502), busy(504), OK)
    response, attempts = policy(fake_time, random=0.5).send(WHAT, request)
    assert (response, attempts, request.calls) == (OK, 5, 5)
    assert fake_time.sleeps == [0.5, 1.0, 2.0, 4.0]


def test_408_429_and_every_5xx_are_retried(fake_time):
    request = Answers(fake_time, busy(408), busy(429), busy(500), busy(599), OK)
    assert policy(fake_time, random=1.0).send(WHAT, request) == (OK, 5)
    assert fake_time.sleeps == [1.0, 2.0, 4.0, 8.0]


def test_a_dropped_connection_is_retried(fake_time):
    request = Answers(fake_time, DROPPED, OK)
    assert policy(fake_time).send(WHAT, request) == (OK, 2)
    assert fake_time.sleeps == [0.5]


def test_a_timeout_is_retried(fake_time):
    request = Answers(fake_time, httpx.ReadTimeout("timed out"), OK, takes=5)
    assert policy(fake_time, request_timeout=5).send(WHAT, request) == (OK, 2)
    assert fake_time.sleeps == [0.5]


# -- Retry-After ----------------------------------------------------------------------------


def test_retry_after_seconds_are_waited_when_longer_than_the_jitter(fake_time):
    wait = busy(429, **{"Retry-After": "3"})
    request = Answers(fake_time, wait, wait, OK)
    assert policy(fake_time, random=0.0).send(WHAT, request) == (OK, 3)
    assert fake_time.sleeps == [3.0, 3.0]


def test_retry_after_never_shortens_the_jitter(fake_time):
    request = Answers(fake_time, busy(503, **{"Retry-After": "0"}), OK)
    assert policy(fake_time, random=0.75).send(WHAT, request) == (OK, 2)
    assert fake_time.sleeps == [0.75]


def test_a_retry_after_date_in_the_past_leaves_the_jitter(fake_time):
    past = busy(503, **{"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert policy(fake_time, random=0.25).send(WHAT, Answers(fake_time, past, OK)) == (OK, 2)
    assert fake_time.sleeps == [0.25]


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_retry_after_is_read_as_seconds_or_an_http_date(header, seconds):
    assert retry_after_seconds(header) == seconds


# -- the end of the budget ------------------------------------------------------------------


def test_the_budget_ends_the_retries_with_one_exact_message(fake_time):
    request = Answers(fake_time, busy())
    with pytest.raises(GaveUp) as gave_up:
        policy(fake_time, max_retry_seconds=10, random=1.0).send(WHAT, request)
    # 1 + 2 + 4 = 7 s slept; the next wait (8 s) would end after the 10 s budget.
    assert str(gave_up.value) == (
        "OpenAI GET /v1/organization/costs failed after 4 attempts over 7s: "
        "last error HTTP 503: Service unavailable"
    )
    assert (gave_up.value.status, gave_up.value.attempts, request.calls) == (503, 4, 4)
    assert fake_time.sleeps == [1.0, 2.0, 4.0]


def test_the_time_requests_take_counts_against_the_budget(fake_time):
    request = Answers(fake_time, busy(), takes=2)
    with pytest.raises(GaveUp) as gave_up:
        policy(fake_time, max_retry_seconds=10, random=1.0).send(WHAT, request)
    # Three requests of 2 s and waits of 1 and 2 s: 9 s; waiting 4 more would pass 10 s.
    assert str(gave_up.value).startswith(f"{WHAT} failed after 3 attempts over 9s: ")
    assert fake_time.sleeps == [1.0, 2.0]


def test_a_retry_after_beyond_the_budget_gives_up_at_once(fake_time):
    request = Answers(fake_time, busy(429, "Rate limit reached", **{"Retry-After": "1000"}))
    with pytest.raises(GaveUp) as gave_up:
        policy(fake_time, max_retry_seconds=300).send(WHAT, request)
    assert str(gave_up.value) == (
        "OpenAI GET /v1/organization/costs failed after 1 attempt over 0s (it asked to wait "
        "1000s more): last error HTTP 429: Rate limit reached"
    )
    assert (gave_up.value.status, gave_up.value.attempts) == (429, 1)
    assert fake_time.sleeps == []


def test_a_budget_of_zero_is_one_attempt(fake_time):
    with pytest.raises(GaveUp) as gave_up:
        policy(fake_time, max_retry_seconds=0).send(WHAT, Answers(fake_time, busy()))
    assert gave_up.value.attempts == 1
    assert fake_time.sleeps == []


def test_the_backoff_is_capped_at_60_seconds_and_attempts_at_100(fake_time):
    request = Answers(fake_time, httpx.Response(502, text="bad gateway"))
    with pytest.raises(GaveUp) as gave_up:
        policy(fake_time, max_retry_seconds=10**6, random=1.0).send(WHAT, request)
    # 1 + 2 + 4 + 8 + 16 + 32, then 93 waits of 60 s.
    assert fake_time.sleeps == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0] + [60.0] * 93
    assert str(gave_up.value) == (
        f"{WHAT} failed after 100 attempts over 5643s: last error HTTP 502: bad gateway"
    )


def test_a_clock_that_never_moves_still_ends_after_100_attempts():
    sleeps: list[float] = []
    never_moves = RetryPolicy(1000, sleep=sleeps.append, random=lambda: 1.0, clock=lambda: 0.0)
    request = Answers(FakeClock(), busy())
    with pytest.raises(GaveUp, match=r"after 100 attempts over 0s: last error HTTP 503"):
        never_moves.send(WHAT, request)
    assert request.calls == 100
    assert len(sleeps) == 99


def test_a_connection_that_keeps_dropping_is_named_in_the_last_error(fake_time):
    with pytest.raises(GaveUp) as gave_up:
        policy(fake_time, max_retry_seconds=2, random=1.0).send(WHAT, Answers(fake_time, DROPPED))
    assert str(gave_up.value) == (
        f"{WHAT} failed after 2 attempts over 1s: last error connection error "
        "(RemoteProtocolError: Server disconnected without sending a response.)"
    )
    assert (gave_up.value.status, gave_up.value.attempts) == (None, 2)


def test_a_timeout_names_the_request_timeout(fake_time):
    request = Answers(fake_time, httpx.ReadTimeout("timed out"), takes=5)
    with pytest.raises(GaveUp) as gave_up:
        policy(fake_time, max_retry_seconds=5, request_timeout=5).send(WHAT, request)
    assert str(gave_up.value) == (
        f"{WHAT} failed after 1 attempt over 5s: last error timeout: no complete response within 5s"
    )


def test_the_first_attempt_gets_the_whole_request_timeout_and_a_later_one_what_is_left(
    fake_time,
):
    deadline = RecordingDeadline()
    request = Answers(fake_time, busy(), httpx.ReadTimeout("timed out"))
    retries = policy(fake_time, 3, random=1.0, request_timeout=5, deadline=deadline)

    def slow_second_attempt() -> httpx.Response:
        if request.calls == 1:
            fake_time.advance(2)  # the second attempt runs until the budget is over
        return request()

    with pytest.raises(GaveUp) as gave_up:
        retries.send(WHAT, slow_second_attempt)
    assert deadline.limits == [5, 2.0]
    assert deadline.at is None  # cleared after each attempt
    assert str(gave_up.value) == (
        f"{WHAT} failed after 2 attempts over 3s: last error timeout: the retry budget of 3s "
        "ran out during the request"
    )


# -- final answers --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 499])
def test_any_other_status_is_a_final_refusal_after_one_attempt(fake_time, status):
    request = Answers(fake_time, busy(status, "no such thing"))
    with pytest.raises(Refused) as refused:
        policy(fake_time).send(WHAT, request)
    assert (refused.value.status, refused.value.message, refused.value.attempts) == (
        status,
        "no such thing",
        1,
    )
    assert request.calls == 1
    assert fake_time.sleeps == []


def test_a_refusal_after_retries_counts_every_attempt(fake_time):
    request = Answers(fake_time, busy(), busy(404, "unknown integration int-nope"))
    with pytest.raises(Refused) as refused:
        policy(fake_time).send(WHAT, request)
    assert (refused.value.status, refused.value.attempts) == (404, 2)
    assert str(refused.value) == "unknown integration int-nope"
    assert fake_time.sleeps == [0.5]


def test_only_408_429_and_5xx_are_retryable():
    statuses = [300, 400, 404, 408, 429, 499, 500, 503, 599, 600]
    assert [s for s in statuses if is_retryable(s)] == [408, 429, 500, 503, 599]


# -- messages -------------------------------------------------------------------------------


def scrub_key(text: str) -> str:
    return text.replace("sk-admin-SECRET", "***")


def test_a_refusal_message_is_scrubbed(fake_time):
    answer = httpx.Response(401, json={"error": {"message": "Incorrect key sk-admin-SECRET"}})
    with pytest.raises(Refused) as refused:
        policy(fake_time, scrub=scrub_key).send(WHAT, Answers(fake_time, answer))
    assert refused.value.message == "Incorrect key ***"


def test_a_connection_error_is_scrubbed(fake_time):
    echoed = httpx.ConnectError("refused for sk-admin-SECRET")
    with pytest.raises(GaveUp) as gave_up:
        policy(fake_time, max_retry_seconds=0, scrub=scrub_key).send(
            WHAT, Answers(fake_time, echoed)
        )
    assert str(gave_up.value) == (
        f"{WHAT} failed after 1 attempt over 0s: last error connection error "
        "(ConnectError: refused for ***)"
    )


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (httpx.Response(400, json={"error": {"message": "bad month"}}), "bad month"),
        (httpx.Response(400, json={"error": "bad month"}), "bad month"),
        (httpx.Response(400, json={"message": "bad month"}), "bad month"),
        (httpx.Response(400, json={"detail": "bad month"}), "bad month"),
        (httpx.Response(400, json={"detail": [{"loc": "month"}]}), '[{"loc": "month"}]'),
        (httpx.Response(400, json={"error": {"message": "two\n  lines"}}), "two lines"),
        (httpx.Response(400, text="<html>\n" + "x" * 300), "<html> " + "x" * 193),
        (httpx.Response(503, text=""), "Service Unavailable"),
    ],
    ids=["error.message", "error", "message", "detail", "detail list", "lines", "text", "empty"],
)
def test_the_services_explanation_is_taken_from_its_body(answer, message):
    assert error_message(answer) == message


def test_each_attempt_is_logged_with_its_status_and_the_wait(fake_time, caplog):
    caplog.set_level(logging.WARNING, logger="openai_costs.safe_http")
    request = Answers(fake_time, busy(), DROPPED, busy(404, "gone"))
    with pytest.raises(Refused):
        policy(fake_time, random=1.0).send(WHAT, request)
    assert [r.getMessage() for r in caplog.records] == [
        f"{WHAT}: attempt 1, status 503 (HTTP 503: Service unavailable), retrying in 1.00s",
        f"{WHAT}: attempt 2, status none (connection error (RemoteProtocolError: Server "
        "disconnected without sending a response.)), retrying in 2.00s",
        f"{WHAT}: attempt 3, HTTP 404, not retrying",
    ]


def test_giving_up_is_logged_with_the_time_spent(fake_time, caplog):
    caplog.set_level(logging.WARNING, logger="openai_costs.safe_http")
    with pytest.raises(GaveUp):
        policy(fake_time, max_retry_seconds=1, random=1.0).send(WHAT, Answers(fake_time, busy()))
    assert [r.getMessage() for r in caplog.records][-1] == (
        f"{WHAT}: attempt 2, status 503, giving up after 1.0s"
    )


# -- the outcomes as a client's own errors --------------------------------------------------


class ServiceDown(ServiceError):
    """A client's error."""


class ServiceSaidNo(ServiceDown):
    """The same client's error for a refusal."""


def bearer_client(fake_time: FakeClock, max_retry_seconds: float = 300) -> BearerClient:
    return BearerClient(
        secret="sk-admin-SECRET",
        setting="admin_api_key",
        request_timeout=60,
        max_retry_seconds=max_retry_seconds,
        sleep=fake_time.sleep,
        random=lambda: 0.5,
        clock=fake_time.clock,
        transport=httpx.MockTransport(lambda request: OK),
    )


def rejection(status: int, message: str) -> str:
    return f"refused (HTTP {status}): {message}"


def test_a_client_gets_the_answer_and_the_attempts(fake_time):
    request = Answers(fake_time, busy(), OK)
    sent = bearer_client(fake_time).send_or_raise(WHAT, request, ServiceDown, rejection)
    assert sent == (OK, 2)


def test_a_refusal_becomes_the_clients_rejection_with_its_text(fake_time):
    answer = httpx.Response(401, json={"error": {"message": "Incorrect key sk-admin-SECRET"}})
    with pytest.raises(ServiceSaidNo) as raised:
        bearer_client(fake_time).send_or_raise(
            WHAT,
            Answers(fake_time, busy(), answer),
            ServiceDown,
            rejection,
            rejected_type=ServiceSaidNo,
        )
    error = raised.value
    assert (str(error), error.status_code, error.attempts) == (
        "refused (HTTP 401): Incorrect key ***",
        401,
        2,
    )
    assert error.__cause__ is None
    assert error.__suppress_context__


def test_a_refusal_is_the_clients_error_when_it_has_no_rejection_type(fake_time):
    with pytest.raises(ServiceDown) as raised:
        bearer_client(fake_time).send_or_raise(
            WHAT, Answers(fake_time, busy(404, "gone")), ServiceDown, rejection
        )
    assert type(raised.value) is ServiceDown
    assert str(raised.value) == "refused (HTTP 404): gone"


def test_giving_up_becomes_the_clients_error_with_the_policys_text(fake_time):
    with pytest.raises(ServiceDown) as raised:
        bearer_client(fake_time, max_retry_seconds=1).send_or_raise(
            WHAT, Answers(fake_time, busy()), ServiceDown, rejection, rejected_type=ServiceSaidNo
        )
    error = raised.value
    assert type(error) is ServiceDown
    assert (str(error), error.status_code, error.attempts) == (
        f"{WHAT} failed after 2 attempts over 0s: last error HTTP 503: Service unavailable",
        503,
        2,
    )
    assert error.__suppress_context__


def test_a_problem_not_retried_becomes_the_clients_error(fake_time):
    unknown = httpx.ConnectError("[Errno -2] Name or service not known")
    unknown.__cause__ = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    with pytest.raises(ServiceDown) as raised:
        bearer_client(fake_time).send_or_raise(
            WHAT, Answers(fake_time, unknown), ServiceDown, rejection, rejected_type=ServiceSaidNo
        )
    error = raised.value
    assert type(error) is ServiceDown
    assert (str(error), error.status_code, error.attempts) == (
        f"{WHAT} failed: the host name the host does not resolve (Name or service not "
        "known); not retried: check the URL setting (and this machine's DNS)",
        None,
        1,
    )
    assert fake_time.sleeps == []
