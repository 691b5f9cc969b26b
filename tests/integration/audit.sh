#!/bin/sh
# musubi audit against a real federation of three musubid on 127.0.0.1:
# a history of two heads audited through two nodes, witnesses, an exported
# bundle checked by stock openssl and the shipped script with no musubi on
# the PATH (and refused with one byte changed), row proofs that round-trip
# and refuse a flipped byte, and a fork: the publisher's node copied, the
# copy shown another history, both audited together.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fed.sh"
trap 'fed_stop X; fed_stop L; fed_stop_all; rm -rf "$WORK"' EXIT

fed_init 011002 012025 012033
A=011002 B=012025 C=012033
DS=011002/evacuation_sites
EP_A="tcp://127.0.0.1:$(fed_port $A)"
EP_C="tcp://127.0.0.1:$(fed_port $C)"
TL="$WORK/fed/trust.tl"
fed_start $A $B
fed_start $B $A $C
fed_start $C $B

# Two publishes: heads at 300 and 348 entries.
head -n 301 "$DATA/evacuation_sites/011002_sapporo_gsi.csv" >"$WORK/sapporo_300.csv"
"$MUSUBI" publish --dir "$(fed_dir $A)" --dataset evacuation_sites --schema gsi_evacuation_site@1 \
	"$WORK/sapporo_300.csv" >/dev/null
fed_wait_rows $C $DS 300 30
fed_stop $A
cp -r "$(fed_dir $A)" "$WORK/fed/X"   # the publisher's node, as it was: forked below
fed_start $A $B
# (with a licence: the head at 348 carries TreeHead field 9, the one at 300 not)
"$MUSUBI" publish --dir "$(fed_dir $A)" --dataset evacuation_sites --schema gsi_evacuation_site@1 \
	--license https://creativecommons.org/licenses/by/4.0/ \
	"$DATA/evacuation_sites/011002_sapporo_gsi.csv" >/dev/null
fed_wait_rows $C $DS 348 30

audit() {
	"$MUSUBI" audit --node "$EP_A" --node "$EP_C" --dataset $DS --dir "$(fed_dir $B)" \
		--trust "$TL" "$@"
}

# Through A and C: one history, verified, no problem.
expect_status 0 audit --json
cp "$WORK/out" "$WORK/report.json"
[ "$(json_field "$WORK/report.json" 'd["ok"]')" = True ] || fail "the audit should pass"
[ "$(json_field "$WORK/report.json" '[h["size"] for h in d["heads"]]')" = "[300, 348]" ] ||
	fail "the heads should be at 300 and 348"
[ "$(json_field "$WORK/report.json" '[h["state"] for h in d["heads"]]')" = "['verified', 'verified']" ] ||
	fail "both heads should be verified"
[ "$(json_field "$WORK/report.json" 'd["entries"]')" = 348 ] || fail "348 entries should verify"
[ "$(json_field "$WORK/report.json" '[n["newest"] for n in d["nodes"]]')" = "[348, 348]" ] ||
	fail "both nodes should serve the head at 348"
[ "$(json_field "$WORK/report.json" '[s["schema"] for s in d["schemas"]]')" = "['gsi_evacuation_site@1']" ] ||
	fail "the schema version used should be named"
[ "$(json_field "$WORK/report.json" 'len(d["keys"])')" = 1 ] || fail "one key signed every head"
[ "$(json_field "$WORK/report.json" 'd["trust"]["anchored_on"]')" = "$TL" ] ||
	fail "the trust lists should be anchored on --trust"
expect_status 0 audit
expect_in "$WORK/out" "publisher   011002 (member 011002)"
expect_in "$WORK/out" "no problems found"

