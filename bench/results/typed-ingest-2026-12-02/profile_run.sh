#!/bin/bash
# $1 = worktree, $2 = out file
cd $1
.venv/bin/python bench/bench_layout.py --layouts 1x0 --logs 400000 --rounds 1 > $2.bench 2>&1 &
BPID=$!
# wait for the ingest process of this worktree
for i in $(seq 1 300); do
  for p in $(pgrep -f "serve ingest"); do
    if tr '\0' ' ' < /proc/$p/cmdline 2>/dev/null | grep -q "$1/.venv"; then PID=$p; fi
  done
  [ -n "$PID" ] && break
  sleep 0.2
done
echo "ingest pid $PID"
# the warm-up and the batch phase: wait until ingest CPU rises, then sample 10 s
sleep 4
$1/.venv/bin/py-spy record -r 200 --format raw -d 10 -o $2 -p $PID > /dev/null 2>&1
wait $BPID
