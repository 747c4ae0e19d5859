"""Grouping quality on the corpus: pairwise precision/recall, before and after.

"Before" is the fingerprint module as it was before grouping v2 (read from git at
``--before``, default the commit before the change); "after" is the current one. Also prints
how long the parser takes on adversarial traces (the quadratic case of issue 9) and on a
10 MB batch of ordinary traces.

    .venv/bin/python bench/bench_grouping.py [--before <git ref>]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ledger.core import fingerprints  # noqa: E402
from tests.grouping_corpus import all_events  # noqa: E402
from tests.grouping_corpus.model import Event  # noqa: E402
from tests.grouping_corpus.score import Score, score  # noqa: E402

BEFORE_REF = "cba4f8f"


def _old_module(ref: str) -> types.ModuleType | None:
    try:
        source = subprocess.run(
            ["git", "show", f"{ref}:ledger/core/fingerprints.py"], cwd=ROOT, check=True,
            capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    spec = importlib.util.spec_from_loader("fingerprints_before", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fingerprints_before"] = module  # dataclasses look their module up
    exec(compile(source, "fingerprints_before.py", "exec"), module.__dict__)
    return module


def _with(module: types.ModuleType) -> object:
    def fingerprint(event: Event) -> str:
        result = module.compute_fingerprint(
            error_type=event.error_type, error_message=event.error_message,
            message=event.message, stack_trace=event.stack_trace, client_fingerprint=None)
        return str(result.hash)
    return fingerprint


def _print(label: str, result: Score) -> None:
    print(f"{label:7} precision {result.precision:.3f}  recall {result.recall:.3f}"
          f"  ({result.events} events, {result.true_pairs} true pairs,"
          f" {result.predicted_pairs} grouped pairs)")
    for a, b in result.merged:
        print(f"          merged: {a} + {b}")
    for name in result.split:
        print(f"          split:  {name}")


def _adversarial() -> None:
    cases = {
        "V8 `at x\\t(` * 16000 (issue 9)": "\n\tat " + "x\t(" * 16000,
        "Python `File \"` * 8000": 'File "' * 8000,
        "Ruby `a:1:in ` * 5000": "a:1:in " * 5000,
        "Go `x.go:1 ` * 10000": "goroutine 1 [running]:\n" + "f()\n\tx.go:1 " * 6000,
        "50 000 newlines": "\n" * 50_000,
    }
    for name, trace in cases.items():
        start = time.perf_counter()
        fingerprints.compute_fingerprint(error_type=None, error_message="x", message=None,
                                         stack_trace=trace, client_fingerprint=None)
        print(f"  {name:40} {len(trace):>7} chars  {1000 * (time.perf_counter() - start):7.1f} ms")


def _batch(label: str, module: types.ModuleType, *, distinct: bool) -> None:
    # `distinct`: every event's frames differ (no cache helps); otherwise one trace repeated,
    # as when one error floods (its frames are then cached).
    frame = "    at Object.handler{i} (/srv/app/node_modules/pkg/lib/file{i}.js:{i}:17)\n"
    count = 10_000_000 // 49_000
    traces = [("TypeError: boom\n" + "".join(
        frame.format(i=f"{n if distinct else 0}x{i}") for i in range(600)))[:49_000]
        for n in range(count)]
    start = time.perf_counter()
    for i, trace in enumerate(traces):
        module.compute_fingerprint(error_type="TypeError", error_message=f"boom {i}",
                                   message=None, stack_trace=trace, client_fingerprint=None)
    elapsed = time.perf_counter() - start
    kind = "distinct" if distinct else "repeated"
    print(f"  {label:7} {count} {kind} JavaScript traces of ~49 KB (10 MB): {elapsed:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", default=BEFORE_REF)
    args = parser.parse_args()
    events = list(all_events())
    print(f"load average {os.getloadavg()[0]:.2f}")
    old = _old_module(args.before)
    if old is not None:
        _print("before", score(events, _with(old)))  # type: ignore[arg-type]
    _print("after", score(events, _with(fingerprints)))  # type: ignore[arg-type]
    print("parser on adversarial input (after):")
    _adversarial()
    print("fingerprinting a 10 MB batch:")
    for distinct in (False, True):
        if old is not None:
            _batch("before", old, distinct=distinct)
        _batch("after", fingerprints, distinct=distinct)
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
