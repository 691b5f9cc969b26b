#!/bin/sh
# The README's first command, run as a new user runs it: deploy/quickstart
# on fresh data directories builds (here: the build under test), starts the
# five-member federation, converges, answers three questions with their
# manifests, audits a dataset and verifies every store. Run twice (it must
# be idempotent), then stopped with --stop.
. "$(dirname "$0")/lib.sh"
QS_DIR="$WORK/qs"
# Ports below the ephemeral range, apart from fed.sh's (10000 + ...).
QS_PORT=$((30000 + ($$ % 100) * 20))
BUILD_DIR=$(dirname "$(dirname "$MUSUBI")")
trap 'QUICKSTART_DIR="$QS_DIR" "$SRC/deploy/quickstart" --stop >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT

run_quickstart() {   # run_quickstart N: output in $WORK/qs.N
	set +e
	QUICKSTART_DIR="$QS_DIR" QUICKSTART_PORT=$QS_PORT QUICKSTART_BUILD="$BUILD_DIR" \
		"$SRC/deploy/quickstart" >"$WORK/qs.$1" 2>&1
	rc=$?
	set -e
	[ "$rc" -eq 0 ] || { fail "quickstart run $1 exited $rc"; tail -n 30 "$WORK/qs.$1" >&2; }
}

check_output() {   # check_output N
	out="$WORK/qs.$1"
	expect_in "$out" "converged in"
	expect_in "$out" "every node holds all 11 datasets"
	# The first question: one row per municipality with evacuation sites,
	# counts from the real files (GSI layout rows).
	for m in 011002 012025 012041; do
		grep -q "^$m " "$out" || fail "run $1: no answer row for $m"
	done
	[ "$(grep -c "complete: every publisher answered" "$out")" -eq 3 ] ||
		fail "run $1: not three complete manifests"
	grep -q "PARTIAL" "$out" && fail "run $1: a partial result"
	expect_in "$out" "answered by"
	# the audit and the verification of all five stores
	grep -q "012025/evacuation_sites" "$out" || fail "run $1: no audit output"
	[ "$(grep -c "verified" "$out")" -ge 5 ] || fail "run $1: not every store verified"
	expect_in "$out" "stop the nodes:   deploy/quickstart --stop"
}

run_quickstart 1
check_output 1
# The first question's figures against the data: one row per site in each
# municipality's GSI file.
for m in 011002 012025 012041; do
	rows=$(python3 -c 'import csv, sys; print(sum(1 for _ in csv.reader(open(sys.argv[1], encoding="utf-8-sig"))) - 1)' \
		"$DATA/evacuation_sites/${m}_"*_gsi.csv)
	grep -Eq "^$m +$rows +[0-9]+$" "$WORK/qs.1" ||
		fail "the first question does not give $rows sites for $m (the rows of its file)"
done

run_quickstart 2   # idempotent: starts again from fresh data
check_output 2

QUICKSTART_DIR="$QS_DIR" "$SRC/deploy/quickstart" --stop >"$WORK/stop" 2>&1 || fail "--stop failed"
expect_in "$WORK/stop" "stopped the quickstart nodes"
sleep 1
for f in "$QS_DIR"/run/*.log; do
	id=$(basename "$f" .log)
	pgrep -f "musubid --dir $QS_DIR/$id " >/dev/null && fail "node $id still runs after --stop"
done
finish