# Witnesses: B and C cosign the heads they verify (musubid with MSG_GET_COSIGS).
if grep -q MSG_GET_COSIGS "$SRC/node/serve.c"; then
	n=0
	until audit --json >"$WORK/w.json" 2>/dev/null &&
		[ "$(json_field "$WORK/w.json" 'd["heads"][-1]["witnesses"]')" = "['012025', '012033']" ]; do
		n=$((n + 1))
		[ $n -lt 50 ] || { fail "the newest head should be witnessed by 012025 and 012033"; break; }
		sleep 0.2
	done
	[ "$(json_field "$WORK/w.json" 'd["heads"][0]["witnessed"]')" = 2 ] ||
		fail "the older head should count the witnesses of the newer one"
	expect_status 0 audit --min-witnesses 2
	expect_status 1 audit --min-witnesses 3
	expect_in "$WORK/out" "has 2 witnesses, fewer than the 3 asked for"
else
	echo "node/serve.c has no MSG_GET_COSIGS: witness checks skipped"
fi

# The bundle: stock openssl and the shipped script, no musubi on the PATH.
expect_status 0 audit --export "$WORK/bundle"
B_=$WORK/bundle
cmp -s "$B_/verify-bundle.sh" "$SRC/deploy/audit/verify-bundle.sh" ||
	fail "the bundle should ship deploy/audit/verify-bundle.sh as it is"
[ "$(find "$B_/entries" -type f | wc -l)" = 348 ] || fail "the bundle should hold 348 entries"
[ "$(wc -l <"$B_/roots.txt")" = 2 ] || fail "roots.txt should list two heads"
mkdir "$WORK/bin"
for tool in sh od awk tr cut sort tail cmp openssl cat printf mkdir rm mv cp find wc dirname; do
	ln -s "$(command -v $tool)" "$WORK/bin/$tool"
done
PATH="$WORK/bin" command -v musubi >/dev/null 2>&1 && fail "musubi is on the bare PATH"
expect_status 0 env PATH="$WORK/bin" openssl pkeyutl -verify -pubin -inkey "$B_/publisher.pub.pem" \
	-rawin -in "$B_/heads/348.msg" -sigfile "$B_/heads/348.sig"
expect_in "$WORK/out" "Signature Verified Successfully"
expect_status 0 env PATH="$WORK/bin" sh "$B_/verify-bundle.sh"
expect_in "$WORK/out" "ok: $DS: 348 entries, 2 signed heads"
# One byte of one entry changed: refused.
cp -r "$B_" "$WORK/bad"
printf 'X' | dd of="$WORK/bad/entries/00000007.bin" bs=1 seek=30 conv=notrunc 2>/dev/null
expect_status 1 env PATH="$WORK/bin" sh "$WORK/bad/verify-bundle.sh"
expect_in "$WORK/out" "FAIL: head 300: the entries give root"
# One byte of a signature changed: refused.
rm -rf "$WORK/bad" && cp -r "$B_" "$WORK/bad"
printf 'X' | dd of="$WORK/bad/heads/348.sig" bs=1 seek=5 conv=notrunc 2>/dev/null
expect_status 1 env PATH="$WORK/bin" sh "$WORK/bad/verify-bundle.sh"
expect_in "$WORK/out" "heads/348.sig does not verify"

# A row's proof, and its check with no node.
expect_status 0 "$MUSUBI" audit --node "$EP_C" --dir "$(fed_dir $B)" --trust "$TL" \
	--prove $DS:17 --out "$WORK/row.json"
expect_status 0 "$MUSUBI" audit --check "$WORK/row.json" --trust "$TL"
expect_in "$WORK/out" "ok: $DS #17 is in the log that 011002 signed"
expect_in "$WORK/out" "size 348"
expect_status 0 "$MUSUBI" audit --check "$WORK/row.json" --json
[ "$(json_field "$WORK/out" 'd["ok"]')" = True ] || fail "the proof should check"
python3 - "$WORK/row.json" "$WORK/row-bad.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
e = d["entry"]
d["entry"] = e[:40] + ("0" if e[40] != "0" else "1") + e[41:]
json.dump(d, open(sys.argv[2], "w"))
EOF
expect_status 1 "$MUSUBI" audit --check "$WORK/row-bad.json" --trust "$TL"
expect_in "$WORK/out" "does not hold"
expect_status 2 "$MUSUBI" audit --node "$EP_C" --dir "$(fed_dir $B)" --prove $DS

