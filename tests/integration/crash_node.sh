#!/bin/sh
# Crash consistency of replication (issue 8). Node A publishes in a loop
# (1,000 changed rows a turn in batches of 25, now and then the publish
# killed), B replicates from A and C from B. Each turn, while A publishes,
# the node killed last turn restarts and catches up, and 0-300 ms later a
# node is killed with SIGKILL: B 8 times in 10, A's musubid or C otherwise.
# After every kill, on the killed node's directory:
#   - the store opens and `musubi verify` passes;
#   - it holds every batch it acknowledged before the kill: its head is at
#     least the last size it logged as stored ("stored entries X..Y", which
#     sync.c writes only after the LMDB commit returned; for A, the size a
#     finished publish reported);
#   - no batch is half there: the log ends exactly at its signed head;
#   - that head is one A signed: (size, root) is among A's heads (checked
#     with `musubi audit` across the three nodes at the end of the round).
# Every EPOCH kills (a round: half the kills, at most 50) the faults stop and
# every node must reach A's head (same size and root) within CONVERGE_S
# seconds (a peer left waiting on a request to a killed node gives up after
# the 10 s request timeout, so expect up to about 10 s); then a new dataset
# starts, so that the checks stay cheap however many kills are made.
#
# KILLS (default 30, about 20 s) sets the count; CRASH_LONG=1 makes it 1000
# (about 15 minutes on 2 cores). CRASH_DEBUG=1 prints every kill;
# CRASH_KEEP_LOGS=DIR keeps the nodes' logs there.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fed.sh"

if [ "${CRASH_LONG:-0}" = 1 ]; then
	KILLS=${KILLS:-1000}
fi
KILLS=${KILLS:-30}
EPOCH=${EPOCH:-$((KILLS < 100 ? (KILLS + 1) / 2 : 50))}
CONVERGE_S=${CONVERGE_S:-120}
ROWS=2000 BATCH=25   # a publish appends 1000 entries (2000 the first) in batches of 25
FED_SYNC_MS=${FED_SYNC_MS:-200}
SCHEMA="$SRC/tests/bench/bench_schema.json"
PUB=""

