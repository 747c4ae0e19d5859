"""Pairwise precision and recall of a grouping against the corpus's clusters."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tests.grouping_corpus.model import Event


@dataclass(frozen=True)
class Score:
    precision: float  # of the pairs grouped together, the share that are one error
    recall: float  # of the pairs that are one error, the share grouped together
    events: int
    true_pairs: int
    predicted_pairs: int
    merged: list[tuple[str, str]]  # clusters that share a fingerprint (over-merge)
    split: list[str]  # clusters spread over more than one fingerprint


def _pairs(counts: Iterable[int]) -> int:
    return sum(n * (n - 1) // 2 for n in counts)


def score(events: list[Event], fingerprint: Callable[[Event], str]) -> Score:
    """Score ``fingerprint`` over ``events``: every pair of events counts once."""
    predicted = [fingerprint(e) for e in events]
    truth = [e.cluster for e in events]
    both = Counter(zip(truth, predicted, strict=True))
    true_pairs = _pairs(Counter(truth).values())
    predicted_pairs = _pairs(Counter(predicted).values())
    together = _pairs(both.values())
    by_hash: dict[str, set[str]] = {}
    by_cluster: dict[str, set[str]] = {}
    for cluster, digest in both:
        by_hash.setdefault(digest, set()).add(cluster)
        by_cluster.setdefault(cluster, set()).add(digest)
    merged = sorted({tuple(sorted(names))[:2] for names in by_hash.values() if len(names) > 1})
    split = sorted(name for name, digests in by_cluster.items() if len(digests) > 1)
    return Score(
        precision=together / predicted_pairs if predicted_pairs else 1.0,
        recall=together / true_pairs if true_pairs else 1.0,
        events=len(events), true_pairs=true_pairs, predicted_pairs=predicted_pairs,
        merged=[(a, b) for a, b in merged], split=split)
