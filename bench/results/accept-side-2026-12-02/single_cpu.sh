# CPU of ledger serve ingest / gateway per single-log request, from /proc/<pid>/stat over 4 s of
# bench_ingest's 'single: max' phase; requests = that phase's req/s x 4 s.
#!/bin/bash
# CPU of gateway+ingest per single-log request during bench_ingest's "single: max" phase (5 s).
tree=$1; OUT=/tmp/fp/cpu-$tree-$2.txt
cd /tmp/fp/$tree
PYTHONPATH=/tmp/fp/$tree /work/wt/fastpath/.venv/bin/python bench/bench_ingest.py --logs 1000 --seconds 3 > $OUT 2>&1 &
B=$!
find_daemon() { ps -eo pid,ppid,cmd | awk -v p=$B -v d="serve $1" '$2==p && index($0,d) {print $1}' | head -1; }
while :; do I=$(find_daemon ingest); G=$(find_daemon gateway); [ -n "$I" ] && [ -n "$G" ] && break; sleep 0.3; done
while ! ps -eo ppid,cmd | awk -v p=$B '$1==p' | grep -q serve-stub; do sleep 0.1; done
while ps -eo ppid,cmd | awk -v p=$B '$1==p' | grep -q serve-stub; do sleep 0.1; done
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
sleep 0.5; i0=$(cpu $I); g0=$(cpu $G); t0=$(date +%s.%N)
sleep 4; i1=$(cpu $I); g1=$(cpu $G); t1=$(date +%s.%N)
wait $B
rate=$(grep "single: max" $OUT | sed -E 's/.*max +([0-9,]+) req.*/\1/' | tr -d ,)
python3 -c "
tk=100; dt=$t1-$t0; n=$rate*dt
print('$tree', 'load', open('/proc/loadavg').read().split()[0], 'rate', $rate, 'ingest µs/req', round(($i1-$i0)/tk/n*1e6), 'gateway µs/req', round(($g1-$g0)/tk/n*1e6))" | tee -a $OUT
