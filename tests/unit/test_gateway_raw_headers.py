"""The single-log answer's header bytes, made directly, are the ones Starlette made from a dict.

``RateLimitState.raw_headers`` and ``responses.json_bytes_response`` skip Starlette's
lowercasing and encoding of a header dict per answer (issue 17); a client must not see the
difference: same names, values, order, Content-Length and Content-Type, same body.
"""

from __future__ import annotations

import pytest

from ledger.core.api_keys import KeyIdentity
from ledger.daemons.gateway.edge.principal import ApiKeyPrincipal
from ledger.daemons.gateway.edge.rate_limits import RateLimitState
from ledger.daemons.gateway.routes.responses import json_bytes_response, json_response

IDENTITY = KeyIdentity("abcdef234567", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "shop", "Shop",
                       ("ingest",), 600, 36000, 1_000_000, 30)

STATES = [
    RateLimitState(limit_minute=600, remaining_minute=599, limit_hour=36000,
                   remaining_hour=35999),
    RateLimitState(limit_minute=0, remaining_minute=0, limit_hour=100, remaining_hour=0),
    RateLimitState(limit_minute=10, remaining_minute=0, limit_hour=0, remaining_hour=0,
                   retry_after=17, exceeded="minute"),
    RateLimitState(limit_minute=0, remaining_minute=0, limit_hour=0, remaining_hour=0),
]


@pytest.mark.parametrize("state", STATES)
def test_raw_headers_are_the_dict_lowercased_and_encoded(state: RateLimitState) -> None:
    expected = [(name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in state.headers().items()]
    assert state.raw_headers() == expected


@pytest.mark.parametrize("state", [*STATES, None])
def test_the_bytes_answer_is_the_dict_answer(state: RateLimitState | None) -> None:
    principal = ApiKeyPrincipal(IDENTITY, state)
    content = {"accepted": 1, "rejected": 0, "message": "log accepted"}
    made = json_bytes_response(content, 202, principal.raw_rate_headers())
    starlette = json_response(content, 202, principal.rate_headers())
    assert made.status_code == starlette.status_code == 202
    assert made.body == starlette.body
    assert made.raw_headers == starlette.raw_headers
    assert made.background is None
    assert made.headers["content-type"] == "application/json"
