#!/bin/sh
# bench_replicate.sh - how fast musubid replicates a large dataset to a
# fresh node over 127.0.0.1, measured in one run against baseline_zmq (the
# same entries over ZeroMQ + CURVE in the same batches, hashed, folded into
# a Merkle root, one signature per 25,000 entries, one durable LMDB commit
# per batch: the work without the protocol); then how long a small publish
# takes to reach a third node through a relay. Prints figures only, no
# pass/fail: see README.md.
#
# usage: tests/bench/bench_replicate.sh [ENTRIES]     (default 1000000)
# Binaries: $MUSUBI, $MUSUBID, $GENCSV, $BASELINE, by default under $BUILD
# (build/). Environment:
#   SETTINGS="W:BYTES ..."  musubid window and batch-bytes pairs to try
#                           (default "8:1048576 16:1048576 32:1048576 32:4194304")
#   REPEAT=N                rounds of the baseline and every setting (interleaved);
#                           the best run of each counts (default 1)
#   PUBLISHES=N             small publishes for the latency (default 100)
#   SYNC_MS=N               musubid sync-interval-ms (default: its own)
#   PERF=FILE               record B's first sync with perf (call graphs)
#   KEEP=1                  keep the work directory (stores, logs)
set -eu

ENTRIES=${1:-1000000}
SETTINGS=${SETTINGS:-"8:1048576 16:1048576 32:1048576 32:4194304"}
REPEAT=${REPEAT:-1}
PUBLISHES=${PUBLISHES:-100}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
MUSUBI=${MUSUBI:-$BUILD/tools/musubi}
MUSUBID=${MUSUBID:-$BUILD/node/musubid}
GENCSV=${GENCSV:-$BUILD/tests/gencsv}
BASELINE=${BASELINE:-$BUILD/tests/bench/baseline_zmq}
SCHEMA=$ROOT/tests/bench/bench_schema.json

for b in "$MUSUBI" "$MUSUBID" "$GENCSV" "$BASELINE"; do
	[ -x "$b" ] || { echo "bench_replicate: $b is missing (build it, or set its variable)" >&2; exit 2; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mu-repl-XXXXXX")
# Ports: a block of 10 chosen from the pid, as tests/integration/fed.sh does.
PORT=$((20000 + ($$ % 200) * 200 + 100))
A=011002 B=012025 C=013005
DATASET=$A/bench
SYNC_FLAG=
[ -n "${SYNC_MS:-}" ] && SYNC_FLAG="--sync-interval-ms $SYNC_MS"

stop() {
	[ -f "$WORK/$1.pid" ] || return 0
	kill "$(cat "$WORK/$1.pid")" 2>/dev/null || true
	wait "$(cat "$WORK/$1.pid")" 2>/dev/null || true
	rm -f "$WORK/$1.pid"
}
cleanup() {
	for id in C B A; do stop $id; done
	if [ -n "${KEEP:-}" ]; then echo "bench_replicate: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port() { case $1 in A) echo "$PORT" ;; B) echo $((PORT + 2)) ;; C) echo $((PORT + 4)) ;; esac; }
member() { case $1 in A) echo $A ;; B) echo $B ;; C) echo $C ;; esac; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }

# Entries of dataset $2 in node $1's store: a read-only look at its LMDB
# that does not disturb the node's loop (4 ms a call).
entries() {
	"$MUSUBI" status --dir "$WORK/$1" --json 2>/dev/null |
		sed -n "s|.*\"dataset\":\"$2\"[^}]*\"entries\":\([0-9]*\).*|\1|p"
}

# CPU seconds (user + system) a live process has used so far.
cpu_s() {
	awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' \
		"/proc/$1/stat"
}

# start ID [FLAGS...]: run musubid for node ID (A, B or C) in the background;
# wait_ready ID: until it answers a status request.
start() {
	id=$1
	shift
	# shellcheck disable=SC2086
	"$MUSUBID" --dir "$WORK/$id" --listen "tcp://127.0.0.1:$(port "$id")" $SYNC_FLAG "$@" \
		>>"$WORK/$id.log" 2>&1 &
	echo $! >"$WORK/$id.pid"
}
wait_ready() {
	n=0
	until "$MUSUBI" status --node "tcp://127.0.0.1:$(port "$1")" --dir "$WORK/$1" --timeout 500 \
		--json >/dev/null 2>&1; do
		n=$((n + 1))
		if [ $n -ge 50 ]; then
			echo "bench_replicate: musubid $1 did not start:" >&2
			sed 's/^/  | /' "$WORK/$1.log" >&2
			exit 1
		fi
		sleep 0.1
	done
}
fresh() {
	rm -rf "${WORK:?}/$1" "$WORK/$1.log"
	"$MUSUBI" init --dir "$WORK/$1" --member "$(member "$1")" --key "$WORK/keys/$1" \
		--trust "$WORK/trust.tl" >/dev/null
}

