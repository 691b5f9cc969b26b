#!/bin/sh
# musubid's Prometheus metrics and health check, with two real nodes on
# 127.0.0.1: counters move as data is published, replicated and queried;
# the text parses as the Prometheus text format; /healthz, 404 and 405;
# a bad or busy metrics address stops musubid with a clear error; and
# musubi status colours only when asked or on a terminal.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fed.sh"
trap 'fed_stop_all; rm -rf "$WORK"' EXIT

# A TCP port nobody listens on now.
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# http METHOD URL: prints the status code; the body goes to $WORK/body and
# the Content-Type to $WORK/ctype.
http() {
	python3 - "$1" "$2" "$WORK" <<'PY'
import sys, urllib.request, urllib.error
method, url, work = sys.argv[1:4]
req = urllib.request.Request(url, method=method, data=b"x=1" if method == "POST" else None)
try:
    r = urllib.request.urlopen(req, timeout=10)
    code, body, ctype = r.status, r.read(), r.headers.get("Content-Type", "")
except urllib.error.HTTPError as e:
    code, body, ctype = e.code, e.read(), e.headers.get("Content-Type", "")
open(work + "/body", "wb").write(body)
open(work + "/ctype", "w").write(ctype)
print(code)
PY
}

# metric PORT 'NAME{LABELS}': the sample's value, or "absent".
metric() {
	http GET "http://127.0.0.1:$1/metrics" >/dev/null
	python3 - "$WORK/body" "$2" <<'PY'
import sys
want = sys.argv[2]
for line in open(sys.argv[1], encoding="utf-8"):
    if not line.startswith("#"):
        name, _, value = line.rstrip("\n").rpartition(" ")
        if name == want:
            print(value)
            sys.exit(0)
print("absent")
PY
}

# wait_metric PORT SAMPLE PYTHON-TEST [SECONDS]: until the value v passes the test.
wait_metric() {
	deadline=$(($(date +%s) + ${4:-15}))
	while :; do
		v=$(metric "$1" "$2")
		[ "$v" != absent ] && python3 -c "import sys; v = float(sys.argv[1]); sys.exit(0 if ($3) else 1)" "$v" &&
			return 0
		if [ "$(date +%s)" -ge "$deadline" ]; then
			fail "$2 on :$1 is $v, wanted $3"
			return 1
		fi
		sleep 0.2
	done
}

fed_init 011002 012025
A=011002 B=012025
MA=$(free_port)
MB=$(free_port)
while [ "$MB" = "$MA" ]; do MB=$(free_port); done

# A takes the address from its config file, B from the flag.
printf 'metrics = 127.0.0.1:%s\n' "$MA" >"$WORK/a.conf"
FED_EXTRA="--config $WORK/a.conf"
fed_start $A $B
FED_EXTRA="--metrics 127.0.0.1:$MB"
fed_start $B $A
FED_EXTRA=""
expect_in "$WORK/fed/$A.log" "metrics on http://127.0.0.1:$MA/metrics"

# Nothing published yet: nothing stored, nothing received.
[ "$(metric "$MA" musubi_datasets)" = 0 ] || fail "A should hold no datasets yet"
[ "$(metric "$MB" musubi_entries_received_total)" = 0 ] || fail "B has received nothing yet"

"$MUSUBI" publish --dir "$(fed_dir $A)" --dataset evacuation_sites --schema gsi_evacuation_site@1 \
	"$DATA/evacuation_sites/011002_sapporo_gsi.csv" >/dev/null
fed_wait_rows $B 011002/evacuation_sites 348 30
DS='{dataset="011002/evacuation_sites"}'
wait_metric "$MA" "musubi_entries_stored_total$DS" 'v == 348'
wait_metric "$MB" "musubi_entries_stored_total$DS" 'v == 348'
wait_metric "$MB" musubi_entries_received_total 'v == 348'
wait_metric "$MA" musubi_entries_received_total 'v == 0'
wait_metric "$MA" musubi_entries_served_total 'v >= 348'
wait_metric "$MB" "musubi_dataset_rows$DS" 'v == 348'
wait_metric "$MB" musubi_heads_committed_total 'v >= 1'
wait_metric "$MB" musubi_peers 'v == 1'
wait_metric "$MB" musubi_peers_connected 'v >= 1'
wait_metric "$MB" "musubi_peer_up{peer=\"$A\"}" 'v == 1'
wait_metric "$MB" "musubi_peer_lag_entries{peer=\"$A\",dataset=\"011002/evacuation_sites\"}" 'v == 0'
wait_metric "$MA" musubi_lmdb_map_used_bytes 'v > 0'
wait_metric "$MA" musubi_lmdb_map_size_bytes 'v >= 1 << 20'
wait_metric "$MB" musubi_evidence_total 'v == 0'
for r in signature trust root decode protocol; do
	wait_metric "$MB" "musubi_verify_failures_total{reason=\"$r\"}" 'v == 0'
done

# A federated query coordinated by A: counted, and timed in the histogram.
"$MUSUBI" query --node "tcp://127.0.0.1:$(fed_port $A)" --dir "$(fed_dir $A)" --format csv \
	--timeout 30000 "SELECT count(*) FROM evacuation_sites" >"$WORK/q.csv" ||
	fail "the query at A failed"
expect_in "$WORK/q.csv" "348"
wait_metric "$MA" 'musubi_queries_total{kind="query"}' 'v == 1'
wait_metric "$MA" 'musubi_query_duration_seconds_count{kind="query"}' 'v == 1'
wait_metric "$MA" 'musubi_query_duration_seconds_bucket{kind="query",le="+Inf"}' 'v == 1'
wait_metric "$MA" 'musubi_query_duration_seconds_sum{kind="query"}' 'v > 0'

