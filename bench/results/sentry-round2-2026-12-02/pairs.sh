#!/bin/bash
# alternate base / branch runs: pairs.sh <prefix> <n>
for i in $(seq 1 $2); do
  ./run.sh /work/wt/sentryfast-base $1-base-$i none 8000
  ./run.sh /work/wt/sentryfast $1-br-$i none 8000
done