# A node that lies (tests/integration/liar.c, as the publisher's node, from
# its store) beside the honest one: each lie is caught with its reason. A
# node that rolls back to an older head is only behind: one run cannot tell.
APUB="$(fed_dir $A)/keys/transport.pub.pem"
EP_L="tcp://127.0.0.1:$((FED_BASE + 110))"
if [ -n "${LIAR:-}" ]; then
	for lie in "altered root" "reorder entry" "badsig signature" "fork fork" "rollback -"; do
		# shellcheck disable=SC2086
		set -- $lie
		"$LIAR" serve --key "$WORK/fed/keys/$A" --member $A --listen "$EP_L" \
			--pub "tcp://127.0.0.1:$((FED_BASE + 111))" --lie "$1" --serve $DS "$(fed_dir $A)" \
			>"$WORK/liar.log" 2>&1 &
		echo $! >"$WORK/fed/L.pid"
		n=0
		until "$MUSUBI" status --node "$EP_L" --server-key "$APUB" --timeout 300 >/dev/null 2>&1; do
			n=$((n + 1))
			[ $n -lt 30 ] || { fail "the liar did not start"; cat "$WORK/liar.log" >&2; break; }
		done
		"$MUSUBI" audit --node "$EP_A" --server-key "$APUB" --node "$EP_L" --server-key "$APUB" \
			--dataset $DS --trust "$TL" --json >"$WORK/lie.json" 2>"$WORK/err" || true
		kinds=$(json_field "$WORK/lie.json" 'sorted({p["kind"] for p in d["problems"]} - {"consistency"})')
		if [ "$2" = - ]; then
			if [ "$kinds" != "[]" ] ||
				[ "$(json_field "$WORK/lie.json" 'd["nodes"][1]["behind"]')" != True ]; then
				fail "lie $1: the liar should only be behind, got $kinds"
			fi
		else
			case "$kinds" in *"'$2'"*) ;; *) fail "lie $1: wanted a $2 problem, got $kinds" ;; esac
		fi
		fed_stop L
	done
fi

# A fork: the copy of the publisher's node from before the second publish
# signs another history, and serves it. Audited with A, it is a fork.
head -n 291 "$DATA/evacuation_sites/011002_sapporo_gsi.csv" >"$WORK/sapporo_290.csv"
"$MUSUBI" publish --dir "$WORK/fed/X" --dataset evacuation_sites --schema gsi_evacuation_site@1 \
	"$WORK/sapporo_290.csv" >/dev/null
EP_X="tcp://127.0.0.1:$((FED_BASE + 100))"
"$MUSUBID" --dir "$WORK/fed/X" --listen "$EP_X" >>"$WORK/fed/X.log" 2>&1 &
echo $! >"$WORK/fed/X.pid"
fork_audit() {
	"$MUSUBI" audit --node "$EP_A" --server-key "$APUB" --node "$EP_X" --server-key "$APUB" \
		--dataset $DS --trust "$TL" --timeout 3000 "$@"
}
n=0
until fork_audit --json >"$WORK/fork.json" 2>/dev/null; [ -s "$WORK/fork.json" ] &&
	[ "$(json_field "$WORK/fork.json" '[n["newest"] for n in d["nodes"]]')" = "[348, 310]" ]; do
	n=$((n + 1))
	[ $n -lt 40 ] || { fail "the forked copy should serve its head at 310"; break; }
	sleep 0.2
done
expect_status 1 fork_audit --json
[ "$(json_field "$WORK/out" 'sorted({p["kind"] for p in d["problems"]})')" = "['fork']" ] ||
	fail "the only problem should be the fork"
expect_status 1 fork_audit --export "$WORK/forked"
expect_in "$WORK/out" "the publisher signed two histories"
[ -f "$WORK/forked/fork/1.a.msg" ] || fail "the bundle should hold the fork's heads"
expect_status 1 env PATH="$WORK/bin" sh "$WORK/forked/verify-bundle.sh"
expect_in "$WORK/out" "FORK: the publisher signed root"

finish
