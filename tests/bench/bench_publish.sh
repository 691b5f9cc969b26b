#!/bin/sh
# bench_publish.sh - how fast musubi publishes a large CSV, measured in one
# run against two references: sqlite3 importing the same file into a file
# database, and baseline_hashput (SHA-256 + LMDB put per row, batches of
# 10,000, durable). Prints figures only, no pass/fail: see README.md.
#
# usage: tests/bench/bench_publish.sh [ROWS]     (default 1000000)
# Binaries: $MUSUBI, $GENCSV, $BASELINE, by default under $BUILD (build/).
# REPEAT=N runs every step N times (fresh stores each time) and reports the
# best time and the highest memory: on a shared machine, the least-disturbed
# run is the one that measures the code.
set -eu

ROWS=${1:-1000000}
REPEAT=${REPEAT:-1}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
MUSUBI=${MUSUBI:-$BUILD/tools/musubi}
GENCSV=${GENCSV:-$BUILD/tests/gencsv}
BASELINE=${BASELINE:-$BUILD/tests/bench/baseline_hashput}
SQLITE3=${SQLITE3:-sqlite3}
SCHEMA=$ROOT/tests/bench/bench_schema.json

for b in "$MUSUBI" "$GENCSV" "$BASELINE"; do
	[ -x "$b" ] || { echo "bench_publish: $b is missing (build it, or set its variable)" >&2; exit 2; }
done
command -v "$SQLITE3" >/dev/null || { echo "bench_publish: no $SQLITE3 on PATH" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mu-bench-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
trap 'exit 1' HUP INT PIPE TERM   # run the EXIT trap on these too

# Peak RSS: GNU time's %M (Debian package "time") when installed, else
# python3's wait4 ru_maxrss, which also counts python's own pages from
# before the exec (about 10 MB too much for a small program).
GNUTIME=
/usr/bin/time --version 2>&1 | grep -q GNU && GNUTIME=1

# measure NAME CMD...: run CMD (output in $WORK/NAME.out) and add a line
# "seconds peak_rss_kB peak_anon_kB cpu_seconds" to $WORK/NAME.m. Peak RSS
# counts the pages of LMDB's read-only map that the process touched, which
# are page cache, so the peak of anonymous memory (heap; sampled from /proc
# every 20 ms) is kept too. Dirty pages of earlier steps are synced first so
# that no step pays for another's writeback. Wall time includes start-up.
measure() {
	name=$1
	shift
	sync
	if ! python3 -c '
import os, subprocess, sys, threading, time
out, rssfile, cmd = sys.argv[1], sys.argv[1] + ".rss", sys.argv[3:]
if sys.argv[2]:
    cmd = ["/usr/bin/time", "-f", "%M", "-o", rssfile] + cmd
anon, done = [0], threading.Event()
def tree(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            kids = [int(k) for k in f.read().split()]
    except OSError:
        kids = []
    return [pid] + [d for k in kids for d in tree(k)]
def sample():
    while not done.is_set():
        for pid in tree(p.pid):
            try:
                with open("/proc/%d/status" % pid) as f:
                    for line in f:
                        if line.startswith("RssAnon:"):
                            anon[0] = max(anon[0], int(line.split()[1]))
            except OSError:
                pass
        done.wait(0.02)
t0 = time.monotonic()
p = subprocess.Popen(cmd)
threading.Thread(target=sample, daemon=True).start()
_, status, ru = os.wait4(p.pid, 0)
secs = time.monotonic() - t0
done.set()
rss = int(open(rssfile).read().split()[-1]) if sys.argv[2] else ru.ru_maxrss
open(out, "a").write("%.3f %d %d %.2f\n" % (secs, rss, anon[0], ru.ru_utime + ru.ru_stime))
sys.exit(os.waitstatus_to_exitcode(status))' "$WORK/$name.m" "$GNUTIME" "$@" >"$WORK/$name.out" 2>&1
	then
		echo "bench_publish: $name failed: $*" >&2
		sed 's/^/  | /' "$WORK/$name.out" >&2
		exit 1
	fi
}

# best NAME: a line of NAME.m over the repeats: the shortest times, the
# highest memory.
best() {
	awk 'NR == 1 || $1 < s { s = $1 } NR == 1 || $4 < c { c = $4 } $2 > r { r = $2 }
	     $3 > a { a = $3 } END { print s, r, a, c }' "$WORK/$1.m"
}
rate() { best "$1" | awk -v r="$ROWS" '{ printf "%.0f", ($1 > 0 ? r / $1 : 0) }'; }
row() {
	best "$1" | awk -v label="$2" -v r="$ROWS" -v disk="${3:--}" \
		'{ printf "%-38s %8.2f %6.2f %10.0f %9.1f %9.1f %7s\n", label, $1, $4,
		   ($1 > 0 ? r / $1 : 0), $2 / 1024, $3 / 1024, disk }'
}
publish() {
	measure "$1" "$MUSUBI" publish --dir "$WORK/node" --dataset bench --schema "$SCHEMA" "$2"
}
disk_mb() { du -sk "$1" | awk '{ printf "%.1f", $1 / 1024 }'; }

echo "generating $ROWS rows..." >&2
"$GENCSV" "$ROWS" >"$WORK/v0.csv"
"$GENCSV" "$ROWS" 1 10 >"$WORK/v1.csv"   # every 10th row changed
csv_bytes=$(wc -c <"$WORK/v0.csv")

load0=$(cut -d' ' -f1-3 /proc/loadavg)
i=0
while [ "$i" -lt "$REPEAT" ]; do
	i=$((i + 1))
	rm -rf "$WORK/keys" "$WORK/node" "$WORK/sqlite.db" "$WORK/baseline"
	echo "run $i of $REPEAT: musubi..." >&2
	measure keygen "$MUSUBI" keygen --out "$WORK/keys"
	measure init "$MUSUBI" init --dir "$WORK/node" --member 011002 --key "$WORK/keys"
	publish publish "$WORK/v0.csv"
	musubi_disk=$(disk_mb "$WORK/node")
	publish again "$WORK/v0.csv"
	publish changed "$WORK/v1.csv"

	echo "run $i of $REPEAT: sqlite3..." >&2
	measure sqlite "$SQLITE3" "$WORK/sqlite.db" ".mode csv" ".import '$WORK/v0.csv' t"
	sqlite_disk=$(disk_mb "$WORK/sqlite.db")
	n=$("$SQLITE3" "$WORK/sqlite.db" "select count(*) from t")
	[ "$n" = "$ROWS" ] || echo "bench_publish: warning: sqlite3 imported $n rows, not $ROWS" >&2

	echo "run $i of $REPEAT: baseline..." >&2
	measure baseline "$BASELINE" "$WORK/v0.csv" "$WORK/baseline"
	baseline_disk=$(disk_mb "$WORK/baseline")
done

echo
awk -v r="$ROWS" -v b="$csv_bytes" -v cpus="$(nproc)" 'BEGIN {
	printf "publish benchmark: %d rows, %.1f MB of CSV (%.0f bytes a row), %d CPUs\n",
	       r, b / 1048576, (r ? b / r : 0), cpus }'