# The whole text is the Prometheus text format 0.0.4: HELP and TYPE once per
# family and before its samples, every other line "name{labels} value",
# histogram buckets cumulative and ending at +Inf = _count.
for port in "$MA" "$MB"; do
	[ "$(http GET "http://127.0.0.1:$port/metrics")" = 200 ] || fail "/metrics on :$port is not 200"
	expect_in "$WORK/ctype" "text/plain; version=0.0.4"
	python3 - "$WORK/body" <<'PY' || fail "/metrics on :$port is not valid Prometheus text"
import re, sys
NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(r"^(%s)(\{%s(?:,%s)*\})? (-?(?:[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?|\+Inf|NaN))$"
                    % (NAME, LABEL, LABEL))
types, helps, bad, samples = {}, set(), [], 0
buckets = {}
text = open(sys.argv[1], encoding="utf-8").read()
if not text.endswith("\n"):
    bad.append("no final newline")
for n, line in enumerate(text.splitlines(), 1):
    if line.startswith("# HELP "):
        name = line.split(" ")[2]
        if name in helps: bad.append("%d: second HELP for %s" % (n, name))
        helps.add(name)
        continue
    if line.startswith("# TYPE "):
        parts = line.split(" ")
        if len(parts) != 4 or parts[3] not in ("counter", "gauge", "histogram", "summary", "untyped"):
            bad.append("%d: bad TYPE line %r" % (n, line))
        elif parts[2] in types: bad.append("%d: second TYPE for %s" % (n, parts[2]))
        else: types[parts[2]] = parts[3]
        continue
    if line.startswith("#") or not line:
        bad.append("%d: unexpected line %r" % (n, line)); continue
    m = SAMPLE.match(line)
    if not m:
        bad.append("%d: not name{labels} value: %r" % (n, line)); continue
    samples += 1
    name = m.group(1)
    family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
    if family not in types:
        bad.append("%d: %s has no TYPE before it" % (n, name))
    elif types[family] == "counter" and not name.endswith("_total"):
        bad.append("%d: counter %s does not end in _total" % (n, name))
    if not name.startswith("musubi_"):
        bad.append("%d: %s is not musubi_*" % (n, name))
    if name.endswith("_bucket"):
        labels = m.group(2)
        key = re.sub(r',?le="[^"]*"', "", labels)
        buckets.setdefault(key, []).append(float(m.group(3)))
    if name.endswith("_count") and types.get(family) == "histogram":
        key = m.group(2) or ""
        if buckets.get(key, [None])[-1] != float(m.group(3)):
            bad.append("%d: +Inf bucket differs from _count for %s" % (n, key))
for key, vals in buckets.items():
    if vals != sorted(vals): bad.append("buckets of %s are not cumulative" % key)
if samples < 20: bad.append("only %d samples" % samples)
for b in bad: print(b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
done

# /healthz, unknown paths, other methods.
[ "$(http GET "http://127.0.0.1:$MA/healthz")" = 200 ] || fail "/healthz should be 200"
expect_in "$WORK/body" "ok"
[ "$(http GET "http://127.0.0.1:$MA/nothing-here")" = 404 ] || fail "an unknown path should be 404"
[ "$(http POST "http://127.0.0.1:$MA/metrics")" = 405 ] || fail "POST should be 405"
[ "$(http HEAD "http://127.0.0.1:$MB/metrics")" = 200 ] || fail "HEAD /metrics should be 200"

# A node stopped answers no more; a busy or bad metrics address stops
# musubid at start with a clear error, before it serves anything.
fed_stop $B
expect_status 1 timeout 20 "$MUSUBID" --dir "$(fed_dir $B)" --listen "tcp://127.0.0.1:$(fed_port $B)" \
	--metrics "127.0.0.1:$MA"
expect_in "$WORK/err" "cannot serve metrics on 127.0.0.1:$MA"
expect_status 1 timeout 20 "$MUSUBID" --dir "$(fed_dir $B)" --listen "tcp://127.0.0.1:$(fed_port $B)" \
	--metrics "localhost"
expect_in "$WORK/err" "not host:port"

# musubi status shows the same figures for people, coloured only on request.
NODE_A="tcp://127.0.0.1:$(fed_port $A)"
expect_status 0 "$MUSUBI" status --node "$NODE_A" --dir "$(fed_dir $A)" --color=always
printf '\033[' >"$WORK/esc"
expect_in "$WORK/out" "$(cat "$WORK/esc")"
expect_in "$WORK/out" "queries    1 (1 answered, mean"
expect_in "$WORK/out" "refused"
expect_status 0 "$MUSUBI" status --node "$NODE_A" --dir "$(fed_dir $A)" --color=never
grep -qF "$(cat "$WORK/esc")" "$WORK/out" && fail "--color=never still wrote an escape"
expect_status 0 "$MUSUBI" status --node "$NODE_A" --dir "$(fed_dir $A)"
grep -qF "$(cat "$WORK/esc")" "$WORK/out" && fail "auto coloured output that is not a terminal"
expect_status 0 "$MUSUBI" status --dir "$(fed_dir $B)" --color=always
expect_in "$WORK/out" "$(cat "$WORK/esc")"
expect_in "$WORK/out" "evidence"
expect_status 0 "$MUSUBI" status --dir "$(fed_dir $B)" --color=never
grep -qF "$(cat "$WORK/esc")" "$WORK/out" && fail "status --dir --color=never wrote an escape"
expect_status 2 "$MUSUBI" status --dir "$(fed_dir $B)" --color=sometimes
expect_in "$WORK/err" "--color takes auto, always or never"

finish
