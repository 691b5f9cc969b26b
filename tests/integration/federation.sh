#!/bin/sh
# Real musubid processes on 127.0.0.1 replicating signed logs: a line and a
# ring, relays, a publisher offline, SIGKILL mid-sync, access control, and
# garbled or oversized messages.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fed.sh"
trap 'fed_stop_all; rm -rf "$WORK"' EXIT

fed_init 011002 012025 012033 012041 222127
A=011002 B=012025 C=012033 D=012041 E=222127

# A line of three: A - B - C. Data published at A reaches C through B.
fed_start $A $B
fed_start $B $A $C
fed_start $C $B
"$MUSUBI" publish --dir "$(fed_dir $A)" --dataset evacuation_sites --schema gsi_evacuation_site@1 \
	"$DATA/evacuation_sites/011002_sapporo_gsi.csv" >/dev/null
fed_wait_rows $C 011002/evacuation_sites 348 30
expect_status 0 "$MUSUBI" verify --dir "$(fed_dir $C)"
expect_in "$WORK/out" "verified"

# C publishes too; it flows the other way.
"$MUSUBI" publish --dir "$(fed_dir $C)" --dataset evacuation_sites --schema gsi_evacuation_site@1 \
	"$DATA/evacuation_sites/012033_otaru_gsi.csv" >/dev/null
fed_wait_rows $A 012033/evacuation_sites 45 30

# A change at A (rows changed and deleted) replicates as a diff.
head -n 301 "$DATA/evacuation_sites/011002_sapporo_gsi.csv" >"$WORK/sapporo_300.csv"
"$MUSUBI" publish --dir "$(fed_dir $A)" --dataset evacuation_sites --schema gsi_evacuation_site@1 \
	"$WORK/sapporo_300.csv" >/dev/null
fed_wait_rows $C 011002/evacuation_sites 300 30

# Redaction: A removes a row's payload; every node honours the signed
# notice, and every log still verifies.
expect_status 0 "$MUSUBI" redact --dir "$(fed_dir $A)" --dataset evacuation_sites --seq 5 \
	--reason "personal data published by mistake"
[ "$(fed_rows $A 011002/evacuation_sites)" = 299 ] || fail "the redacted row should leave A's state"
fed_wait_rows $C 011002/evacuation_sites 299 30
expect_status 1 "$MUSUBI" redact --dir "$(fed_dir $A)" --dataset evacuation_sites --seq 5 --reason again
expect_in "$WORK/err" "already redacted"
# Redacting an upsert whose key a later publish deleted (seq 347, the last
# row of the first publish) erases its content, not its existence: the
# delete after it stays valid on A, on C, and on D, which joins below and
# takes the log with the stub before the delete.
expect_status 0 "$MUSUBI" redact --dir "$(fed_dir $A)" --dataset evacuation_sites --seq 347 \
	--reason "personal data published by mistake"
[ "$(fed_rows $A 011002/evacuation_sites)" = 299 ] || fail "seq 347 should be a deleted row's upsert"
wait_for_log "$WORK/fed/$C.log" "honoured the redaction of 011002/evacuation_sites #347" 20 \
	"C did not honour the redaction of #347"
for id in $A $B $C; do
	expect_status 0 "$MUSUBI" verify --dir "$(fed_dir "$id")"
done

# The publisher goes offline: a new member joining at C's side still gets A's data.
fed_stop $A
fed_start $D $C
fed_wait_rows $D 011002/evacuation_sites 299 30
expect_status 0 "$MUSUBI" verify --dir "$(fed_dir $D)"

# Status over the wire names peers and datasets.
expect_status 0 "$MUSUBI" status --node "tcp://127.0.0.1:$(fed_port $B)" --dir "$(fed_dir $B)" --json
[ "$(json_field "$WORK/out" 'd["member"]')" = $B ] || fail "status names the wrong member"
[ "$(json_field "$WORK/out" 'len(d["peers"])')" = 2 ] || fail "B should list 2 peers"
expect_status 0 "$MUSUBI" status --node "tcp://127.0.0.1:$(fed_port $B)" --dir "$(fed_dir $B)"
expect_in "$WORK/out" "011002/evacuation_sites"

