#!/bin/sh
# Power loss and I/O errors under `musubi publish`, as SQLite's test harness
# does them: tests/integration/powerloss_shim.c (LD_PRELOAD) lets the first
# k syncs of the store's data.mdb through, then
#   eio-once     fails the next write or sync with EIO
#   eio-persist  fails every later write and sync with EIO
#   drop         lets writes reach the page cache but makes none durable,
#                and cuts the power a few syncs later (or at exit): all
#                writes since sync k are lost
#   torn         cuts the power at sync k + 1: each page written since
#                sync k is kept or lost at random
# for every k a publish makes. After each run: the store opens, `musubi
# verify` passes, the store is at exactly the LMDB transaction that was
# durable at sync k (so every batch acknowledged before the cut is there,
# and nothing after it), the log holds whole batches only, and a publish
# without faults then completes and leaves the state equal to the file.
# POWERLOSS_LONG=1: more rows and batches, several seeds and cut points.
. "$(dirname "$0")/lib.sh"
SHIM=${SHIM:?SHIM must name powerloss_shim.so}
# In a sanitizer build the shim comes before the ASan runtime in the list
# of preloaded libraries, which ASan refuses by default.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"

if [ "${POWERLOSS_LONG:-0}" = 1 ]; then
	ROWS=20000 BATCH=1000 SEEDS="1 2 3 4 5" MORES="0 1 2 3 5 8"
else
	ROWS=2000 BATCH=250 SEEDS="1" MORES="0 3"
fi
N="$WORK/node"
SCHEMA="$SRC/tests/bench/bench_schema.json"
"$MUSUBI" keygen --out "$WORK/keys" >/dev/null
"$MUSUBI" init --dir "$N" --member 011002 --key "$WORK/keys" >/dev/null
"$GENCSV" $ROWS 0 >"$WORK/v0.csv"
"$GENCSV" $ROWS 1 1 >"$WORK/v1.csv"   # every row differs from v0
"$MUSUBI" publish --dir "$N" --dataset sites --schema "$SCHEMA" --batch-rows $BATCH "$WORK/v0.csv" >/dev/null
# Every run starts from this store holding v0 and publishes v1 over it, so
# that verify does not slow down as runs pile up.
cp -a "$N" "$WORK/base"

