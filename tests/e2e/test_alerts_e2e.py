"""Alerts end to end: real `ledger serve auth|ingest|query|alerts|gateway`, real receivers.

Errors go in through the REST ingest API; the alerts daemon reads them from the notification
stream and delivers through the outbox to an HTTP receiver (signature checked) or aiosmtpd.
"Exactly once" is asserted after a barrier: a later, distinct alert on the same stream and
channel has arrived, so anything a duplicate could have produced would have arrived first.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger.config import Settings
from tests.alert_receivers import SmtpReceiver, WebhookReceiver
from tests.e2e.conftest import SharedStack, shared_test, start_shared_stack
from tests.e2e.test_query_e2e import account, poll
from tests.stack import LEDGER, Stack

pytestmark = pytest.mark.e2e

FAST = {
    "LEDGER_ALERTS_RULES_REFRESH_SECONDS": "0.2",
    "LEDGER_ALERTS_INTERVAL_SECONDS": "0.5",
    "LEDGER_ALERTS_RETRY_BASE_SECONDS": "0.2",
    "LEDGER_ALERTS_RETRY_MAX_SECONDS": "0.5",
    "LEDGER_ALERTS_CLAIM_IDLE_SECONDS": "1",
}


@pytest.fixture(scope="module")
def alerts_stack(module_settings: Settings, tmp_path_factory: pytest.TempPathFactory,
                 ) -> Iterator[SharedStack]:
    """Every daemon alerts need, started once for the module: each test makes an account and
    project of its own, with channels to a receiver of its own."""
    yield from start_shared_stack(module_settings, tmp_path_factory.mktemp("stack"),
                                  ("auth", "ingest", "query", "alerts", "gateway"), FAST)


@pytest.fixture
def stack(alerts_stack: SharedStack, request: pytest.FixtureRequest) -> Stack:
    shared_test(alerts_stack, request)
    return alerts_stack.stack


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    running = WebhookReceiver().start()
    yield running
    running.stop()


class Project:
    """An account's project with a webhook channel and a new_group rule on it."""

    def __init__(self, http: httpx.Client, receiver: WebhookReceiver) -> None:
        self.http = http
        self.bearer, self.project, self.key = account(http)
        self.id = self.project["id"]
        channel = self.post("alert-channels", {
            "name": "hook", "kind": "webhook", "url": receiver.url,
            "allow_insecure_localhost": True})
        assert channel.status_code == 201, channel.text
        self.secret = channel.json()["secret"]
        rule = self.post("alert-rules", {"name": "new errors", "kind": "new_group",
                                         "channels": ["hook"]})
        assert rule.status_code == 201, rule.text
        self.rule = rule.json()

    def post(self, what: str, body: Any) -> httpx.Response:
        return self.http.post(f"/api/v1/projects/{self.id}/{what}", headers=self.bearer,
                              json=body)

    def error(self, text: str, **fields: Any) -> None:
        body = {"timestamp": datetime.now(UTC).isoformat(), "level": "error",
                "log_type": "exception", "error_type": "KeyError", "error_message": text,
                "message": "checkout failed", "environment": "production", "release": "1.0",
                **fields}
        sent = self.http.post("/api/v1/ingest/single", headers={"X-API-Key": self.key},
                              json=body)
        assert sent.status_code == 202, sent.text

    def history(self) -> list[dict[str, Any]]:
        answer = self.http.get("/api/v1/alerts/history", headers=self.bearer,
                               params={"project_id": self.id})
        assert answer.status_code == 200, answer.text
        return list(answer.json()["alerts"])


def subjects(receiver: WebhookReceiver) -> list[str]:
    return [a["subject"] for a in receiver.alerts()]


