"""Share of samples per function in a py-spy raw profile, idle waits left out.

    .venv/bin/py-spy record -r 200 --format raw -d 10 -o ingest.txt -p <pid of ledger serve ingest>
    .venv/bin/python bench/profile_shares.py ingest.txt [--top 15] [--within prepare]

A sample whose innermost frame is a wait (the thread pool's idle workers, the event loop's
``select``) is not CPU spent, so it is dropped before the shares are taken. "self" is the
share of samples with the function innermost, "total" with it anywhere on the stack.
``--within NAME`` keeps only the samples that have a frame whose name starts with NAME.
Used for bench/RESULTS.md, "Accept-side CPU per log (issue 17)".
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

#: Innermost frames that mean "waiting", not "working".
IDLE = frozenset({
    "_worker (thread.py)", "Thread.run (threading.py)", "Runner.run (runners.py)",
    "select (selectors.py)", "wait (threading.py)",
})
_FRAME = re.compile(r" \((?:.*/)?([^/]+):\d+\)")


def shares(path: Path, within: str | None) -> tuple[int, Counter[str], Counter[str]]:
    """(busy samples, self counts, total counts) of a py-spy ``--format raw`` file."""
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    busy = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        frames = [_FRAME.sub(r" (\1)", frame) for frame in stack.split(";")]
        if frames[-1] in IDLE or (within and not any(f.startswith(within) for f in frames)):
            continue
        count = int(count_text)
        busy += count
        own[frames[-1]] += count
        for frame in set(frames):
            anywhere[frame] += count
    return busy, own, anywhere


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--within", help="only samples with a frame starting with this name")
    args = parser.parse_args()
    busy, own, anywhere = shares(args.profile, args.within)
    print(f"{busy} busy samples\n\n| function (self) | share |\n|---|---|")
    for name, count in own.most_common(args.top):
        print(f"| `{name}` | {count / busy:.1%} |")
    print("\n| function (total) | share |\n|---|---|")
    for name, count in anywhere.most_common(args.top):
        print(f"| `{name}` | {count / busy:.1%} |")


if __name__ == "__main__":
    main()
