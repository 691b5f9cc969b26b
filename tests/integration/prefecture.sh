#!/bin/sh
# The prefecture-sized run at a CI-sized N (PREFECTURE_N, default 24): every
# node ends with every dataset, and one query answers for all N publishers.
# deploy/prefecture at its default N=179 is the full-size run, by hand.
. "$(dirname "$0")/lib.sh"
N=${PREFECTURE_N:-24}
PREFECTURE_DIR="$WORK/pref" PREFECTURE_PORT=$((5000 + ($$ % 40) * 100)) CONVERGE_TIMEOUT=240 \
	"$SRC/deploy/prefecture" "$N" >"$WORK/out" 2>"$WORK/err" || {
	fail "deploy/prefecture $N failed"
	cat "$WORK/out" "$WORK/err" >&2
}
cat "$WORK/out"
expect_in "$WORK/out" "prefecture run: $N nodes"
expect_in "$WORK/out" "convergence after the last publish:"
# The query counted every publisher and every row (50 each).
expect_in "$WORK/out" "-> $N,$((N * 50)),"
finish