echo "best of $REPEAT run(s); load average before: $load0, after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
printf "%-38s %8s %6s %10s %9s %9s %7s\n" "" "wall s" "CPU s" rows/s "peak RSS" "peak heap" disk
printf "%-38s %8s %6s %10s %9s %9s %7s\n" "" "" "" "" MB MB MB
row publish "musubi publish, fresh node" "$musubi_disk"
row sqlite "sqlite3 .import, file database" "$sqlite_disk"
row baseline "baseline_hashput (SHA-256 + LMDB put)" "$baseline_disk"
row again "musubi publish again, no change"
row changed "musubi publish, every 10th row changed"
echo
echo "musubi keygen + init: $(best keygen | cut -d' ' -f1) + $(best init | cut -d' ' -f1) s"
for r in publish again changed; do
	echo "  $r: $(grep -v '^$' "$WORK/$r.out" | head -n 2 | paste -sd ';' - | sed 's/;/; /')"
done
echo
mu=$(rate publish)
cpu() { best "$1" | cut -d' ' -f4; }
awk -v m="$mu" -v s="$(rate sqlite)" -v b="$(rate baseline)" \
	-v mc="$(cpu publish)" -v sc="$(cpu sqlite)" -v bc="$(cpu baseline)" \
	-v rss="$(best publish | cut -d' ' -f2)" -v heap="$(best publish | cut -d' ' -f3)" 'BEGIN {
	printf "musubi rows/s / sqlite3 rows/s:   %6.2f    (aim >= 1.5; by CPU time %.2f)\n",
	       (s ? m / s : 0), (mc ? sc / mc : 0)
	printf "musubi rows/s / baseline rows/s:  %6.2f    (aim >= 0.6; by CPU time %.2f)\n",
	       (b ? m / b : 0), (mc ? bc / mc : 0)
	printf "musubi publish peak memory:       %6.1f MB (aim < 100 MB); heap alone %.1f MB\n",
	       rss / 1024, heap / 1024 }'
