"""A grouping corpus: errors in Python, JavaScript/Node, Java, Go and Ruby, in the shapes their
runtimes and frameworks print, each as several events (another deploy, other line numbers and
ids, other install prefixes, another bundle hash), with hard negatives (errors that differ only
where the grouping used to look away). Written for Ledger, modelled on public traces.

``all_events()`` yields every event with its ground-truth cluster; ``bench/bench_grouping.py``
prints pairwise precision/recall and ``tests/unit/test_grouping_corpus.py`` holds the floor.
"""

from __future__ import annotations

from collections.abc import Iterator

from tests.grouping_corpus import go, java, javascript, python, ruby
from tests.grouping_corpus.model import Cluster, Event, events

CLUSTERS: list[Cluster] = [*python.CLUSTERS, *javascript.CLUSTERS, *java.CLUSTERS,
                           *go.CLUSTERS, *ruby.CLUSTERS]


def all_events() -> Iterator[Event]:
    """Every event of the corpus, cluster by cluster."""
    return events(CLUSTERS)