cleanup() {
	[ -n "$PUB" ] && { kill -9 "$PUB" 2>/dev/null || true; wait "$PUB" 2>/dev/null || true; }
	fed_stop_all
	if [ -n "${CRASH_KEEP_LOGS:-}" ]; then   # a directory to keep the nodes' logs in
		cp "$WORK"/fed/*.log "$CRASH_KEEP_LOGS"/ || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT

fed_init 011002 012025 012033
A=011002 B=012025 C=012033
"$GENCSV" $ROWS 0 >"$WORK/v0.csv"
"$GENCSV" $ROWS 1 2 >"$WORK/v1.csv"   # every second row changed
start() {
	case $1 in
	"$A") fed_start $A $B ;;
	"$B") fed_start $B $A $C ;;
	"$C") fed_start $C $B ;;
	esac
}
start $A
start $B
start $C
# spawn ID: start ID's musubid and return at once (to kill it at any moment
# from its start on, not only once it answers).
spawn() {
	case $1 in
	"$A") peers="--peer $B" ;;
	"$B") peers="--peer $A --peer $C" ;;
	*) peers="--peer $B" ;;
	esac
	# shellcheck disable=SC2086
	"$MUSUBID" --dir "$(fed_dir "$1")" --listen "tcp://127.0.0.1:$(fed_port "$1")" \
		--sync-interval-ms "$FED_SYNC_MS" $peers >>"$WORK/fed/$1.log" 2>&1 &
	echo $! >"$WORK/fed/$1.pid"
}

rnd() { echo $(($(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % $1)); }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# dshead ID: "head_size entries root" of $DS in ID's store ("0 0 -" if
# absent); fails when the store does not open. sed, not python: it runs
# between a random moment and the kill, and python takes 0.1 s to start.
dshead() {
	js=$("$MUSUBI" status --dir "$(fed_dir "$1")" --json 2>"$WORK/status.err") || return 1
	r=$(echo "$js" | sed -n 's|.*{"dataset":"'"$DS"'","schema":"[^"]*","rows":[0-9]*,"entries":\([0-9]*\),"head_size":\([0-9]*\),"head_time":"[^"]*","root":"\([0-9a-f]*\)"}.*|\2 \1 \3|p')
	echo "${r:-0 0 -}"
}

# The last size ID acknowledged as stored for $DS, from its log.
logged_ack() {
	y=$(grep -ao "$DS: stored entries [0-9]*\.\.[0-9]*" "$WORK/fed/$1.log" | sed 's/.*\.\.//' |
		sort -n | tail -n 1)
	[ -n "$y" ] && echo $((y + 1)) || echo 0
}

kills=0 killsA=0 killsB=0 killsC=0 pubkills=0 behind=0 unlogged=0
lost=0 corrupt=0 half=0 conv_max=0 rounds=0 ackA=0
T0=$(date +%s)

# check ID ACK: the checks on a killed node's store (ID is not running).
check() {
	id=$1 ack=$2 d=$(fed_dir "$1")
	if ! hd=$(dshead "$id"); then
		corrupt=$((corrupt + 1))
		fail "kill $kills: $id's store does not open: $(head -n 3 "$WORK/status.err" | tr '\n' ' ')"
		return
	fi
	# shellcheck disable=SC2086
	set -- $hd
	size=$1 entries=$2 root=$3
	only="--dataset $DS"
	if [ "$size" = 0 ]; then   # not there yet: the dataset of the round before
		only=${PREV:+--dataset $PREV}
	fi
	# shellcheck disable=SC2086
	if ! "$MUSUBI" verify --dir "$d" $only >"$WORK/verify.out" 2>&1; then
		corrupt=$((corrupt + 1))
		fail "kill $kills: $id's store does not verify"
		sed 's/^/  | /' "$WORK/verify.out" >&2
	fi
	if [ "$size" -lt "$ack" ]; then
		lost=$((lost + 1))
		fail "kill $kills: $id acknowledged $DS up to $ack, holds $size after the kill"
	fi
	if [ "$size" -gt "$ack" ] && [ "$id" != $A ]; then
		unlogged=$((unlogged + 1))
	fi
	if [ "$entries" != "$size" ]; then
		half=$((half + 1))
		fail "kill $kills: $id holds $entries entries of $DS under a head of size $size"
	fi
	if [ "$size" != 0 ]; then
		echo "$id $size $root" >>"$WORK/seen"
	fi
}

# End of a round: no more faults; every node reaches A's head, and the
# three nodes show one history holding every head seen after a kill.
converge() {
	# shellcheck disable=SC2046
	set -- $(dshead $A)
	want="$1 $3"
	t=$(now_ms)
	for id in $B $C; do
		until [ "$(dshead "$id" | cut -d' ' -f1,3)" = "$want" ]; do
			if [ $(($(now_ms) - t)) -gt $((CONVERGE_S * 1000)) ]; then
				fail "$id did not reach A's head of $DS ($want) in ${CONVERGE_S}s: has $(dshead "$id")"
				return
			fi
			sleep 0.1
		done
	done
	ms=$(($(now_ms) - t))
	if [ $ms -gt $conv_max ]; then
		conv_max=$ms
	fi
	rounds=$((rounds + 1))
	if ! "$MUSUBI" audit --dir "$(fed_dir $A)" --dataset "$DS" --json --timeout 30000 \
		--node "tcp://127.0.0.1:$(fed_port $A)" --node "tcp://127.0.0.1:$(fed_port $B)" \
		--node "tcp://127.0.0.1:$(fed_port $C)" >"$WORK/audit.json" 2>"$WORK/audit.err"; then
		fail "audit of $DS across A, B, C fails"
		sed 's/^/  | /' "$WORK/audit.err" >&2
		python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["problems"][:5])' \
			"$WORK/audit.json" >&2 || true
		return
	fi
	[ -f "$WORK/seen" ] || return 0
	missing=$(python3 -c '
import json, sys
heads = {(h["size"], h["root"]) for h in json.load(open(sys.argv[1]))["heads"]}
for line in open(sys.argv[2]):
    i, s, r = line.split()
    if (int(s), r) not in heads:
        print(i, s, r)' "$WORK/audit.json" "$WORK/seen")
	if [ -n "$missing" ]; then
		fail "heads kept after a kill that A never signed: $missing"
		corrupt=$((corrupt + 1))
	fi
	rm -f "$WORK/seen"
}

# Each turn: A starts a publish; the node killed last turn restarts while
# it runs, so that it comes back to a backlog and catches up; at a random
# moment from that restart on a node is killed (now and then the publish
# too).
e=-1 victim=""
while [ $kills -lt "$KILLS" ]; do
	if [ $((kills / EPOCH)) != $e ]; then
		if [ $e -ge 0 ]; then
			start $victim
			victim=""
			converge
		fi
		e=$((kills / EPOCH))
		PREV=${DS:-} DS=$A/sites$e NAME=sites$e ackA=0
	fi
	"$MUSUBI" publish --dir "$(fed_dir $A)" --dataset $NAME --schema "$SCHEMA" --batch-rows $BATCH \
		"$WORK/v$((kills % 2)).csv" >"$WORK/pub.out" 2>&1 &
	PUB=$!
	[ -z "$victim" ] || spawn $victim
	sleep "0.$(printf %03d "$(rnd 300)")"
	case $(rnd 10) in
	0) victim=$A killsA=$((killsA + 1)) ;;
	1) victim=$C killsC=$((killsC + 1)) ;;
	*) victim=$B killsB=$((killsB + 1)) ;;
	esac
	sizeA=$(dshead $A | cut -d' ' -f1)
	if ! kill -0 "$(cat "$WORK/fed/$victim.pid")" 2>/dev/null; then
		fail "kill $((kills + 1)): $victim's musubid had stopped on its own"
		tail -n 5 "$WORK/fed/$victim.log" >&2
	fi
	fed_stop $victim KILL
	kills=$((kills + 1))
	[ "$(rnd 5)" != 0 ] || kill -9 $PUB 2>/dev/null || true
	rc=0
	wait $PUB 2>/dev/null || rc=$?
	PUB=""
	if [ $rc = 0 ]; then
		y=$(sed -n 's/^log [0-9]* -> \([0-9]*\) entries.*/\1/p' "$WORK/pub.out")
		[ -z "$y" ] || ackA=$y
	elif [ $rc = 137 ]; then
		pubkills=$((pubkills + 1))
	else
		fail "kill $kills: a publish failed on its own ($rc): $(tail -n 1 "$WORK/pub.out")"
	fi
	if [ $victim = $A ]; then
		ack=$ackA
	else
		ack=$(logged_ack $victim)
		if [ "$sizeA" -gt "$(dshead $victim | cut -d' ' -f1)" ]; then
			behind=$((behind + 1))
		fi
	fi
	[ -z "${CRASH_DEBUG:-}" ] || echo "kill $kills: $victim A=$sizeA ack=$ack now=$(dshead $victim)"
	check $victim "$ack"
	if [ $rc = 137 ] && [ $victim != $A ]; then
		# A's store after a killed publish: whole batches, verified.
		check $A "$ackA"
	fi
	[ $failures -lt 5 ] || break
done
start $victim

# The last round: one clean publish, then everyone catches up.
"$MUSUBI" publish --dir "$(fed_dir $A)" --dataset $NAME --schema "$SCHEMA" --batch-rows $BATCH \
	"$WORK/v0.csv" >/dev/null
converge
for id in $A $B $C; do
	"$MUSUBI" verify --dir "$(fed_dir "$id")" >"$WORK/verify.out" 2>&1 ||
		{ fail "$id does not verify at the end"; sed 's/^/  | /' "$WORK/verify.out" >&2; }
done
echo "$kills kills ($killsB of B, $killsA of A's musubid, $killsC of C; $behind while the node" \
	"was behind A, $unlogged with a commit on disk not yet logged), $pubkills publishes killed"
echo "lost acknowledged batches: $lost; corrupt stores: $corrupt; half batches: $half"
echo "convergence after the faults stop: at most $((conv_max / 1000)).$(printf %03d $((conv_max % 1000)))s" \
	"over $rounds rounds (bound ${CONVERGE_S}s); $(($(date +%s) - T0))s in all"
finish
