"""The daemons' metrics registry renders the Prometheus text format exactly."""

from __future__ import annotations

import pytest

from ledger import __version__
from ledger.core.events import ItemError
from ledger.daemons.ingest.metrics import rejection_reason
from ledger.daemons.prometheus import Registry


async def test_counters_gauges_and_histograms_render_in_the_text_format() -> None:
    registry = Registry("ingest")
    calls = registry.counter("ledger_calls_total", "Calls.", ("rpc", "code"))
    calls.inc(rpc="A/B", code="OK")
    calls.inc(2, rpc="A/B", code="OK")
    calls.inc(rpc='say "hi"\\', code="INTERNAL")
    depth = registry.gauge("ledger_depth", "Depth.", ("project",))
    depth.replace([({"project": "p1"}, 5), ({"project": "p2"}, 0.5)])
    depth.replace([({"project": "p2"}, 1)])  # p1 is gone: its series goes too
    seconds = registry.histogram("ledger_seconds", "Seconds.", (0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 3.0):
        seconds.observe(value)
    text = await registry.render()
    assert text.endswith("\n")
    lines = text.splitlines()
    assert f'ledger_build_info{{daemon="ingest",version="{__version__}"}} 1' in lines
    assert "# TYPE ledger_calls_total counter" in lines
    assert 'ledger_calls_total{rpc="A/B",code="OK"} 3' in lines
    assert 'ledger_calls_total{rpc="say \\"hi\\"\\\\",code="INTERNAL"} 1' in lines
    assert 'ledger_depth{project="p2"} 1' in lines
    assert not any(line.startswith('ledger_depth{project="p1"}') for line in lines)
    # Buckets are cumulative and le is inclusive: 0.1 falls into le="0.1".
    assert lines[lines.index("# TYPE ledger_seconds histogram") + 1:] == [
        'ledger_seconds_bucket{le="0.1"} 2', 'ledger_seconds_bucket{le="1"} 3',
        'ledger_seconds_bucket{le="+Inf"} 4', "ledger_seconds_sum 3.650000",
        "ledger_seconds_count 4"]


async def test_a_failing_collector_keeps_the_scrape_answering() -> None:
    registry = Registry("query")
    gauge = registry.gauge("ledger_thing", "Thing.")
    gauge.set(7)

    async def broken() -> None:
        raise ConnectionError("Redis is away")

    registry.collect(broken)
    assert "ledger_thing 7" in (await registry.render()).splitlines()


async def test_a_series_without_labels_shows_zero_before_anything_happens() -> None:
    registry = Registry("ingest")
    registry.counter("ledger_stored_total", "Stored.")
    registry.histogram("ledger_batch", "Batch.", (1, 10))
    registry.counter("ledger_by_reason_total", "By reason.", ("reason",))
    lines = (await registry.render()).splitlines()
    assert "ledger_stored_total 0" in lines
    assert 'ledger_batch_bucket{le="+Inf"} 0' in lines and "ledger_batch_count 0" in lines
    assert not any(line.startswith("ledger_by_reason_total") for line in lines)


def test_names_and_labels_are_checked() -> None:
    registry = Registry("auth")
    with pytest.raises(ValueError, match="ledger_"):
        registry.counter("calls_total", "No prefix.")
    counter = registry.counter("ledger_calls_total", "Calls.", ("rpc",))
    with pytest.raises(ValueError, match="registered twice"):
        registry.counter("ledger_calls_total", "Again.")
    with pytest.raises(ValueError, match="takes labels"):
        counter.inc(code="OK")


@pytest.mark.parametrize(("field", "reason"), [
    ("level", "invalid_level"), ("attributes.endpoint.method", "invalid_attributes"),
    ("logs[3]", "invalid_logs"), ("", "invalid"), ("Weird Field!", "invalid")])
def test_rejection_reasons_are_a_bounded_set(field: str, reason: str) -> None:
    assert rejection_reason(ItemError(0, field, "whatever the text")) == reason
