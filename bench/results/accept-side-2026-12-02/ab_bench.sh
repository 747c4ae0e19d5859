# How the figures of bench/RESULTS.md 'Accept-side CPU per log (issue 17)' were taken.
# base = git archive 96af98e, after = git archive of the branch, each unpacked under /tmp/fp/<tree>.
#!/bin/bash
# A/B of the real benchmarks: base (96af98e) vs new (HEAD snapshot), alternating, 2 rounds.
OUT=/tmp/fp/ab2; mkdir -p $OUT
run() { # tree name bench...
  local tree=$1 tag=$2; shift 2
  echo "== $tag $tree: $* | load before $(cut -d' ' -f1-3 /proc/loadavg)" >> $OUT/log.txt
  (cd /tmp/fp/$tree && PYTHONPATH=/tmp/fp/$tree /work/wt/fastpath/.venv/bin/python "$@" >> $OUT/$tag-$tree.txt 2>&1)
  echo "   load after $(cut -d' ' -f1-3 /proc/loadavg)" >> $OUT/log.txt
}
for r in 1 2; do
  if [ $r = 1 ]; then order="base final"; else order="final base"; fi
  for t in $order; do run $t layout bench/bench_layout.py --layouts 1x0 --logs 100000 --rounds 1; done
  for t in $order; do run $t single bench/bench_ingest.py --logs 20000 --seconds 3; done
done
echo done >> $OUT/log.txt
