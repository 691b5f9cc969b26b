#!/bin/sh
# Partitions and churn: three real musubid processes (A, B, C), each peering
# with the other two, every link through a fault proxy of our own
# (tests/integration/faultproxy.c). Each node dials its peers' request and
# announcement ports through tests/integration/redirect_shim.c (LD_PRELOAD),
# which sends them to the proxy of that one link: a fault on the link A-B
# leaves A-C and B-C alone. Scenarios, one after the other, each with
# publishing on both sides while the fault lasts:
#   cut        A cut off from B and C (connections reset, new ones refused);
#              B and C keep replicating with each other, A does not see them
#   blackhole  C's links hold every byte, no FIN nor RST (a silent
#              partition), then let them go
#   slow       every link delays each chunk by 300 ms
#   flap       every link cut and restored every 600 ms
#   damage     A-B flips a byte in 30 % of chunks, A-C resets each connection
#              after 30 kB, B-C drops 20 % of chunks: CURVE refuses the
#              damaged bytes and the nodes must store none of them
#   sigstop    B paused with SIGSTOP, then SIGCONT
#   restart    C stopped with SIGTERM for a while, then started again
#   netns      the nodes in network namespaces joined by veth pairs and a
#              bridge; A's port taken down (packets vanish), then up;
#              skipped with "SKIP netns: <reason>" where the kernel or the
#              container refuses
#   skew       B runs 2 hours ahead and C 2 hours behind (libfaketime): B
#              publishes ahead; C's publish over its own newer head is
#              refused with the reason, and C publishes a new dataset
# After each fault stops, every node must hold the same signed heads (size
# and root) as each publisher holds of its own dataset, within PT_BOUND
# seconds (30: generous for a loaded 2-core machine; a quiet one takes a
# few seconds, most of it the 10 s request timeout after lost requests);
# every row published during the fault is on every node; `musubi verify`
# passes on every store; every node is still running. The time each took
# is printed as a table at the end.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fed.sh"
FAULTPROXY=${FAULTPROXY:?FAULTPROXY must name the faultproxy program}
REDIRECT_SHIM=${REDIRECT_SHIM:?REDIRECT_SHIM must name redirect_shim.so}
# The shim (and libfaketime) come before the ASan runtime in the list of
# preloaded libraries in a sanitizer build, which ASan refuses by default.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
PT_BOUND=${PT_BOUND:-30}
SCHEMA="$SRC/tests/bench/bench_schema.json"
NS="mupt$$"
NETNS_MADE=""
trap 'pt_cleanup' EXIT

fed_init 011002 012025 012033
A=011002 B=012025 C=012033
ROWS_011002=0 ROWS_012025=0 ROWS_012033=0
PROXY_PIDS=""
: >"$WORK/figures"

# Links: one proxy per pair of nodes, on ports above the nodes' own.
# pt_link X Y: the link's number (0 A-B, 1 A-C, 2 B-C).
pt_link() {
	case "$1$2" in
	"$A$B" | "$B$A") echo 0 ;;
	"$A$C" | "$C$A") echo 1 ;;
	*) echo 2 ;;
	esac
}
pt_lport() { echo $((FED_BASE + 20 + 10 * $(pt_link "$1" "$2"))); }   # control; routes at +1..+4
pt_ctl() {
	l=$1 r=$2
	shift 2
	"$FAULTPROXY" --ctl "127.0.0.1:$(pt_lport "$l" "$r")" "$@" >"$WORK/ctl.out" ||
		fail "proxy $l-$r refused '$*': $(cat "$WORK/ctl.out")"
}
pt_ctl_all() {
	pt_ctl $A $B "$@"
	pt_ctl $A $C "$@"
	pt_ctl $B $C "$@"
}

# A link X-Y (X before Y): routes +1 (X's requests to Y), +2 (X's
# subscription to Y), +3 and +4 the same from Y to X.
pt_proxy_start() {
	x=$1 y=$2 p=$(pt_lport "$1" "$2")
	"$FAULTPROXY" --control "127.0.0.1:$p" --seed "$p" \
		"127.0.0.1:$((p + 1))=127.0.0.1:$(fed_port "$y")" \
		"127.0.0.1:$((p + 2))=127.0.0.1:$(($(fed_port "$y") + 1))" \
		"127.0.0.1:$((p + 3))=127.0.0.1:$(fed_port "$x")" \
		"127.0.0.1:$((p + 4))=127.0.0.1:$(($(fed_port "$x") + 1))" \
		2>>"$WORK/fed/proxy-$x-$y.log" &
	PROXY_PIDS="$PROXY_PIDS $!"
	n=0
	until "$FAULTPROXY" --ctl "127.0.0.1:$p" mode >/dev/null 2>&1; do
		n=$((n + 1))
		[ $n -lt 50 ] || { fail "proxy $x-$y did not start"; return 1; }
		sleep 0.1
	done
}

