#!/bin/bash
# pairs.sh <prefix> <n> <branch worktree>
for i in $(seq 1 $2); do
  /tmp/si/run.sh /work/wt/sentryingest-base $1-base-$i none 8000
  /tmp/si/run.sh $3 $1-br-$i none 8000
done
