"""Log patterns: a flood of one message becomes one line with a count.

Each message is first reduced by the same normaliser the error fingerprints use (numbers, ids,
addresses, durations become placeholders), then mined in the manner of Drain (He et al., ICWS
2017): messages with the same number of words and the same first word are compared word by
word, and one whose words mostly match an existing template joins it, the differing words
becoming ``<*>``. That catches what a normaliser cannot know (user names, table names, paths)
while keeping different messages apart. Work per message is bounded: at most
``MAX_TEMPLATES_PER_BUCKET`` comparisons of at most ``MAX_WORDS`` words.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ledger.core.fingerprints import normalize_message

WILDCARD = "<*>"
#: Words of a template compared; the rest of a long message is kept as one tail word.
MAX_WORDS = 40
#: Templates kept per (word count, first word); past it, new shapes form their own patterns
#: only while there is room, and the rest join the closest one.
MAX_TEMPLATES_PER_BUCKET = 64
#: Share of positions whose words must match for a message to join a template.
DEFAULT_SIMILARITY = 0.5


@dataclass
class Pattern:
    """One template with how often, and when, it was seen."""

    template: str
    count: int = 0
    sample: str = ""
    first_seen: str | None = None
    last_seen: str | None = None
    levels: dict[str, int] = field(default_factory=dict)
    words: list[str] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"template": self.template, "count": self.count, "sample": self.sample,
                "first_seen": self.first_seen, "last_seen": self.last_seen,
                "levels": dict(self.levels)}


def _words(message: str) -> list[str]:
    first_line = message.strip().splitlines()[0] if message.strip() else ""
    words = normalize_message(first_line).split()
    if len(words) > MAX_WORDS:
        words = [*words[: MAX_WORDS - 1], " ".join(words[MAX_WORDS - 1:])]
    return words


def _similarity(template: list[str], words: list[str]) -> float:
    same = sum(1 for a, b in zip(template, words, strict=True) if a in (b, WILDCARD))
    return same / len(words) if words else 1.0


class PatternMiner:
    """Groups messages into patterns as they arrive (the TUI feeds it live)."""

    def __init__(self, similarity: float = DEFAULT_SIMILARITY) -> None:
        if not 0.0 < similarity <= 1.0:
            raise ValueError("similarity must be in (0, 1]")
        self.similarity = similarity
        self._buckets: dict[tuple[int, str], list[Pattern]] = {}
        self.patterns: list[Pattern] = []

    def add(self, message: str, *, level: str | None = None,
            timestamp: str | None = None) -> Pattern:
        """Put one message into its pattern (made if none fits) and return that pattern."""
        words = _words(message)
        key = (len(words), words[0] if words else "")
        bucket = self._buckets.setdefault(key, [])
        best: Pattern | None = None
        best_score = -1.0
        for candidate in bucket:
            score = _similarity(candidate.words, words)
            if score > best_score:
                best, best_score = candidate, score
        if best is None or (best_score < self.similarity
                            and len(bucket) < MAX_TEMPLATES_PER_BUCKET):
            best = Pattern(template=" ".join(words), words=list(words))
            bucket.append(best)
            self.patterns.append(best)
        else:
            merged = [a if a == b else WILDCARD for a, b in zip(best.words, words, strict=True)]
            if merged != best.words:
                best.words = merged
                best.template = " ".join(merged)
        best.count += 1
        if not best.sample:
            best.sample = message.strip().splitlines()[0][:500] if message.strip() else ""
        if timestamp is not None:
            if best.first_seen is None or timestamp < best.first_seen:
                best.first_seen = timestamp
            if best.last_seen is None or timestamp > best.last_seen:
                best.last_seen = timestamp
        if level:
            best.levels[level] = best.levels.get(level, 0) + 1
        return best

    def top(self, limit: int | None = None) -> list[Pattern]:
        """Patterns by count, most frequent first (ties: the one seen first)."""
        ranked = sorted(self.patterns, key=lambda p: -p.count)
        return ranked if limit is None else ranked[:limit]


def log_text(row: Mapping[str, Any]) -> str:
    """The text a log's pattern is mined from: ``type: error message`` for an exception (its
    logging message is usually the same "Unhandled exception in …" line for every error, as the
    TUI's message column also knows), else the message."""
    if row.get("error_type"):
        return f"{row['error_type']}: {row.get('error_message') or ''}"
    return str(row.get("message") or "")


def mine(rows: Iterable[Mapping[str, Any]],
         similarity: float = DEFAULT_SIMILARITY) -> list[Pattern]:
    """Patterns of ``rows`` (logs as the read API returns them), most frequent first."""
    miner = PatternMiner(similarity)
    for row in rows:
        miner.add(log_text(row), level=row.get("level"),
                  timestamp=str(row["timestamp"]) if row.get("timestamp") else None)
    return miner.top()