echo "federation of three nodes, trust list, $ENTRIES rows..." >&2
mkdir -p "$WORK/keys"
"$MUSUBI" keygen --out "$WORK/keys/anchor" >/dev/null
"$MUSUBI" trust init --out "$WORK/trust.tl" --anchor "$WORK/keys/anchor/signing.pub.pem" \
	--threshold 1 --federation bench >/dev/null
for id in A B C; do
	"$MUSUBI" keygen --out "$WORK/keys/$id" >/dev/null
	"$MUSUBI" trust add "$WORK/trust.tl" --member "$(member $id)" --name "node $id" \
		--key "$WORK/keys/$id" --endpoint "tcp://127.0.0.1:$(port $id)" \
		--roles publisher,relay >/dev/null
done
"$MUSUBI" trust sign "$WORK/trust.tl" --key "$WORK/keys/anchor" >/dev/null
fresh A
"$GENCSV" "$ENTRIES" >"$WORK/v0.csv"
t=$(now)
"$MUSUBI" publish --dir "$WORK/A" --dataset bench --schema "$SCHEMA" "$WORK/v0.csv" >"$WORK/publish.out"
publish_s=$(since "$t")
rm -f "$WORK/v0.csv"
[ "$(entries A "$DATASET")" = "$ENTRIES" ] ||
	{ echo "bench_replicate: the publish did not give $ENTRIES entries" >&2; exit 1; }

start A
wait_ready A

# sync_run W BYTES: a fresh B fetches everything from A; appends
# "seconds B_cpu A_cpu B_peak_rss_kB" to $WORK/sync-W:BYTES.m
sync_run() {
	fresh B
	printf 'window = %s\nbatch-bytes = %s\n' "$1" "$2" >"$WORK/B.conf"
	sync
	a0=$(cpu_s "$(cat "$WORK/A.pid")")
	t=$(now)
	start B --config "$WORK/B.conf" --peer $A
	bpid=$(cat "$WORK/B.pid")
	if [ -n "${PERF:-}" ] && [ ! -e "$PERF" ]; then
		perf record -q --call-graph dwarf,16384 -F 250 -o "$PERF" -p "$bpid" 2>/dev/null &
		echo $! >"$WORK/perf.pid"
	fi
	while [ "$(entries B "$DATASET")" != "$ENTRIES" ]; do
		if ! kill -0 "$bpid" 2>/dev/null; then
			echo "bench_replicate: musubid B exited during the sync:" >&2
			sed 's/^/  | /' "$WORK/B.log" >&2
			exit 1
		fi
		sleep 0.05
	done
	secs=$(since "$t")
	echo "$secs $(cpu_s "$bpid") $(awk -v a="$a0" -v b="$(cpu_s "$(cat "$WORK/A.pid")")" \
		'BEGIN { printf "%.2f", b - a }') $(awk '/^VmHWM/ { print $2 }' "/proc/$bpid/status")" \
		>>"$WORK/sync-$1:$2.m"
	cp "$WORK/B.log" "$WORK/sync-$1:$2.log"
	if [ -f "$WORK/perf.pid" ]; then
		kill -INT "$(cat "$WORK/perf.pid")"
		wait "$(cat "$WORK/perf.pid")" || true
		rm -f "$WORK/perf.pid"
	fi
	stop B
}

# Rounds of the baseline and every setting, interleaved, so that a change
# in the machine's load falls on both sides of the ratio.
load0=$(cut -d' ' -f1-3 /proc/loadavg)
i=0
while [ "$i" -lt "$REPEAT" ]; do
	i=$((i + 1))
	echo "round $i of $REPEAT: baseline..." >&2
	sync
	rm -rf "$WORK/baseline"
	"$BASELINE" "$WORK/A" "$DATASET" "$WORK/baseline" >>"$WORK/baseline.out"
	rm -rf "$WORK/baseline"
	for s in $SETTINGS; do
		echo "round $i of $REPEAT: musubid window ${s%:*}, batch-bytes ${s#*:}..." >&2
		sync_run "${s%:*}" "${s#*:}"
	done
done
# Over the runs: the least time and CPU (the least disturbed run measures
# the code), the highest memory.
least() {
	awk 'NR == 1 || $1 < s { s = $1 } NR == 1 || $2 < b { b = $2 } NR == 1 || $3 < a { a = $3 }
	     $4 > r { r = $4 } END { print s, b, a, r }'
}
# "N entries (442.7 MB, ...) in 2.676 s (...); cpu 1.69 s receiver + 1.00 s sender"
# becomes "2.676 1.69 1.00".
base=$(sed -n 's/.* in \([0-9.]*\) s .*cpu \([0-9.]*\) s receiver + \([0-9.]*\) s sender/\1 \2 \3 0/p' \
	"$WORK/baseline.out" | least)
