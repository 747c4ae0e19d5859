"""Whatever ingest accepts can be read back: numbers past 64 bits, with or without a lone
surrogate escape elsewhere in the body (which once switched parsers), through every read route."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ledger.config import Settings
from tests.ingest_support import error_log, running_ingest, send, stored
from tests.restenv import Rest, rest_stack

# 1e30 is a float; 2**70 and -2**65 are integers no 64-bit reader holds.
HUGE = b'{"f": 1e30, "big": 1180591620717411303424, "neg": -36893488147419103232}'


@pytest.fixture
async def rest(settings: Settings) -> AsyncIterator[Rest]:
    async with rest_stack(settings) as env:
        yield env


async def test_huge_numbers_are_stored_and_every_read_route_answers(
        rest: Rest, settings: Settings) -> None:
    owner = await rest.account()
    first = error_log(1, message="plain body")
    second = error_log(2, message="body with a lone surrogate", environment="\ud800x")
    bodies = [b'{"logs": [' + _json(record)[:-1] + b', "attributes": ' + HUGE + b"}]}"
              for record in (first, second)]
    async with running_ingest(settings) as (_, client):
        for body in bodies:
            answer = await send(client, owner.project_id, body)
            assert (answer.accepted, answer.rejected) == (1, 0), answer
        await stored(settings.logs_database_url or "", owner.project_id, 2)

    key = {"X-API-Key": owner.key}
    logs = (await rest.http.get("/api/v1/logs", headers=key)).json()["logs"]
    assert len(logs) == 2
    for row in logs:  # one rule for both bodies: beyond 64 bits is a float
        assert row["attributes"] == {"f": 1e30, "big": 2.0**70, "neg": -(2.0**65)}
    assert {r["environment"] for r in logs} == {None, "\ufffdx"}
    for row in logs:
        one = await rest.http.get(f"/api/v1/logs/{row['id']}", headers=key)
        assert one.status_code == 200, one.text
        assert one.json()["attributes"]["big"] == 2.0**70
    errors = await rest.http.get("/api/v1/errors/list", headers=key)
    assert errors.status_code == 200, errors.text
    assert len(errors.json()["logs"]) == 2
    groups = (await rest.http.get("/api/v1/error-groups", headers=key)).json()["error_groups"]
    assert len(groups) == 1
    group = await rest.http.get(f"/api/v1/error-groups/{groups[0]['id']}", headers=key)
    assert group.status_code == 200, group.text


def _json(record: dict[str, object]) -> bytes:
    import json

    # ensure_ascii keeps the lone surrogate as the six-character escape a client would send.
    return json.dumps(record).encode()