# SIGKILL mid-sync: E fetches a large dataset from D, is killed, restarts,
# and ends with every row, verified, nothing duplicated.
"$GENCSV" 60000 >"$WORK/big.csv"
"$MUSUBI" publish --dir "$(fed_dir $D)" --dataset sites --schema "$SRC/tests/bench/bench_schema.json" \
	--batch-rows 5000 "$WORK/big.csv" >/dev/null
fed_start $E $D
sleep 0.4
fed_stop $E KILL
expect_status 0 "$MUSUBI" verify --dir "$(fed_dir $E)"
fed_start $E $D
fed_wait_rows $E 012041/sites 60000 60
expect_status 0 "$MUSUBI" verify --dir "$(fed_dir $E)" --json
[ "$(json_field "$WORK/out" 'd["ok"]')" = True ] || fail "E does not verify after the restart"
expect_status 0 "$MUSUBI" status --dir "$(fed_dir $E)" --json
[ "$(json_field "$WORK/out" '[x["entries"] for x in d["datasets"] if x["dataset"]=="012041/sites"][0]')" = 60000 ] ||
	fail "E's log should hold exactly 60000 entries (nothing duplicated)"

# Members-only data: an anonymous client is refused, a member is served.
"$MUSUBI" publish --dir "$(fed_dir $D)" --dataset aed --schema aed@1 --access members \
	"$DATA/aed/222127_yaizu.csv" >/dev/null
DPUB="$(fed_dir $D)/keys/transport.pub.pem"
DEP="tcp://127.0.0.1:$(fed_port $D)"
expect_status 0 "$PROBE" "$DEP" "$DPUB" - entries 012041/aed 0 10
expect_in "$WORK/out" "error denied"
expect_status 0 "$PROBE" "$DEP" "$DPUB" "$WORK/fed/keys/$E" entries 012041/aed 0 10
expect_in "$WORK/out" "entries 10"
expect_status 0 "$PROBE" "$DEP" "$DPUB" - heads
grep -q "012041/aed" "$WORK/out" && fail "an anonymous client sees members-only heads"
# A members-only dataset still replicates to members.
fed_wait_rows $E 012041/aed 82 30

# Garbage, an oversized frame, another protocol version: refused, still serving.
expect_status 0 "$PROBE" "$DEP" "$DPUB" - garbage
expect_in "$WORK/out" "status after: answered"
expect_status 0 "$PROBE" "$DEP" "$DPUB" - oversize
expect_in "$WORK/out" "status after: answered"
expect_status 0 "$PROBE" "$DEP" "$DPUB" - version
expect_in "$WORK/out" "error 4: unsupported protocol version"

# A ring of five: A-B-C-D-E-A; everything reaches everyone.
fed_stop_all
fed_start $A $B $E
fed_start $B $A $C
fed_start $C $B $D
fed_start $D $C $E
fed_start $E $D $A
"$MUSUBI" publish --dir "$(fed_dir $E)" --dataset public_toilet --schema public_toilet@2 \
	"$DATA/public_toilet/222127_yaizu.csv" >/dev/null
"$MUSUBI" publish --dir "$(fed_dir $B)" --dataset shelters --schema gsi_designated_shelter@1 \
	"$DATA/designated_shelters/012025_hakodate_gsi.csv" >/dev/null
for id in $A $C $D $E; do
	fed_wait_rows "$id" 012025/shelters 150 30
done
for id in $A $B $C $D; do
	fed_wait_rows "$id" 222127/public_toilet 112 30
done
for id in $A $B $C $D $E; do
	expect_status 0 "$MUSUBI" verify --dir "$(fed_dir "$id")"
done

finish