def test_new_error_reaches_a_signed_webhook_and_slack_once(stack: Stack,
                                                           receiver: WebhookReceiver) -> None:
    with httpx.Client(base_url=stack.url, timeout=30) as http:
        project = Project(http, receiver)
        slack = project.post("alert-channels", {
            "name": "slack", "kind": "slack", "url": receiver.url.replace("/hook", "/slack"),
            "allow_insecure_localhost": True})
        assert slack.status_code == 201, slack.text
        changed = http.patch(f"/api/v1/projects/{project.id}/alert-rules/new errors",
                             headers=project.bearer, json={"channels": ["hook", "slack"]})
        assert changed.status_code == 200, changed.text

        project.error("'sku-1'")
        got = receiver.wait_for(2)
        assert len(got) == 2, [r.path for r in got]
        hook = next(r for r in got if r.path == "/hook")
        slack_post = next(r for r in got if r.path == "/slack")
        assert hook.signed_by(project.secret)
        body = hook.json()
        assert body["rule"]["name"] == "new errors" and body["environment"] == "production"
        assert body["group"]["fingerprint"] and body["sample_event"]["error_type"] == "KeyError"
        assert body["release"] == "1.0" and "first_seen" in body["group"]
        assert body["command"] is None or body["command"].startswith("ledger errors show ")
        assert slack_post.json()["blocks"][0]["type"] == "header"
        assert "x-ledger-signature" not in slack_post.headers

        # The same group again fires nothing; a new group (the barrier) fires once more.
        project.error("'sku-2'")  # same normalised message: the same group
        project.error("connection reset", error_type="ConnectionError")
        got = receiver.wait_for(4)
        assert len(got) == 4
        titles = [r.json()["title"] for r in got if r.path == "/hook"]
        assert len(titles) == 2 and "ConnectionError" in titles[1]
        alerts = poll(lambda: (h := project.history()) and all(
            a["status"] == "delivered" for a in h) and h)
        assert alerts and len(alerts) == 2
        assert {d["attempts"][0]["status_code"] for a in alerts for d in a["deliveries"]} \
            == {200}


def test_rest_alert_routes_refuse_bad_input_and_never_return_secrets(
        stack: Stack, receiver: WebhookReceiver, tmp_path: Path) -> None:
    with httpx.Client(base_url=stack.url, timeout=30) as http:
        project = Project(http, receiver)
        base = f"/api/v1/projects/{project.id}"
        listed = http.get(f"{base}/alert-channels", headers=project.bearer).json()
        assert listed["channels"][0]["has_secret"] is True
        assert project.secret not in str(listed)

        bad = [
            ("alert-rules", {"name": "x", "kind": "new_group", "channels": ["missing"]},
             "unknown channel"),
            ("alert-channels", {"name": "y", "kind": "webhook", "url": "http://example.com/x"},
             "https"),
            ("alert-channels", {"name": "y", "kind": "email", "host": "127.0.0.1",
                                "port": 1, "security": "none", "from": "a@example.com",
                                "to": ["b@example.com"]}, "cannot use SMTP server"),
            ("alert-rules", ["not", "an", "object"], ""),
        ]
        for what, body, message in bad:
            answer = project.post(what, body)
            assert answer.status_code in (400, 422), (what, body, answer.text)
            assert message in answer.json()["detail"]
        assert len(http.get(f"{base}/alert-rules", headers=project.bearer).json()["rules"]) == 1
        assert len(http.get(f"{base}/alert-channels",
                            headers=project.bearer).json()["channels"]) == 1
        duplicate = project.post("alert-rules", {"name": "new errors", "kind": "new_group",
                                                 "channels": ["hook"]})
        assert duplicate.status_code == 409
        in_use = http.delete(f"{base}/alert-channels/hook", headers=project.bearer)
        assert in_use.status_code == 409 and "used by rule" in in_use.json()["detail"]

        # Account tokens only; another account's project is not found.
        as_key = http.get(f"{base}/alert-rules", headers={"X-API-Key": project.key})
        assert as_key.status_code == 403
        other, _, _ = account(http)
        for method, path in (("GET", f"{base}/alert-rules"), ("POST", f"{base}/alert-rules"),
                             ("GET", f"{base}/alert-channels"),
                             ("POST", f"{base}/alert-channels/hook/test")):
            answer = http.request(method, path, headers=other,
                                  json={"name": "z", "kind": "new_group", "channels": ["hook"]})
            assert answer.status_code == 404, (method, path, answer.text)
        assert http.get("/api/v1/alerts/history", headers=other).json()["alerts"] == []

        tested = http.post(f"{base}/alert-channels/hook/test", headers=project.bearer)
        assert tested.status_code == 200 and tested.json()["status_code"] == 200
        [test_post] = receiver.wait_for(1)
        assert test_post.json()["test"] is True and test_post.signed_by(project.secret)

        snoozed = project.post("alerts/snooze", {"target": "new errors", "duration": "2h"})
        assert snoozed.status_code == 200 and snoozed.json()["target"] == "rule"
        project.error("snoozed one", error_type="ValueError")
        alerts = poll(lambda: project.history())
        assert alerts[0]["status"] == "snoozed" and alerts[0]["deliveries"] == []
        assert project.post("alerts/unsnooze", {"target": "new errors"}).status_code == 200
        project.error("after the snooze", error_type="TypeError")
        got = receiver.wait_for(2)
        assert [r.json().get("title") for r in got][1] == "New error: TypeError: after the snooze"
        assert len(got) == 2
        bad_snooze = project.post("alerts/snooze", {"target": "new errors", "duration": "ever"})
        assert bad_snooze.status_code == 400

        removed = http.delete(f"{base}/alert-rules/new errors", headers=project.bearer)
        assert removed.status_code == 200
        assert http.delete(f"{base}/alert-channels/hook", headers=project.bearer).status_code \
            == 200