# MU_REDIRECT for node X: its connections to each peer's two ports go to
# that link's proxy (PT_NET=proxy), or to the peer's address in its
# namespace (PT_NET=netns).
pt_redirect() {
	r=""
	for y in $A $B $C; do
		[ "$y" = "$1" ] && continue
		py=$(fed_port "$y")
		if [ "${PT_NET:-proxy}" = netns ]; then
			r="$r 127.0.0.1:$py=$(pt_ip "$y"):$py"
			continue
		fi
		p=$(pt_lport "$1" "$y")
		# The lower-numbered end of a link uses routes +1, +2.
		if [ "$(fed_index "$1")" -lt "$(fed_index "$y")" ]; then o=1; else o=3; fi
		r="$r 127.0.0.1:$py=127.0.0.1:$((p + o)) 127.0.0.1:$((py + 1))=127.0.0.1:$((p + o + 1))"
	done
	echo "$r"
}

# pt_start ID: start ID's musubid, peering with the two others, under the
# clock of PT_CLOCK_<ID> if set (a faketime offset such as +2h).
pt_start() {
	id=$1
	host=127.0.0.1 inns=""
	if [ "${PT_NET:-proxy}" = netns ]; then
		host=$(pt_ip "$id")
		inns="ip netns exec $NS$(fed_index "$id")"
	fi
	peers=""
	for y in $A $B $C; do
		[ "$y" = "$id" ] || peers="$peers --peer $y"
	done
	ep="tcp://$host:$(fed_port "$id")"
	# shellcheck disable=SC2086,SC2046
	$inns env LD_PRELOAD="$REDIRECT_SHIM" MU_REDIRECT="$(pt_redirect "$id")" $(pt_clock "$id") \
		"$MUSUBID" --dir "$(fed_dir "$id")" --listen "$ep" \
		--sync-interval-ms "$FED_SYNC_MS" $peers >>"$WORK/fed/$id.log" 2>&1 &
	echo $! >"$WORK/fed/$id.pid"
	n=0
	# shellcheck disable=SC2086
	until $inns "$MUSUBI" status --node "$ep" --dir "$(fed_dir "$id")" --timeout 500 --json \
		>/dev/null 2>&1; do
		n=$((n + 1))
		[ $n -lt 60 ] || { fail "musubid $id did not start"; tail "$WORK/fed/$id.log" >&2; return 1; }
		sleep 0.1
	done
}

