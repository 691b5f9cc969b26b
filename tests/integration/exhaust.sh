#!/bin/sh
# Resource exhaustion: a data directory whose disk is full, a store that
# reached its map-max, too many queries and too many connections. Each gives
# a clear error, appends nothing, keeps the node serving reads, and
# recovers when the resource returns.
#
# The full disk is a small tmpfs mounted over the replica's data directory
# when this runs as root and mounting is allowed; elsewhere (containers) a
# file-size limit on the processes (prlimit --fsize), which makes the same
# writes fail with EFBIG. The output says which; EXHAUST_MODE=fsize forces
# the second.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fed.sh"

MNT=""
cleanup() {
	fed_stop_all
	[ -n "$MNT" ] && umount "$MNT" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT
[ -n "${KEEP:-}" ] && trap - EXIT

fed_init 011002 222127 012025
A=011002 B=222127 C=012025
BDIR=$(fed_dir $B)
BEP="tcp://127.0.0.1:$(fed_port $B)"

# rows and log size of a dataset in a data directory, from its own store
entries() {
	"$MUSUBI" status --dir "$1" --json 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(next((x["entries"] for x in d["datasets"] if x["dataset"] == sys.argv[1]), 0))' "$2"
}

# --- B's data directory on a small file system, or under a size limit -----
MODE=fsize
mkdir -p "$WORK/mnt"
if [ "${EXHAUST_MODE:-}" != fsize ] && [ "$(id -u)" = 0 ] &&
	mount -t tmpfs -o size=16m musubi-exhaust "$WORK/mnt" 2>/dev/null; then
	MNT="$WORK/mnt"
	MODE=tmpfs
	cp -a "$BDIR/." "$MNT/"
	rm -rf "$BDIR"
	ln -s "$MNT" "$BDIR"
	echo "full disk: a 16 MiB tmpfs holds B's data directory"
else
	echo "full disk: no tmpfs (not root, mounting refused, or EXHAUST_MODE=fsize);" \
		"a file-size limit (prlimit --fsize) stands in"
fi

fed_start $A $B
fed_start $B $A
"$MUSUBI" publish --dir "$(fed_dir $A)" --dataset evacuation_sites --schema gsi_evacuation_site@1 \
	"$DATA/evacuation_sites/011002_sapporo_gsi.csv" >/dev/null
"$MUSUBI" publish --dir "$BDIR" --dataset aed --schema aed@1 "$DATA/aed/222127_yaizu.csv" >/dev/null
fed_wait_rows $B 011002/evacuation_sites 348 30
fed_wait_rows $A 222127/aed 82 30
B_SIZE=$(entries "$BDIR" 222127/aed)
[ "${B_SIZE:-0}" -gt 0 ] || fail "cannot read B's size of 222127/aed before the disk fills"

# Fill the disk: every write that grows the store now fails.
"$GENCSV" 5000 >"$WORK/big.csv"
BPID=$(cat "$WORK/fed/$B.pid")
if [ $MODE = tmpfs ]; then
	dd if=/dev/zero of="$MNT/filler" bs=64k 2>/dev/null || true
	LIMIT=""
else
	LIMIT=$(stat -c %s "$BDIR/store/data.mdb")
	prlimit --pid "$BPID" --fsize="$LIMIT:"
fi
# run CMD... under B's limit (none with tmpfs: the disk itself is full)
limited() {
	if [ -n "$LIMIT" ]; then
		prlimit --fsize="$LIMIT:" "$@"
	else
		"$@"
	fi
}

# musubi publish to the full store: a clear error naming the cause and what
# to do, nothing appended, the store verifies.
expect_status 3 limited "$MUSUBI" publish --dir "$BDIR" --dataset sites \
	--schema "$SRC/tests/bench/bench_schema.json" "$WORK/big.csv"
expect_in "$WORK/err" "nothing was appended"
grep -Eq "full|limit" "$WORK/err" || { fail "the publish error does not say the disk is full"; cat "$WORK/err" >&2; }
grep -q "then try again" "$WORK/err" || fail "the publish error does not say what to do"
expect_status 0 "$MUSUBI" verify --dir "$BDIR"
[ "$(entries "$BDIR" 222127/sites)" = 0 ] || fail "a failed publish appended entries"
[ "$(entries "$BDIR" 222127/aed)" = "$B_SIZE" ] || fail "B's own log moved"

# A running node that cannot store what it fetches says so, does not blame
# the peer, and keeps serving reads.
"$MUSUBI" publish --dir "$(fed_dir $A)" --dataset sites --schema "$SRC/tests/bench/bench_schema.json" \
	"$WORK/big.csv" >/dev/null
wait_for_log "$WORK/fed/$B.log" "cannot store 011002/sites" 10 \
	"B does not log that it cannot store what it fetched"
grep "cannot store 011002/sites" "$WORK/fed/$B.log" | head -1 | grep -Eq "full|limit" ||
	fail "B's log does not name the cause"
grep -q "peer .*(011002).*cannot store\|peer .*(011002).*No space" "$WORK/fed/$B.log" &&
	fail "B blames its peer for its own full disk"
expect_status 0 "$MUSUBI" status --node "$BEP" --dir "$BDIR" --json
[ "$(json_field "$WORK/out" 'd["member"]')" = $B ] || fail "status from the full node is wrong"
expect_status 0 "$MUSUBI" query --node "$BEP" --dir "$BDIR" --format csv --local \
	"SELECT count(*) AS n FROM evacuation_sites WHERE _publisher = '011002'"
expect_in "$WORK/out" "348"
expect_status 0 "$MUSUBI" verify --dir "$BDIR"

# Space returns: publishing and replication work again, and every node
# converges (A also holds B's new dataset).
if [ $MODE = tmpfs ]; then
	rm -f "$MNT/filler"
	mount -o remount,size=64m "$MNT"
else
	prlimit --pid "$BPID" --fsize=unlimited:
fi
expect_status 0 "$MUSUBI" publish --dir "$BDIR" --dataset sites \
	--schema "$SRC/tests/bench/bench_schema.json" "$WORK/big.csv"
fed_wait_rows $B 011002/sites 5000 60
fed_wait_rows $A 222127/sites 5000 60
for id in $A $B; do
	expect_status 0 "$MUSUBI" verify --dir "$(fed_dir $id)"
done
fed_stop $B

# --- A store at its map-max -------------------------------------------------
# musubi publish with $MUSUBI_MAP_MAX below what the file needs: refused
# with the cause and the way out, nothing appended.
CDIR=$(fed_dir $C)
expect_status 3 env MUSUBI_MAP_MAX=1048576 "$MUSUBI" publish --dir "$CDIR" --dataset sites \
	--schema "$SRC/tests/bench/bench_schema.json" "$WORK/big.csv"
expect_in "$WORK/err" "maximum"
expect_in "$WORK/err" "map-max"
expect_status 0 "$MUSUBI" verify --dir "$CDIR"
[ "$(entries "$CDIR" 012025/sites)" = 0 ] || fail "a publish past map-max appended entries"

# A node started with --map-max 1M cannot hold A's 5000 rows: it logs why
# and keeps answering; restarted without the limit, it catches up.
FED_EXTRA="--map-max 1M" fed_start $C $A
wait_for_log "$WORK/fed/$C.log" "cannot store 011002/sites" 10 \
	"C does not log that its map is at map-max"
grep "cannot store 011002/sites" "$WORK/fed/$C.log" | head -1 | grep -q "map-max" ||
	fail "C's log does not name map-max"
expect_status 0 "$MUSUBI" status --node "tcp://127.0.0.1:$(fed_port $C)" --dir "$CDIR" --json
fed_wait_rows $C 011002/evacuation_sites 348 30
fed_stop $C
fed_start $C $A
fed_wait_rows $C 011002/sites 5000 60
expect_status 0 "$MUSUBI" verify --dir "$CDIR"
expect_status 2 "$MUSUBID" --dir "$CDIR" --listen tcp://127.0.0.1:1 --map-max 12x
expect_in "$WORK/err" "map-max"

# --- Too many queries, too many connections --------------------------------
# B answers one query at a time (--max-queries 1) and holds two connections
# (--max-connections 2): the next is told the node is busy, not left to
# time out, and is served once the others are done.
fed_stop_all
FED_EXTRA="--max-queries 1 --max-connections 2" fed_start $B
SLOW="WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 12000000)
SELECT x FROM c WHERE x = 12000000"
"$MUSUBI" query --node "$BEP" --dir "$BDIR" --local --format csv --timeout 60000 "$SLOW" \
	>"$WORK/slow.out" 2>&1 &
SLOWPID=$!
# Once the node has taken it (its query counter moved), one more is refused
# (the exit status of a refused query is musubi query's to choose: not 0).
n=0
until "$MUSUBI" status --node "$BEP" --dir "$BDIR" --json 2>/dev/null |
	python3 -c 'import json,sys; sys.exit(json.load(sys.stdin)["counters"]["queries"] < 1)'; do
	n=$((n + 1))
	[ $n -lt 100 ] || { fail "B never took the slow query"; break; }
	sleep 0.05
done
kill -0 $SLOWPID 2>/dev/null || fail "the slow query ended too soon to test max-queries"
set +e
"$MUSUBI" query --node "$BEP" --dir "$BDIR" --local --format csv "SELECT 1" >"$WORK/out" 2>"$WORK/err"
rc=$?
# 3: the command could not run (now); not 2, which blames the command line.
[ $rc -eq 3 ] || fail "a query beyond max-queries exited $rc, wanted 3"
set -e
expect_in "$WORK/err" "node busy: 1 queries running or waiting (max-queries 1)"
wait $SLOWPID || fail "the slow query failed: $(cat "$WORK/slow.out")"
expect_in "$WORK/slow.out" "12000000"
expect_status 0 "$MUSUBI" query --node "$BEP" --dir "$BDIR" --local --format csv "SELECT 1 AS one"

# Two peers connect to B and stay: a third connection is refused politely.
fed_start $A $B
fed_start $C $B
n=0
until ! "$MUSUBI" status --node "$BEP" --dir "$BDIR" --timeout 5000 >"$WORK/out" 2>"$WORK/err"; do
	n=$((n + 1))
	[ $n -lt 50 ] || { fail "a third connection to B was never refused"; break; }
	sleep 0.1
done
expect_in "$WORK/err" "node busy"
grep -q "refusing connections: 3 open, max-connections is 2" "$WORK/fed/$B.log" ||
	fail "B does not log that it refuses connections"
fed_stop $C
n=0
until "$MUSUBI" status --node "$BEP" --dir "$BDIR" --timeout 2000 >/dev/null 2>&1; do
	n=$((n + 1))
	[ $n -lt 20 ] || { fail "B is still busy after a peer left"; break; }
	sleep 0.2
done

# --- A query that needs more memory than the node gives queries ------------
# B with --query-memory 16M: a DISTINCT over about 60 MB stops with a message that
# names the bound; the node goes on, and the next query is answered.
fed_stop_all
FED_EXTRA="--query-memory 16M" fed_start $B
BIG="WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000)
SELECT count(DISTINCT hex(randomblob(100))) FROM c"
set +e
"$MUSUBI" query --node "$BEP" --dir "$BDIR" --local --format csv --timeout 60000 "$BIG" \
	>"$WORK/out" 2>"$WORK/err"
rc=$?
set -e
[ $rc -ne 0 ] || fail "a query over query-memory succeeded"
expect_in "$WORK/err" "query exceeded the node's query memory (query-memory 16777216 bytes)"
expect_status 0 "$MUSUBI" query --node "$BEP" --dir "$BDIR" --local --format csv \
	"SELECT count(*) AS n FROM evacuation_sites"
expect_in "$WORK/out" "348"
expect_status 2 "$MUSUBID" --dir "$BDIR" --listen tcp://127.0.0.1:1 --query-memory 1M
expect_in "$WORK/err" "query-memory"

fed_stop_all
finish