# The newest LMDB transaction named by data.mdb's two meta pages (magic
# 0xBEEFC0DE at byte 16 of the page, txnid at byte 144: LMDB 0.9, 64-bit).
# od and sed rather than python: this runs hundreds of times.
txnid() {
	best=0
	for m in 0 1; do
		magic=$(od -An -t x4 -j $((m * 4096 + 16)) -N 4 "$N/store/data.mdb" | tr -d ' ')
		t=$(od -An -t u8 -j $((m * 4096 + 144)) -N 8 "$N/store/data.mdb" | tr -d ' ')
		[ "$magic" = beefc0de ] && [ "$t" -gt $best ] && best=$t
	done
	echo $best
}
# A number from one-line JSON in which KEY occurs once: jnum FILE KEY.
jnum() { sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p" "$1"; }
entries() {
	"$MUSUBI" status --dir "$N" --json >"$WORK/status.json"
	jnum "$WORK/status.json" entries
}

# How many syncs one publish makes (v1 over v0, every row changed).
PL_MODE=count PL_LOG="$WORK/count.log" LD_PRELOAD="$SHIM" "$MUSUBI" publish --dir "$N" --dataset sites \
	--schema "$SCHEMA" --batch-rows $BATCH "$WORK/v1.csv" >/dev/null
SYNCS=$(sed -n 's/^syncs //p' "$WORK/count.log" | tail -n 1)
[ "${SYNCS:-0}" -gt 4 ] || { fail "a publish of $ROWS rows made only ${SYNCS:-0} syncs: is the shim loaded?"; finish; }

runs=0 cuts=0 errors=0 corrupt=0
# one MODE K SEED MORE: a faulty publish, then every check; $problem says
# what did not hold ("" when all did).
one() {
	mode=$1 k=$2 seed=$3 more=$4 problem=""
	rm -rf "$N"
	cp -a "$WORK/base" "$N"
	case $mode in
	eio-once) pm=eio persist=0 ;;
	eio-persist) pm=eio persist=1 ;;
	*) pm=$mode persist=1 ;;
	esac
	rm -f "$WORK/pl.log"
	set +e
	PL_MODE=$pm PL_K=$k PL_PERSIST=$persist PL_SEED=$seed PL_MORE=$more PL_LOG="$WORK/pl.log" \
		LD_PRELOAD="$SHIM" "$MUSUBI" publish --dir "$N" --dataset sites --schema "$SCHEMA" \
		--batch-rows $BATCH "$WORK/v1.csv" >"$WORK/pub.out" 2>&1
	rc=$?
	set -e
	runs=$((runs + 1))
	if grep -q "^cut" "$WORK/pl.log"; then
		cuts=$((cuts + 1))
		# The power is gone: so is the lock file's shared memory.
		head -c "$(wc -c <"$N/store/lock.mdb")" /dev/urandom >"$WORK/lock"
		cat "$WORK/lock" >"$N/store/lock.mdb"
	elif [ $rc -ne 0 ]; then
		errors=$((errors + 1))
		grep -q "Input/output error" "$WORK/pub.out" ||
			problem="publish failed without naming the I/O error: $(tail -n 1 "$WORK/pub.out")"
	elif [ $mode = eio-persist ]; then
		problem="publish succeeded through EIO"
	fi
	if ! "$MUSUBI" verify --dir "$N" >"$WORK/verify.out" 2>&1; then
		problem="the store does not verify: $(head -n 3 "$WORK/verify.out" | tr '\n' ' ')"
		return
	fi
	durable=$(sed -n 's/^durable txnid \([0-9]*\).*/\1/p' "$WORK/pl.log")
	now=$(txnid)
	if [ -n "$durable" ] && [ $mode != eio-once ] && [ "$now" != "$durable" ]; then
		problem="the store came back at transaction $now, $durable was durable"
		return
	fi
	after=$(entries)
	# Whole batches only (the last one of a publish may be shorter).
	if [ $(((after - ROWS) % BATCH)) -ne 0 ] && [ "$after" -ne $((2 * ROWS)) ]; then
		problem="$((after - ROWS)) entries appended: not whole batches of $BATCH"
		return
	fi
	# A publish without faults completes, and the state equals the file.
	if ! "$MUSUBI" publish --dir "$N" --dataset sites --schema "$SCHEMA" --batch-rows $BATCH \
		"$WORK/v1.csv" >"$WORK/pub.out" 2>&1; then
		problem="the publish after it fails: $(tail -n 1 "$WORK/pub.out")"
		return
	fi
	"$MUSUBI" publish --dir "$N" --dataset sites --schema "$SCHEMA" --dry-run --json \
		"$WORK/v1.csv" >"$WORK/out" 2>&1
	[ "$(jnum "$WORK/out" unchanged)" = $ROWS ] || problem="after the publish the state is not the file"
}
run() {
	one "$@"
	if [ -n "$problem" ]; then
		corrupt=$((corrupt + 1))
		fail "$1 k=$2 seed=$3 more=$4: $problem"
		sed 's/^/  | /' "$WORK/pl.log" >&2
	fi
}

k=0
while [ $k -lt "$SYNCS" ]; do
	run eio-once $k 1 0
	run eio-persist $k 1 0
	for more in $MORES; do
		run drop $k 1 "$more"
	done
	for seed in $SEEDS; do
		run torn $k "$seed" 0
	done
	k=$((k + 1))
done
echo "$runs runs over $SYNCS syncs: $cuts power cuts, $errors publishes failed on EIO, $corrupt corrupt stores"

# The control: a disk that acknowledges syncs it never made, and writes
# pages back in any order, must be caught by the checks above.
caught=0
for k in 1 3 5 7; do
	one lie $k $k 0
	[ -n "$problem" ] && caught=$((caught + 1))
done
[ $caught -gt 0 ] || fail "a disk that ignores syncs went unnoticed in 4 runs: the checks are too weak"
echo "control: $caught of 4 runs on a disk that ignores syncs were caught"
finish