def test_email_channel_over_starttls_with_login(stack: Stack, receiver: WebhookReceiver,
                                                tmp_path: Path) -> None:
    smtp = SmtpReceiver(tmp_path).start()
    try:
        with httpx.Client(base_url=stack.url, timeout=30) as http:
            project = Project(http, receiver)
            body = {"name": "mail", "kind": "email", "host": "localhost", "port": smtp.port,
                    "security": "starttls", "username": smtp.user, "password": smtp.password,
                    "from": "ledger@example.com", "to": ["ops@example.com"]}
            # The server's certificate is self-signed: refused unless told to accept it.
            refused = project.post("alert-channels", body)
            assert refused.status_code == 400 and "CERTIFICATE_VERIFY_FAILED" in refused.text
            created = project.post("alert-channels", body | {"tls_verify": False})
            assert created.status_code == 201, created.text
            assert smtp.password not in created.text and "secret" not in created.json()
            http.patch(f"/api/v1/projects/{project.id}/alert-rules/new errors",
                       headers=project.bearer, json={"channels": ["mail"]})
            project.error("mailed", error_type="LookupError")
            [message] = smtp.wait_for(1)
            assert message["Subject"] == "[Ledger] New error: LookupError: mailed"
            assert message["To"] == "ops@example.com"
            kinds = [p.get_content_type() for p in message.iter_parts()]
            assert kinds == ["text/plain", "text/html"]
            assert "LOGIN" in smtp.logins or "PLAIN" in smtp.logins
    finally:
        smtp.stop()


def test_receiver_down_for_a_while_then_up_gets_the_alert_once(
        stack: Stack, receiver: WebhookReceiver) -> None:
    with httpx.Client(base_url=stack.url, timeout=30) as http:
        project = Project(http, receiver)
        receiver.stop()
        project.error("while down", error_type="OSError")
        failing = poll(lambda: (h := project.history()) and h[0]["deliveries"]
                       and len(h[0]["deliveries"][0]["attempts"]) >= 3 and h)
        assert failing, "no failed attempts recorded"
        attempt = failing[0]["deliveries"][0]["attempts"][0]
        assert attempt["status_code"] is None and "ConnectError" in attempt["error"]
        receiver.start()
        [got] = receiver.wait_for(1)
        assert got.json()["title"] == "New error: OSError: while down"
        project.error("barrier", error_type="BarrierError")
        got_all = receiver.wait_for(2)
        assert [r.json()["title"] for r in got_all] == [
            "New error: OSError: while down", "New error: BarrierError: barrier"]


