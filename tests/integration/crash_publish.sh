#!/bin/sh
# Kill publishes with SIGKILL at random moments: every time the store must
# open, verify, and hold whole signed batches only. Then a final publish
# completes and matches the file. KILLS (default 20) sets the count.
. "$(dirname "$0")/lib.sh"

KILLS=${KILLS:-20}
N="$WORK/node"
"$MUSUBI" keygen --out "$WORK/keys" >/dev/null
"$MUSUBI" init --dir "$N" --member 011002 --key "$WORK/keys" >/dev/null
"$GENCSV" 60000 >"$WORK/v0.csv"
"$GENCSV" 60000 1 3 >"$WORK/v1.csv"   # every third row changed
SCHEMA="$SRC/tests/bench/bench_schema.json"
BATCH=5000

i=0
while [ "$i" -lt "$KILLS" ]; do
	i=$((i + 1))
	f="$WORK/v$((i % 2)).csv"
	"$MUSUBI" publish --dir "$N" --dataset sites --schema "$SCHEMA" --batch-rows $BATCH "$f" \
		>/dev/null 2>&1 &
	pid=$!
	# A random moment within the publish (about a second of work).
	sleep "0.$(od -An -N2 -tu2 /dev/urandom | tr -d ' ' | cut -c1-3)"
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	if ! "$MUSUBI" verify --dir "$N" --json >"$WORK/verify.json" 2>&1; then
		fail "kill $i: store does not verify"
		cat "$WORK/verify.json" >&2
		break
	fi
	# verify has also checked that every stored entry is covered by a
	# signed head: a batch is there whole, or not at all.
done

# Finishing the job leaves the state equal to the file.
expect_status 0 "$MUSUBI" publish --dir "$N" --dataset sites --schema "$SCHEMA" --batch-rows $BATCH "$WORK/v0.csv"
expect_status 0 "$MUSUBI" publish --dir "$N" --dataset sites --schema "$SCHEMA" --dry-run --json "$WORK/v0.csv"
[ "$(json_field "$WORK/out" 'd["unchanged"]')" = 60000 ] || fail "after recovery the state should equal the file"
expect_status 0 "$MUSUBI" verify --dir "$N"
echo "$KILLS kills survived"
finish
