"""API key format: generation, parsing, display prefix, scopes, cached identity round-trip."""

from __future__ import annotations

import re

import pytest

from ledger.core import api_keys
from ledger.core.api_keys import KeyIdentity
from ledger.errors import AuthenticationError, InvalidInputError


def test_new_key_round_trips_through_parse() -> None:
    key_id, secret = api_keys.new_key_id(), api_keys.new_secret()
    full = api_keys.format_key(key_id, secret)
    assert full == f"ledger_{key_id}_{secret}"
    assert api_keys.parse_key(full) == (key_id, secret)
    assert api_keys.looks_like_key(full)


def test_generated_parts_are_url_safe_without_underscores() -> None:
    key_id, secret = api_keys.new_key_id(), api_keys.new_secret()
    assert re.fullmatch(r"[a-z2-7]{12}", key_id)
    assert re.fullmatch(r"[a-z2-7]{52}", secret)  # 32 bytes = 256 bits in base32
    assert len({api_keys.new_secret() for _ in range(50)}) == 50


def test_parse_tolerates_surrounding_whitespace() -> None:
    assert api_keys.parse_key("  ledger_abcdef234567_" + "a" * 52 + "\n") == (
        "abcdef234567", "a" * 52)


@pytest.mark.parametrize("junk", [
    "", "ledger", "ledger_", "ledger__", "nope_abcdef234567_" + "a" * 52,
    "ledger_abcdef234567", "ledger_abcdef234567_" + "a" * 52 + "_extra",
    "ledger_ABCDEF234567_" + "a" * 52, "ledger_abcdef234567_short",
    "ledger_abc def_" + "a" * 52, "Bearer ledger_abcdef234567_" + "a" * 52,
])
def test_parse_refuses_junk_with_the_expected_shape_in_the_message(junk: str) -> None:
    with pytest.raises(AuthenticationError, match=r"expected ledger_<id>_<secret>"):
        api_keys.parse_key(junk)
    assert not api_keys.looks_like_key(junk)


def test_display_prefix_shows_only_the_start_of_the_secret() -> None:
    prefix = api_keys.display_prefix("abcdef234567", "wxyz" + "a" * 48)
    assert prefix == "ledger_abcdef234567_wxyz…"


def test_digest_is_sha256_hex_and_never_the_key() -> None:
    full = api_keys.format_key("abcdef234567", "b" * 52)
    digest = api_keys.key_digest(full)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert "b" * 52 not in digest
    assert api_keys.key_digest(full + "\n") == digest  # the same key as parse_key sees it


@pytest.mark.parametrize(("given", "expected"), [
    (None, ("ingest", "read")), ([], ("ingest", "read")), (["read"], ("read",)),
    (["READ", "ingest", "ingest"], ("ingest", "read")), ([" ingest "], ("ingest",)),
    (["triage", "read"], ("read", "triage")),
])
def test_scopes_are_normalised(given: list[str] | None, expected: tuple[str, ...]) -> None:
    assert api_keys.normalize_scopes(given) == expected


def test_unknown_scope_is_refused_naming_the_valid_ones() -> None:
    with pytest.raises(InvalidInputError, match=r"'admin'.*ingest, read, triage"):
        api_keys.normalize_scopes(["ingest", "admin"])


def test_identity_json_round_trip() -> None:
    identity = KeyIdentity("abcdef234567", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "shop", "Shop",
                           ("ingest",), 10, 100, 1000, 30, 7,
                           "0190a1b2-0000-7e5f-8a9b-0c1d2e3f4a5b")
    assert KeyIdentity.from_json(identity.to_json()) == identity
    assert identity.allows("ingest") and not identity.allows("read")


@pytest.mark.parametrize("junk", [b"", b"{}", b"[1]", b'{"key_id": "x"}'])
def test_identity_from_bad_json_raises_value_error(junk: bytes) -> None:
    with pytest.raises(ValueError, match="cached key identity"):
        KeyIdentity.from_json(junk)