base_s=${base%% *}
entry_mb=$(sed -n 's/.*entries (\([0-9.]*\) MB.*/\1/p' "$WORK/baseline.out" | head -n 1)

# Latency: A - B - C in a line, C peering only with B; both replicate only
# the small dataset, so nothing else is on the wire.
echo "latency: $PUBLISHES publishes on A, waiting for each on C..." >&2
fresh B
fresh C
start B --peer $A --replicate "$A/lat"
start C --peer $B --replicate "$A/lat"
wait_ready B
wait_ready C
python3 - "$MUSUBI" "$GENCSV" "$WORK" "$SCHEMA" "$PUBLISHES" "$A/lat" <<'EOF' >"$WORK/latency.out"
import re, subprocess, sys, time
musubi, gencsv, work, schema, count, dataset = sys.argv[1:7]
def entries(node):
    out = subprocess.run([musubi, "status", "--dir", "%s/%s" % (work, node), "--json"],
                         capture_output=True, text=True).stdout
    m = re.search(r'"dataset":"%s"[^}]*"entries":(\d+)' % re.escape(dataset), out)
    return int(m.group(1)) if m else 0
for i in range(1, int(count) + 1):
    # Ten rows, every one different from the last publish: ten new entries.
    with open("%s/lat.csv" % work, "w") as f:
        subprocess.run([gencsv, "10", str(i), "1"], stdout=f, check=True)
    out = subprocess.run([musubi, "publish", "--dir", work + "/A", "--dataset", "lat",
                          "--schema", schema, work + "/lat.csv"],
                         capture_output=True, text=True, check=True).stdout
    t0 = time.monotonic()
    size = int(re.search(r"-> (\d+) entries", out).group(1))
    while entries("C") < size:
        if time.monotonic() - t0 > 60:
            sys.exit("C did not reach %d entries of %s within 60 s" % (size, dataset))
        time.sleep(0.005)
    print("%.1f" % ((time.monotonic() - t0) * 1000))
EOF

# best W:BYTES: "seconds B_cpu A_cpu rss" of a setting, as least() says.
best() { least <"$WORK/sync-$1.m"; }

echo
awk -v n="$ENTRIES" -v mb="$entry_mb" -v cpus="$(nproc)" 'BEGIN {
	printf "replicate benchmark: %d entries, %.1f MB of Entry bytes (%.0f bytes an entry), %d CPUs\n",
	       n, mb, (n ? mb * 1048576 / n : 0), cpus }'
echo "best of $REPEAT run(s); load average before: $load0, after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "publish into A: $publish_s s"
echo
# cpu: the receiving side (B, or baseline_zmq's receiver) and the sending
# side (A, or baseline_zmq's sender), user + system, all threads.
printf "%-42s %8s %10s %7s %7s %7s %9s\n" "" seconds entries/s ratio "B cpu" "A cpu" "B RSS"
printf "%-42s %8s %10s %7s %7s %7s %9s\n" "" "" "" "" s s MB
echo "$base" | awk -v n="$ENTRIES" '{
	printf "%-42s %8.2f %10.0f %7.2f %7.2f %7.2f %9s\n", "baseline_zmq (no protocol)", $1, n / $1, 1,
	       $2, $3, "-" }'
for s in $SETTINGS; do
	best "$s" | awk -v label="musubid window ${s%:*}, batch-bytes ${s#*:}" -v n="$ENTRIES" \
		-v b="$base_s" '{
		printf "%-42s %8.2f %10.0f %7.2f %7.2f %7.2f %9.1f\n", label, $1, n / $1,
		       b / $1, $2, $3, $4 / 1024 }'
done
echo
for s in $SETTINGS; do echo "$(best "$s") $s"; done | sort -n | head -n 1 |
	awk -v base="$base" '{ split($5, w, ":"); split(base, b, " ")
		printf "best setting: window %s, batch-bytes %s\n", w[1], w[2]
		printf "musubid entries/s / baseline entries/s:  %5.2f  (aim >= 0.6)\n", b[1] / $1
		printf "by CPU time, baseline / musubid:         %5.2f  (receiver %.2f, sender %.2f)\n",
		       (b[2] + b[3]) / ($2 + $3), b[2] / $2, b[3] / $3 }'
sort -n "$WORK/latency.out" | awk -v want="$PUBLISHES" '{ v[NR] = $1 } END {
	if (NR < want) { printf "latency: only %d of %d publishes measured\n", NR, want; exit }
	printf "publish on A -> stored and verified on C via B, %d publishes of 10 rows:\n", NR
	p90 = int(NR * 0.9); if (p90 < NR * 0.9) p90++   # nearest rank
	printf "  median %.0f ms, p90 %.0f ms (min %.0f, max %.0f)\n",
	       (v[int((NR + 1) / 2)] + v[int(NR / 2) + 1]) / 2, v[p90], v[1], v[NR] }'
