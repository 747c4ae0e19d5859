"""The collector settings of a ``ledger serve gateway|ingest`` process (``tune_process``)."""

from __future__ import annotations

import gc
import json
import subprocess
import sys

import pytest

from ledger.config import Settings
from ledger.daemons import gateway, ingest
from ledger.daemons.base import GC_YOUNG_THRESHOLD
from ledger.daemons.gateway.app import create_app


@pytest.mark.parametrize("daemon", ["gateway", "ingest"])
def test_tune_process_raises_the_young_threshold_and_freezes_the_built_daemon(
        daemon: str) -> None:
    # In a process of its own, as `ledger serve` runs it: the settings are process-wide.
    code = ("import gc, json; from ledger.config import Settings;"
            f" from ledger.daemons import {daemon} as module;"
            " module.create(Settings(internal_token='t' * 32)); before = gc.get_threshold();"
            " module.tune_process();"
            " print(json.dumps([before, gc.get_threshold(), gc.get_freeze_count()]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    before, after, frozen = json.loads(out)
    assert after == [GC_YOUNG_THRESHOLD, before[1], before[2]]
    assert before[0] < GC_YOUNG_THRESHOLD
    assert frozen > 50_000  # the daemon as `serve` has built it: modules, app, routes


def test_building_daemons_in_process_leaves_the_collector_alone() -> None:
    # Tests and `ledger up` build daemons in a shared process: only `ledger serve` tunes.
    before = gc.get_threshold(), gc.get_freeze_count()
    create_app(Settings(internal_token="t" * 32))
    gateway.create(Settings(internal_token="t" * 32))
    ingest.create(Settings(internal_token="t" * 32))
    assert (gc.get_threshold(), gc.get_freeze_count()) == before
