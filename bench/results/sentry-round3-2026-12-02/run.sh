#!/bin/bash
# usage: run.sh <worktree> <tag> [profile: gateway|ingest|none] [events]
WT=$1; TAG=$2; PROF=${3:-none}; EV=${4:-6000}
cd $WT
uptime > /tmp/si/$TAG.load
.venv/bin/python bench/bench_sentry.py --events $EV --seconds 3 > /tmp/si/$TAG.out 2>&1 &
BP=$!
if [ "$PROF" != none ]; then
  # wait for the gateway process, a descendant of the bench
  for i in $(seq 1 120); do
    GP=$(pgrep -f "serve $PROF" | while read p; do a=$p; while [ "$a" -gt 1 ]; do a=$(awk '{print $4}' /proc/$a/stat 2>/dev/null || echo 1); if [ "$a" = "$BP" ]; then echo $p; break; fi; done; done | head -1)
    [ -n "$GP" ] && break; sleep 0.5
  done
  # wait for throughput start: the layer_cost phase takes a few seconds after the stack is up
  sleep ${PROF_DELAY:-12}
  $WT/.venv/bin/py-spy record ${PYSPY_EXTRA} -r 200 --format raw -d ${PROF_SECS:-10} -o /tmp/si/$TAG.$PROF.txt -p $GP > /tmp/si/$TAG.pyspy.log 2>&1
fi
wait $BP
uptime >> /tmp/si/$TAG.load