def test_alerts_daemon_killed_between_evaluation_and_delivery_sends_once(
        stack: Stack, receiver: WebhookReceiver) -> None:
    with httpx.Client(base_url=stack.url, timeout=30) as http:
        project = Project(http, receiver)
        # A copy that only evaluates: the alert is recorded in the outbox, never sent by it.
        stack.stop("alerts")
        stack.extra_env["LEDGER_ALERTS_SENDERS"] = "0"
        stack.start("alerts")
        project.error("recorded", error_type="KillError")
        pending = poll(lambda: (h := project.history()) and h[0]["status"] == "pending" and h)
        assert pending and pending[0]["deliveries"][0]["attempts"] == []
        stack.kill("alerts")  # SIGKILL
        assert receiver.received() == []
        stack.extra_env["LEDGER_ALERTS_SENDERS"] = "2"
        stack.start("alerts")
        [got] = receiver.wait_for(1)
        assert got.json()["alert_id"] == pending[0]["id"]
        project.error("barrier", error_type="BarrierError")
        assert [r.json()["title"] for r in receiver.wait_for(2)] == [
            "New error: KillError: recorded", "New error: BarrierError: barrier"]


def test_two_alerts_daemons_send_each_alert_once(stack: Stack, receiver: WebhookReceiver,
                                                 tmp_path: Path) -> None:
    env = stack.env() | {"LEDGER_ALERTS_LISTEN": "127.0.0.1:0"}
    with (tmp_path / "alerts-2.log").open("ab") as log:
        second = subprocess.Popen([*LEDGER, "serve", "alerts"], env=env, stdout=log,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        with httpx.Client(base_url=stack.url, timeout=30) as http:
            project = Project(http, receiver)
            count = 12
            for i in range(count):
                project.error(f"distinct {i}", error_type=f"Error{i}{uuid.uuid4().hex[:4]}")
            got = receiver.wait_for(count)
            project.error("barrier", error_type="BarrierError")
            got = receiver.wait_for(count + 1)
            ids = [r.json()["alert_id"] for r in got]
            assert len(ids) == count + 1 and len(set(ids)) == count + 1
            assert len({r.json()["subject"] for r in got}) == count + 1
            assert second.poll() is None, "the second copy died"
    finally:
        second.terminate()
        second.wait(15)
        assert os.path.exists(tmp_path / "alerts-2.log")


def test_frequency_and_regression_through_the_writers(stack: Stack,
                                                      receiver: WebhookReceiver) -> None:
    with httpx.Client(base_url=stack.url, timeout=30) as http:
        project = Project(http, receiver)
        for body in ({"name": "spike", "kind": "group_frequency", "threshold": 3,
                      "window_minutes": 5, "channels": ["hook"]},
                     {"name": "back", "kind": "regression", "channels": ["hook"]}):
            assert project.post("alert-rules", body).status_code == 201
        project.error("key 101", error_type="SpikeError")
        project.error("key 102", error_type="SpikeError")  # the same group: 2 events, no spike
        project.error("barrier one", error_type="BarrierError")
        got = receiver.wait_for(2)
        assert [r.json()["rule"]["name"] for r in got] == ["new errors", "new errors"]
        project.error("key 103", error_type="SpikeError")  # the third event: a spike
        got = receiver.wait_for(3)
        assert len(got) == 3 and got[2].json()["rule"]["name"] == "spike"
        assert got[2].json()["counts"]["events"] == 3

        keyed = {"X-API-Key": project.key}
        groups = poll(lambda: [g for g in http.get("/api/v1/error-groups", headers=keyed)
                               .json()["error_groups"] if g["error_type"] == "SpikeError"
                               and g["event_count"] == 3])
        assert groups, "the writers did not store the group"
        resolved = http.patch(f"/api/v1/error-groups/{groups[0]['id']}/status",
                              headers=project.bearer,
                              json={"status": "resolved", "resolved_in_release": "2.0"})
        assert resolved.status_code == 200, resolved.text
        project.error("key 104", error_type="SpikeError", release="1.5")  # older: stays resolved
        project.error("barrier two", error_type="OtherBarrierError")
        got = receiver.wait_for(4)
        assert [r.json()["rule"]["name"] for r in got][3:] == ["new errors"]
        project.error("key 105", error_type="SpikeError", release="2.1")
        got = receiver.wait_for(5)
        assert len(got) == 5 and got[4].json()["rule"]["name"] == "back"
        assert got[4].json()["release"] == "2.1"
        assert all(r.signed_by(project.secret) for r in got)
