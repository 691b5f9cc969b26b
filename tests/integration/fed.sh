# fed.sh - build a small federation of real musubid processes on 127.0.0.1
# for tests. Source after lib.sh. Needs MUSUBI, MUSUBID in the environment.
#
#   fed_init ID...            anchor (one key, threshold 1) + trust list with these members
#   fed_start ID PEER...      start ID's musubid, syncing with the given member ids
#   fed_stop ID [SIGNAL]      stop it (TERM by default; KILL to crash it)
#   fed_wait_rows ID DATASET ROWS [SECONDS]   wait until ID holds ROWS rows of DATASET
#   fed_port ID               ID's request port

# Ports: a block of 200 chosen from the pid, so parallel runs rarely meet,
# below the kernel's ephemeral range (32768 and up) where outgoing
# connections take their local ports.
FED_BASE=${FED_BASE:-$((10000 + ($$ % 110) * 200))}
FED_IDS=""
FED_SYNC_MS=${FED_SYNC_MS:-400}

fed_index() {
	i=0
	for x in $FED_IDS; do
		[ "$x" = "$1" ] && { echo "$i"; return; }
		i=$((i + 1))
	done
	echo "fed: unknown member $1" >&2
	return 1
}

fed_port() { echo $((FED_BASE + 2 * $(fed_index "$1"))); }
fed_dir() { echo "$WORK/fed/$1"; }

fed_init() {
	FED_IDS="$*"
	mkdir -p "$WORK/fed/keys"
	"$MUSUBI" keygen --out "$WORK/fed/keys/anchor" >/dev/null
	"$MUSUBI" trust init --out "$WORK/fed/trust.tl" --anchor "$WORK/fed/keys/anchor/signing.pub.pem" \
		--threshold 1 --federation test >/dev/null
	for id in "$@"; do
		"$MUSUBI" keygen --out "$WORK/fed/keys/$id" >/dev/null
		"$MUSUBI" trust add "$WORK/fed/trust.tl" --member "$id" --name "member $id" \
			--key "$WORK/fed/keys/$id" --endpoint "tcp://127.0.0.1:$(fed_port "$id")" \
			--roles publisher,relay >/dev/null
	done
	"$MUSUBI" trust sign "$WORK/fed/trust.tl" --key "$WORK/fed/keys/anchor" >/dev/null
	for id in "$@"; do
		"$MUSUBI" init --dir "$(fed_dir "$id")" --member "$id" --key "$WORK/fed/keys/$id" \
			--trust "$WORK/fed/trust.tl" >/dev/null
	done
}

fed_start() {
	id=$1
	shift
	peers=""
	for p in "$@"; do
		peers="$peers --peer $p"
	done
	# shellcheck disable=SC2086
	"$MUSUBID" --dir "$(fed_dir "$id")" --listen "tcp://127.0.0.1:$(fed_port "$id")" \
		--sync-interval-ms "$FED_SYNC_MS" $peers ${FED_EXTRA:-} \
		>>"$WORK/fed/$id.log" 2>&1 &
	echo $! >"$WORK/fed/$id.pid"
	# Ready when it answers a status request.
	n=0
	until "$MUSUBI" status --node "tcp://127.0.0.1:$(fed_port "$id")" --dir "$(fed_dir "$id")" \
		--timeout 500 --json >/dev/null 2>&1; do
		n=$((n + 1))
		[ $n -lt 40 ] || { fail "musubid $id did not start"; cat "$WORK/fed/$id.log" >&2; return 1; }
		sleep 0.1
	done
}

fed_stop() {
	[ -f "$WORK/fed/$1.pid" ] || return 0
	kill -"${2:-TERM}" "$(cat "$WORK/fed/$1.pid")" 2>/dev/null || true
	wait "$(cat "$WORK/fed/$1.pid")" 2>/dev/null || true
	rm -f "$WORK/fed/$1.pid"
}

fed_stop_all() {
	for id in $FED_IDS; do
		fed_stop "$id"
	done
}

# Rows of DATASET on node ID, from its own store (0 if absent).
fed_rows() {
	"$MUSUBI" status --dir "$(fed_dir "$1")" --json 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(next((x["rows"] for x in d["datasets"] if x["dataset"] == sys.argv[1]), 0))' "$2"
}

fed_wait_rows() {
	deadline=$(($(date +%s) + ${4:-30}))
	while [ "$(fed_rows "$1" "$2")" != "$3" ]; do
		if [ "$(date +%s)" -ge "$deadline" ]; then
			fail "$1 does not hold $3 rows of $2 (has $(fed_rows "$1" "$2"))"
			return 1
		fi
		sleep 0.1
	done
}
