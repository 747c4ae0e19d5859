#!/bin/bash
# pairs.sh <prefix> <n> <branch worktree>: alternate base / branch runs.
# run.sh is bench/results/sentry-round2-2026-12-02/run.sh with /tmp/sf changed to /tmp/si.
for i in $(seq 1 $2); do
  /tmp/si/run.sh /work/wt/sentryingest-base $1-base-$i none 8000
  /tmp/si/run.sh $3 $1-br-$i none 8000
done
