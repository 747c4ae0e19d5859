"""The pattern miner: floods of one message become one pattern; different messages stay apart."""

from __future__ import annotations

import pytest

from ledger.core.patterns import WILDCARD, PatternMiner, log_text, mine


def test_numbers_ids_and_names_collapse_into_one_pattern() -> None:
    rows = [{"message": f"user {name} logged in from 10.0.0.{i} after {i}ms",
             "level": "info", "timestamp": f"2026-12-01T10:00:{i:02d}Z"}
            for i, name in enumerate(["alice", "bob", "carol", "dave"] * 5)]
    [pattern] = mine(rows)
    assert pattern.count == 20
    assert pattern.template == f"user {WILDCARD} logged in from <ip> after <duration>"
    assert pattern.levels == {"info": 20}
    assert (pattern.first_seen, pattern.last_seen) == ("2026-12-01T10:00:00Z",
                                                       "2026-12-01T10:00:19Z")
    assert pattern.sample == "user alice logged in from 10.0.0.0 after 0ms"


def test_different_messages_stay_apart_and_rank_by_count() -> None:
    rows = ([{"message": f"cache miss for key {i}"} for i in range(7)]
            + [{"message": "connection refused by upstream"} for _ in range(3)]
            + [{"message": "disk full on /var/lib"}])
    patterns = mine(rows)
    assert [(p.template, p.count) for p in patterns] == [
        ("cache miss for key <num>", 7),
        ("connection refused by upstream", 3),
        ("disk full on /var/lib", 1),
    ]


def test_same_shape_but_mostly_different_words_is_another_pattern() -> None:
    miner = PatternMiner()
    a = miner.add("payment declined for order")
    b = miner.add("shipment delayed at warehouse")  # another first word: another bucket
    c = miner.add("payment accepted by bank")  # same bucket as a, but 1 of 4 words alike
    assert len({id(a), id(b), id(c)}) == 3


def test_exceptions_use_type_and_error_message_not_the_logging_message() -> None:
    assert log_text({"message": "", "error_type": "KeyError", "error_message": "'x'"}) \
        == "KeyError: 'x'"
    assert log_text({"message": "Unhandled exception in request handler",
                     "error_type": "ZeroDivisionError", "error_message": "division by zero"}) \
        == "ZeroDivisionError: division by zero"
    assert log_text({"message": "disk full"}) == "disk full"
    [pattern] = mine([{"error_type": "KeyError", "error_message": f"'user_{i}'"}
                      for i in range(3)])
    assert pattern.count == 3 and pattern.template.startswith("KeyError:")


def test_only_the_first_line_counts_and_long_messages_are_bounded() -> None:
    [pattern] = mine([{"message": f"boom\n  at line {i}\n{'x' * 5000}"} for i in range(3)])
    assert pattern.template == "boom" and pattern.count == 3
    miner = PatternMiner()
    long_message = " ".join(f"w{i}" for i in range(10_000))
    pattern = miner.add(long_message)
    assert len(pattern.words) <= 40


def test_work_per_message_is_bounded_by_the_bucket_cap() -> None:
    miner = PatternMiner(similarity=1.0)
    words = [f"w{chr(97 + i % 26)}{chr(97 + i // 26 % 26)}{chr(97 + i // 676 % 26)}"
             for i in range(2000)]  # letters only: the normaliser leaves them as they are
    for word in words:  # one bucket (3 words, "event"); every message wants its own pattern
        miner.add(f"event {word} here")
    # Past the cap, messages join the closest pattern instead of growing the bucket (and with
    # it the comparisons each new message costs).
    assert len(miner.patterns) == 64
    assert sum(p.count for p in miner.patterns) == 2000


def test_similarity_must_be_a_share() -> None:
    with pytest.raises(ValueError):
        PatternMiner(similarity=0)
