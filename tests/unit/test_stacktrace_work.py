"""The stack-trace parser and the fingerprint do work linear in their input (issue 9, item 1).

Work is counted, not timed: Python opcodes executed (``sys.settrace`` with opcode events) plus
the characters handed to regular expressions (each pattern of these modules wrapped in a
counter). The steps *inside* one regular-expression call are invisible to both, so the second
half of the property is that no call is handed more than ``MAX_REGEX_INPUT`` characters: a
pattern may backtrack within a capped line, never over the whole trace. (The 14 s case of the
issue was one multi-line pattern run over the whole 48 KB trace: that single call fails here.)
"""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ledger.core import fingerprints, frames, grouping_rules, stacktraces

_MODULES = (fingerprints, frames, stacktraces, grouping_rules)
_CALLS = ("match", "search", "fullmatch", "sub", "subn", "findall", "finditer", "split")


class _Counting:
    """A compiled pattern that adds the characters it is given to ``counter``."""

    def __init__(self, pattern: re.Pattern[str], counter: list[int]) -> None:
        self._pattern = pattern
        self._counter = counter

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._pattern, name)
        if name not in _CALLS:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            text = args[1] if name in ("sub", "subn") else args[0]
            start = args[1] if name in ("match", "search", "fullmatch") and len(args) > 1 else 0
            end = args[2] if name in ("match", "search", "fullmatch") and len(args) > 2 else len(
                text)
            size = max(0, end - start)
            self._counter[0] += size
            self._counter[1] = max(self._counter[1], size)
            return attr(*args, **kwargs)

        return call


@contextmanager
def _counted() -> Iterator[list[int]]:
    """Yields [opcodes, regex characters]; both counted while the block runs."""
    counts = [0, 0, 0]
    regex = [0, 0]
    saved: list[tuple[types.ModuleType, str, re.Pattern[str]]] = []
    for module in _MODULES:
        for name, value in list(vars(module).items()):
            if isinstance(value, re.Pattern):
                saved.append((module, name, value))
                setattr(module, name, _Counting(value, regex))
    for cached in (frames.stable_name, frames.module_path, frames.jvm_in_app):
        cached.cache_clear()  # a cache hit would hide the work of a repeated input

    def trace(frame: types.FrameType, event: str, arg: Any) -> Callable[..., Any]:
        frame.f_trace_opcodes = True
        if event == "opcode":
            counts[0] += 1
        return trace

    sys.settrace(trace)
    try:
        yield counts
    finally:
        sys.settrace(None)
        for module, name, value in saved:
            setattr(module, name, value)
        counts[1], counts[2] = regex


#: The most characters one regular-expression call may be handed: a line (MAX_LINE_CHARS) or
#: the scanned head of a message (fingerprints._MESSAGE_SCAN_CHARS).
MAX_REGEX_INPUT = 2048


def _work(trace: str) -> int:
    with _counted() as counts:
        fingerprints.compute_fingerprint(error_type=None, error_message="x", message=None,
                                         stack_trace=trace, client_fingerprint=None)
    assert counts[2] <= MAX_REGEX_INPUT, f"one regex call was handed {counts[2]} characters"
    return counts[0] + counts[1]


#: Work allowed per character of input (opcodes + regex characters), and a constant.
PER_CHAR = 60
CONSTANT = 20_000


def test_the_quadratic_case_of_the_issue_is_linear() -> None:
    small = "\n\tat " + "x\t(" * 2000
    large = "\n\tat " + "x\t(" * 16000  # 48 KB, 14 s with the old pattern
    assert _work(large) <= PER_CHAR * len(large) + CONSTANT
    # Eight times the input, at most about eight times the work.
    assert _work(large) <= 9 * _work(small)


# Pieces of every format's syntax, so that generated text keeps hitting the parsers' paths.
_PIECES = st.sampled_from([
    "at ", "\tat ", "x", "\t(", "(", ")", ":", "1", ":12:34", " ", "\n", 'File "', '", line ',
    ", in ", "Traceback (most recent call last):\n", "Caused by: ", "... 3 more", "Suppressed: ",
    "goroutine 1 [running]:\n", ".go:", " +0x1d", "panic: ", ":in `", "'", "from ", "@",
    "  | ", "+-+---- 1 ----", "+------", "During handling of the above exception",
    "Error: ", "java.lang.X: ", "node_modules/", "@v1.2.3/", "(7.1.3) ", "*", "$$Lambda$1/0x1",
])


@settings(max_examples=40, deadline=None, phases=(Phase.explicit, Phase.generate),
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(_PIECES, min_size=1, max_size=200), st.integers(min_value=1, max_value=40))
def test_adversarial_traces_cost_work_linear_in_their_size(pieces: list[str],
                                                            repeat: int) -> None:
    trace = "".join(pieces) * repeat
    assert _work(trace) <= PER_CHAR * len(trace) + CONSTANT


@pytest.mark.parametrize("line", ["\tat " + "x\t(" * 1000, 'File "' * 1000, "a:1:in `" * 1000,
                                  "(" * 5000, "|" * 5000])
def test_a_long_line_is_cut_before_it_is_parsed(line: str) -> None:
    # One line twice as long as another costs no more: both are cut at MAX_LINE_CHARS.
    assert len(line) > 2 * stacktraces.MAX_LINE_CHARS
    assert _work(line * 2) <= _work(line) + CONSTANT
