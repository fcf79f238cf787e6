"""One hook per answered request: the access line and the metrics, from what the gate and proxy noted."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from prometheus_client import REGISTRY

from gateway.auth.decide import Decision, Verdict
from gateway.auth.identity import SpoofedHeaders
from gateway.auth.principal import Principal
from gateway.config import IdentityConfig, parse_config
from gateway.ops import access_log
from gateway.ops.notes import NOTES, Notes
from gateway.ops.observe import RequestObserver, observer_class

UPSTREAMS = [{"path": "/", "url": "http://app:8000"}]


@pytest.fixture(autouse=True)
def access_logger_on() -> Iterator[None]:
    logging.getLogger("aiohttp.access").setLevel(logging.INFO)  # as logs.configure leaves it
    yield
    logging.getLogger("aiohttp.access").setLevel(logging.NOTSET)


def observe(settings: dict[str, object], verdict: Verdict | None, status: int = 200) -> None:
    cls = observer_class(parse_config({"upstreams": UPSTREAMS, **settings}))
    assert cls is not None
    request = make_mocked_request("GET", "/reports?page=2&code=SECRET")
    notes = request[NOTES] = Notes(time.perf_counter() - 0.0125, "rid-7")
    if verdict is not None:
        notes.verdict = verdict
        notes.upstream = "http://app:8000"
        notes.upstream_seconds = 0.004
    observer = cls(logging.getLogger("aiohttp.access"), "")
    assert observer.enabled
    observer.log(request, web.Response(status=status), 0.0125)
    access_log.flush()


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def allowed() -> Verdict:
    principal = Principal(claims={"sub": "sub-alice"}, access_token="not-logged", access_expires_at=0.0)
    return Verdict(Decision.ALLOW, SpoofedHeaders(IdentityConfig()), principal, rule="/reports")


async def test_nothing_to_observe_means_no_logger_at_all() -> None:
    assert observer_class(parse_config({"upstreams": UPSTREAMS, "logging": {"access_log": False}})) is None


async def test_a_json_line_names_the_rule_decision_user_and_upstream(capsys: pytest.CaptureFixture[str]) -> None:
    observe({"logging": {"format": "json"}}, allowed())
    record = json.loads(capsys.readouterr().err)
    assert record["path"] == "/reports?page=2&code=REDACTED" and record["request_id"] == "rid-7"
    assert (record["rule"], record["decision"], record["sub"], record["upstream"]) == ("/reports", "allow", "sub-alice", "http://app:8000")


async def test_the_gateways_own_answers_are_decision_gateway(capsys: pytest.CaptureFixture[str]) -> None:
    observe({}, None, status=404)
    assert "decision=" not in capsys.readouterr().err  # text: no gate fields for the gateway's own answers
    before = sample("gateway_requests_total", decision="gateway", status="404")
    observe({"metrics_listen": "127.0.0.1:9", "logging": {"access_log": False}}, None, status=404)
    assert sample("gateway_requests_total", decision="gateway", status="404") == before + 1


async def test_metrics_count_the_request_and_time_it_and_its_upstream(capsys: pytest.CaptureFixture[str]) -> None:
    settings = {"metrics_listen": "127.0.0.1:9", "logging": {"access_log": False}}
    counted = sample("gateway_requests_total", decision="allow", status="200")
    timed = sample("gateway_request_duration_seconds_count", decision="allow")
    fast = sample("gateway_upstream_duration_seconds_bucket", upstream="http://app:8000", le="0.005")
    observe(settings, allowed())
    assert sample("gateway_requests_total", decision="allow", status="200") == counted + 1
    assert sample("gateway_request_duration_seconds_count", decision="allow") == timed + 1
    assert sample("gateway_upstream_duration_seconds_bucket", upstream="http://app:8000", le="0.005") == fast + 1
    assert capsys.readouterr().err == ""  # the access log is off


async def test_a_websocket_is_counted_not_timed() -> None:
    settings = {"metrics_listen": "127.0.0.1:9", "logging": {"access_log": False}}
    counted = sample("gateway_requests_total", decision="allow", status="101")
    timed = sample("gateway_request_duration_seconds_count", decision="allow")
    observe(settings, allowed(), status=101)
    assert sample("gateway_requests_total", decision="allow", status="101") == counted + 1
    assert sample("gateway_request_duration_seconds_count", decision="allow") == timed


async def test_the_duration_is_timed_from_the_edge_not_by_the_loops_millisecond_clock(capsys: pytest.CaptureFixture[str]) -> None:
    cls = observer_class(parse_config({"upstreams": UPSTREAMS, "logging": {"format": "json"}}))
    assert cls is not None
    request = make_mocked_request("GET", "/")
    request[NOTES] = Notes(time.perf_counter() - 0.0004, "rid")
    cls(logging.getLogger("aiohttp.access"), "").log(request, web.Response(), 0.0)  # uvloop would say 0 ms
    access_log.flush()
    assert 0.4 <= json.loads(capsys.readouterr().err)["duration_ms"] < 50


async def test_a_failing_log_never_fails_the_request(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    cls = observer_class(parse_config({"upstreams": UPSTREAMS}))
    assert cls is not None
    request = make_mocked_request("GET", "/")
    request[NOTES] = Notes("not a time", "rid")  # type: ignore[arg-type]  # any fault inside the hook
    RequestObserver.quiet_until = 0.0
    for _ in range(3):
        cls(logging.getLogger("aiohttp.access"), "").log(request, web.Response(), 0.0)
    assert len([r for r in caplog.records if "access log or metrics failed" in r.getMessage()]) == 1
