#!/bin/bash
# usage: gwpair.sh TAG  -- one base run then one branch run of bench_single_cpu (5 s)
export LEDGER_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/postgres LEDGER_TEST_REDIS_URL=redis://127.0.0.1:6379/12 LEDGER_TEST_REDIS_DBS=12-13
tag=$1
for side in base branch; do
  if [ $side = base ]; then dir=/work/wt/gwsingle-base; pp=/work/wt/gwsingle-base; else dir=/work/wt/gwsingle; pp=/work/wt/gwsingle; fi
  (cd $dir && PYTHONPATH=$pp /work/wt/gwsingle/.venv/bin/python /work/wt/gwsingle/bench/bench_single_cpu.py --seconds 5 $EXTRA > /tmp/gwruns/$tag-$side.txt 2>&1)
  echo "== $tag $side"; grep -E "load|single: max|CPU per request \(max|system calls" /tmp/gwruns/$tag-$side.txt
done
