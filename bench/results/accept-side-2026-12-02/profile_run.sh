#!/bin/bash
# usage: profile_run.sh TAG  -- runs bench_layout 1x0 (batch) and bench_ingest single, py-spy on ingest+gateway
cd /work/wt/fastpath
TAG=$1; OUT=/tmp/fp/$TAG; mkdir -p $OUT
children() { ps -eo pid,ppid,cmd | awk -v p=$1 '$2==p {print $1, $0}'; }
find_daemon() { # $1 bench pid, $2 daemon name
  ps -eo pid,ppid,cmd | awk -v p=$1 -v d="serve $2" '$2==p && index($0,d) {print $1}' | head -1; }
# batch phase
.venv/bin/python bench/bench_layout.py --layouts 1x0 --logs 300000 --rounds 1 > $OUT/layout.txt 2>&1 &
B=$!
while :; do I=$(find_daemon $B ingest); G=$(find_daemon $B gateway); [ -n "$I" ] && [ -n "$G" ] && break; sleep 0.5; done
sleep 6   # start-up + warm-up batches
.venv/bin/py-spy record -r 200 -o $OUT/batch-ingest.txt --format raw -d 10 -p $I > /dev/null 2>&1 &
.venv/bin/py-spy record -r 200 -o $OUT/batch-gateway.txt --format raw -d 10 -p $G > /dev/null 2>&1 &
wait $B
# single phase: bench_ingest, profile during "single: max" (after stub ~ 5 s max + 3 s fixed)
.venv/bin/python bench/bench_ingest.py --logs 1000 --seconds 3 > $OUT/single.txt 2>&1 &
B=$!
while :; do I=$(find_daemon $B ingest); G=$(find_daemon $B gateway); [ -n "$I" ] && [ -n "$G" ] && break; sleep 0.5; done
# wait for stub process to go away: the stub is a child "--serve-stub"
while ! ps -eo ppid,cmd | awk -v p=$B '$1==p' | grep -q serve-stub; do sleep 0.2; done
while ps -eo ppid,cmd | awk -v p=$B '$1==p' | grep -q serve-stub; do sleep 0.2; done
.venv/bin/py-spy record -r 200 -o $OUT/single-ingest.txt --format raw -d 4 -p $I > /dev/null 2>&1 &
.venv/bin/py-spy record -r 200 -o $OUT/single-gateway.txt --format raw -d 4 -p $G > /dev/null 2>&1 &
wait $B
echo finished