# Environment that runs a program with ID's clock: libfaketime preloaded
# straight into it (the faketime wrapper would fork, and its pid is not
# the node's).
LIBFAKETIME=""
for f in /usr/lib/*/faketime/libfaketimeMT.so.1 /usr/lib/faketime/libfaketimeMT.so.1 \
	/usr/local/lib/faketime/libfaketimeMT.so.1; do
	[ -f "$f" ] && { LIBFAKETIME=$f; break; }
done
pt_clock() {
	eval "off=\${PT_CLOCK_$1:-}"
	[ -n "$off" ] &&
		echo "LD_PRELOAD=$REDIRECT_SHIM:$LIBFAKETIME FAKETIME=$off FAKETIME_DONT_FAKE_MONOTONIC=1"
	return 0
}

# pt_publish ID ROWS: ID appends ROWS rows to its dataset "sites".
pt_publish() {
	eval "n=\$((ROWS_$1 + $2))"
	eval "ROWS_$1=$n"
	"$GENCSV" "$n" >"$WORK/pub-$1.csv"
	# shellcheck disable=SC2046
	env $(pt_clock "$1") "$MUSUBI" publish --dir "$(fed_dir "$1")" --dataset sites --schema "$SCHEMA" \
		--batch-rows 250 "$WORK/pub-$1.csv" >"$WORK/pub.out" 2>&1 ||
		{ fail "publish at $1 failed"; sed 's/^/  | /' "$WORK/pub.out" >&2; }
}

# Heads of every dataset on each node, against the heads each publisher
# holds of its own: prints "converged" or what differs.
pt_compare() {
	for id in $A $B $C; do
		"$MUSUBI" status --dir "$(fed_dir "$id")" --json >"$WORK/st-$id.json" 2>/dev/null || echo '{}' >"$WORK/st-$id.json"
	done
	python3 -c '
import json, sys
nodes = {}
for arg in sys.argv[1:]:
    m, path = arg.split("=", 1)
    d = json.load(open(path))
    nodes[m] = {x["dataset"]: (x["head_size"], x["root"]) for x in d.get("datasets", [])}
want = {ds: h for m, heads in nodes.items() for ds, h in heads.items() if ds.split("/")[0] == m}
bad = ["%s: %s" % (m, sorted(ds for ds in set(want) | set(h) if h.get(ds) != want.get(ds)))
       for m, h in nodes.items() if h != want]
print("; ".join(bad) if bad else "converged")' \
		"$A=$WORK/st-$A.json" "$B=$WORK/st-$B.json" "$C=$WORK/st-$C.json"
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# pt_converge SCENARIO: wait until every node holds every publisher's heads,
# record the time since the fault stopped (T0), then check rows, verify,
# and that every node still runs.
pt_converge() {
	deadline=$(($(now_ms) + PT_BOUND * 1000))
	while [ "$(pt_compare)" != converged ]; do
		if [ "$(now_ms)" -ge "$deadline" ]; then
			fail "$1: not converged within ${PT_BOUND}s: $(pt_compare)"
			echo "$1 | not converged in ${PT_BOUND}" >>"$WORK/figures"
			return 0
		fi
		sleep 0.2
	done
	t=$(($(now_ms) - T0))
	printf '%s | %d.%03d\n' "$1" $((t / 1000)) $((t % 1000)) >>"$WORK/figures"
	echo "$1: converged in ${t} ms"
	for id in $A $B $C; do
		for p in $A $B $C; do
			eval "want=\$ROWS_$p"
			got=$(fed_rows "$id" "$p/sites")
			[ "$got" = "$want" ] || fail "$1: $id holds $got rows of $p/sites, $p published $want"
		done
		expect_status 0 "$MUSUBI" verify --dir "$(fed_dir "$id")"
		kill -0 "$(cat "$WORK/fed/$id.pid")" 2>/dev/null || fail "$1: musubid $id is gone"
	done
}

pt_cleanup() {
	# A node left paused by a failed check would never take its SIGTERM.
	for id in $A $B $C; do
		[ ! -f "$WORK/fed/$id.pid" ] || kill -CONT "$(cat "$WORK/fed/$id.pid")" 2>/dev/null || true
	done
	fed_stop_all
	for p in $PROXY_PIDS; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	for n in $NETNS_MADE; do
		ip netns del "$n" 2>/dev/null || true
	done
	if [ -n "${KEEP:-}" ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}

# --- the federation, every link through its proxy ---------------------------
pt_proxy_start $A $B
pt_proxy_start $A $C
pt_proxy_start $B $C
for id in $A $B $C; do
	pt_start "$id"
done
pt_publish $A 300
pt_publish $B 300
pt_publish $C 300
T0=$(now_ms)
pt_converge baseline
# The links really go through the proxies.
for l in "$A $B" "$A $C" "$B $C"; do
	# shellcheck disable=SC2086
	pt_ctl $l stats
	[ "$(awk '{print $7}' "$WORK/ctl.out")" -gt 0 ] || fail "no bytes went through proxy $l"
done

# --- cut: A alone on one side, B and C on the other -------------------------
pt_ctl $A $B cut
pt_ctl $A $C cut
pt_publish $A 250
pt_publish $B 250
pt_publish $C 250
# The majority side still replicates within itself...
fed_wait_rows $C $B/sites "$ROWS_012025" "$PT_BOUND"
fed_wait_rows $B $C/sites "$ROWS_012033" "$PT_BOUND"
sleep 1
# ...and nothing crossed the cut.
[ "$(fed_rows $A $B/sites)" -lt "$ROWS_012025" ] || fail "cut: B's new rows crossed the cut to A"
[ "$(fed_rows $B $A/sites)" -lt "$ROWS_011002" ] || fail "cut: A's new rows crossed the cut to B"
pt_ctl $A $B stats
[ "$(awk '{print $17}' "$WORK/ctl.out")" -gt 0 ] || fail "cut: the proxy refused no connection"
pt_ctl $A $B pass
pt_ctl $A $C pass
T0=$(now_ms)
pt_converge "cut (A | B C)"

# --- blackhole: C's links swallow everything, silently -----------------------
pt_ctl $A $C blackhole
pt_ctl $B $C blackhole
pt_publish $A 250
pt_publish $C 250
sleep 4
[ "$(fed_rows $C $A/sites)" -lt "$ROWS_011002" ] || fail "blackhole: A's rows reached C"
pt_ctl $A $C pass
pt_ctl $B $C pass
T0=$(now_ms)
pt_converge "blackhole (C silent)"

# --- slow: every link 300 ms each way ----------------------------------------
pt_ctl_all delay 300
T0=$(now_ms)
pt_publish $B 1000
pt_publish $C 250
pt_converge "slow (300 ms, under the fault)"
pt_ctl_all pass

# --- flap: every link cut and restored every 600 ms --------------------------
pt_ctl_all flap 600
for i in 1 2 3; do
	pt_publish $A 200
	pt_publish $B 200
	pt_publish $C 200
	sleep 1.5
done
pt_ctl_all pass
T0=$(now_ms)
pt_converge "flap (600 ms)"

# --- damage: corrupted, truncated and lossy streams ---------------------------
pt_ctl $A $B corrupt 30
pt_ctl $A $C truncate 30000
pt_ctl $B $C drop 20
pt_publish $A 2000
pt_publish $B 500
sleep 6
pt_ctl $A $B stats
[ "$(awk '{print $11}' "$WORK/ctl.out")" -gt 0 ] || fail "damage: no chunk was corrupted"
pt_ctl $A $C stats
[ "$(awk '{print $13}' "$WORK/ctl.out")" -gt 0 ] || fail "damage: no connection was truncated"
pt_ctl $B $C stats
[ "$(awk '{print $9}' "$WORK/ctl.out")" -gt 0 ] || fail "damage: no chunk was dropped"
# Whatever arrived damaged was refused: every store still verifies.
for id in $A $B $C; do
	expect_status 0 "$MUSUBI" verify --dir "$(fed_dir "$id")"
	kill -0 "$(cat "$WORK/fed/$id.pid")" 2>/dev/null || fail "damage: musubid $id is gone"
done
pt_ctl_all pass
T0=$(now_ms)
pt_converge "damage (corrupt, truncate, drop)"

# --- sigstop: B frozen while A and C publish ----------------------------------
kill -STOP "$(cat "$WORK/fed/$B.pid")"
pt_publish $A 250
pt_publish $C 250
sleep 5
kill -CONT "$(cat "$WORK/fed/$B.pid")"
T0=$(now_ms)
pt_converge "sigstop (B paused 5 s)"

# --- restart: C stopped for a while -------------------------------------------
fed_stop $C
pt_publish $A 250
pt_publish $B 250
pt_publish $C 250   # C's own store takes a publish while its node is down
sleep 4
T0=$(now_ms)
pt_start $C
pt_converge "restart (C down 4 s)"

# --- netns: real network namespaces, a link taken down ------------------------
# Addresses 10.N.0.{1,2,3}/24 on a bridge in a namespace of its own; each
# node in its namespace behind a veth pair.
pt_ip() { echo "10.$((100 + $$ % 100)).0.$(($(fed_index "$1") + 1))"; }
pt_why() { echo "$*" >"$WORK/ns.why"; }
# Runs in this shell (not $(...)), so that NETNS_MADE reaches the cleanup.
netns_setup() {
	[ "${PT_NETNS:-1}" != 0 ] || { pt_why "disabled by PT_NETNS=0"; return 1; }
	command -v ip >/dev/null 2>&1 || { pt_why "iproute2 is not installed"; return 1; }
	[ "$(id -u)" -eq 0 ] || { pt_why "not root (needs CAP_NET_ADMIN)"; return 1; }
	sw="${NS}sw"
	ip netns add "$sw" 2>"$WORK/ns.err" || { pt_why "ip netns add: $(cat "$WORK/ns.err")"; return 1; }
	NETNS_MADE="$sw"
	ip -n "$sw" link add br0 type bridge 2>"$WORK/ns.err" ||
		{ pt_why "no bridge: $(cat "$WORK/ns.err")"; return 1; }
	ip -n "$sw" link set br0 up || { pt_why "the bridge does not come up"; return 1; }
	for id in $A $B $C; do
		i=$(fed_index "$id")
		ip netns add "$NS$i" 2>"$WORK/ns.err" || { pt_why "ip netns add: $(cat "$WORK/ns.err")"; return 1; }
		NETNS_MADE="$NETNS_MADE $NS$i"
		ip -n "$NS$i" link add eth0 type veth peer name "p$i" netns "$sw" 2>"$WORK/ns.err" ||
			{ pt_why "no veth: $(cat "$WORK/ns.err")"; return 1; }
		ip -n "$NS$i" addr add "$(pt_ip "$id")/24" dev eth0 &&
			ip -n "$NS$i" link set eth0 up && ip -n "$NS$i" link set lo up &&
			ip -n "$sw" link set "p$i" master br0 && ip -n "$sw" link set "p$i" up ||
			{ pt_why "configuring veth p$i failed"; return 1; }
	done
	# The bridge forwards at once (no STP delay) and the addresses answer.
	if command -v ping >/dev/null 2>&1; then
		ip netns exec "${NS}0" ping -c 1 -W 2 "$(pt_ip $B)" >/dev/null 2>&1 ||
			{ pt_why "the namespaces cannot reach one another"; return 1; }
	fi
}
fed_stop_all
: >"$WORK/ns.why"
if netns_setup; then
	PT_NET=netns
	for id in $A $B $C; do
		pt_start "$id"
	done
	T0=$(now_ms)
	pt_converge "netns (settled)"
	ip -n "${NS}sw" link set p0 down
	pt_publish $A 250
	pt_publish $B 250
	pt_publish $C 250
	fed_wait_rows $C $B/sites "$ROWS_012025" "$PT_BOUND"
	sleep 2
	[ "$(fed_rows $B $A/sites)" -lt "$ROWS_011002" ] || fail "netns: A's rows crossed the cut"
	[ "$(fed_rows $A $C/sites)" -lt "$ROWS_012033" ] || fail "netns: C's rows crossed the cut"
	ip -n "${NS}sw" link set p0 up
	T0=$(now_ms)
	pt_converge "netns (A's link down, then up)"
	fed_stop_all
	for ns in $NETNS_MADE; do
		ip netns del "$ns"
	done
	NETNS_MADE=""
else
	echo "SKIP netns: $(cat "$WORK/ns.why")"
fi

# --- skew: B two hours ahead, C two hours behind ------------------------------
# Last, because B's heads are then dated two hours ahead: B cannot extend
# its dataset again until its clock gets there (see C below).
if [ -n "$LIBFAKETIME" ] &&
	[ "$(env $(PT_CLOCK_x=+2h pt_clock x) date +%s)" -gt $(($(date +%s) + 7000)) ]; then
	fed_stop_all
	PT_NET=proxy
	PT_CLOCK_012025=+2h PT_CLOCK_012033=-2h
	for id in $A $B $C; do
		pt_start "$id"
	done
	pt_publish $A 250
	pt_publish $B 250
	# C's clock went back behind its own newest head: the publish is refused
	# with the reason, and nothing appended (a head dated before the one it
	# extends would be refused by every replica, stalling the dataset).
	# shellcheck disable=SC2046
	expect_status 1 env $(pt_clock $C) "$MUSUBI" publish --dir "$(fed_dir $C)" --dataset sites \
		--schema "$SCHEMA" "$WORK/pub-$A.csv"
	expect_in "$WORK/err" "a head may not be dated before the one it extends"
	# A new dataset has no head before it: C publishes it with its slow clock.
	"$GENCSV" 300 >"$WORK/late.csv"
	# shellcheck disable=SC2046
	expect_status 0 env $(pt_clock $C) "$MUSUBI" publish --dir "$(fed_dir $C)" --dataset late \
		--schema "$SCHEMA" "$WORK/late.csv"
	T0=$(now_ms)
	pt_converge "skew (B +2h, C -2h)"
	[ "$(fed_rows $A $C/late)" = 300 ] || fail "skew: A lacks C's dataset published 2 h behind"
else
	echo "SKIP skew: libfaketime is not installed or does not work here (deploy/install-deps installs faketime)"
fi

# Nodes stopped cleanly: a sanitizer build would have said something now.
fed_stop_all
for id in $A $B $C; do
	if grep -E "runtime error|AddressSanitizer|LeakSanitizer" "$WORK/fed/$id.log" >/dev/null; then
		fail "musubid $id: sanitizer report in its log"
		grep -E -A5 "runtime error|AddressSanitizer|LeakSanitizer" "$WORK/fed/$id.log" | head -20 >&2
	fi
done

echo
echo "scenario | seconds to converge after the fault (bound ${PT_BOUND} s)"
echo "--- | ---"
cat "$WORK/figures"
finish
