#!/bin/sh
# A federation through the musubi command alone: two anchors (threshold 2)
# start a trust list, three municipalities join and publish real data, one
# is revoked in version 2, and verify names the dataset whose newest head
# no longer counts. Times given to --at are ISO 8601 to the second here;
# musubi keeps them to the microsecond (docs/TRUST.md).
. "$(dirname "$0")/lib.sh"

L="$WORK/trust.list"
MEMBERS="011002 012025 222127"

# Every subcommand answers --help.
expect_status 0 "$MUSUBI" trust --help
expect_in "$WORK/out" "usage: musubi trust"
for c in init add revoke rotate anchors sign show verify update; do
	expect_status 0 "$MUSUBI" trust "$c" --help
	expect_in "$WORK/out" "usage: musubi trust $c"
done
expect_status 2 "$MUSUBI" trust nosuch
expect_in "$WORK/err" "'nosuch' is not a subcommand"

# The anchor: two anchor keys, threshold 2.
"$MUSUBI" keygen --out "$WORK/anchor1" >/dev/null
"$MUSUBI" keygen --out "$WORK/anchor2" >/dev/null
"$MUSUBI" keygen --out "$WORK/rogue" >/dev/null
expect_status 2 "$MUSUBI" trust init --out "$L" --anchor "$WORK/anchor1/signing.pub.pem" --threshold 2
expect_in "$WORK/err" "more than the 1 anchor keys"
expect_status 0 "$MUSUBI" trust init --out "$L" --anchor "$WORK/anchor1/signing.pub.pem" \
	--anchor "$WORK/anchor2/signing.pub.pem" --threshold 2 --federation hokkaido-shizuoka
expect_in "$WORK/out" "draft trust list version 1"
expect_status 3 "$MUSUBI" trust init --out "$L" --anchor "$WORK/anchor1" --threshold 1
expect_in "$WORK/err" "never overwritten"

# Three municipalities make keys; the anchor adds them.
for m in $MEMBERS; do
	"$MUSUBI" keygen --out "$WORK/key$m" >/dev/null
done
expect_status 0 "$MUSUBI" trust add "$L" --member 011002 --name 札幌市 --key "$WORK/key011002" \
	--endpoint tcp://127.0.0.1:7101 --roles publisher,relay
expect_in "$WORK/out" "added member 011002 (札幌市)"
expect_status 0 "$MUSUBI" trust add "$L" --member 012025 --name 函館市 --key "$WORK/key012025" \
	--endpoint tcp://127.0.0.1:7102 --roles publisher,relay --valid-from 2020-04-01T00:00:00+09:00
expect_status 0 "$MUSUBI" trust add "$L" --member 222127 --name 焼津市 --key "$WORK/key222127" \
	--endpoint tcp://127.0.0.1:7103 --roles publisher
expect_status 2 "$MUSUBI" trust add "$L" --member 011002 --name x --key "$WORK/key011002" --roles publisher
expect_in "$WORK/err" "already in"
expect_status 2 "$MUSUBI" trust add "$L" --member 372013 --name x --key "$WORK/rogue" --roles mayor
expect_in "$WORK/err" "unknown role \"mayor\""
expect_status 2 "$MUSUBI" trust add "$L" --member 372013 --name x --key "$WORK/rogue" --roles auditor \
	--valid-until tomorrow
expect_in "$WORK/err" "is not a time"

# Signed in turn: one signature is not enough, one anchor cannot sign twice.
expect_status 1 "$MUSUBI" trust verify "$L"
expect_in "$WORK/err" "has 0 valid signatures by its own anchor keys and needs 2"
expect_status 0 "$MUSUBI" trust sign "$L" --key "$WORK/anchor1"
expect_in "$WORK/out" "1 signature;"
expect_status 1 "$MUSUBI" trust verify "$L"
expect_in "$WORK/err" "has 1 valid signature by its own anchor keys and needs 2"
expect_status 1 "$MUSUBI" trust sign "$L" --key "$WORK/anchor1"
expect_in "$WORK/err" "already signed by key"
# A node will not start from it either.
expect_status 1 "$MUSUBI" init --dir "$WORK/early" --member 011002 --key "$WORK/key011002" --trust "$L"
expect_in "$WORK/err" "threshold not met"
[ ! -e "$WORK/early" ] || fail "a refused trust list must not leave a data directory"
expect_status 0 "$MUSUBI" trust sign "$L" --key "$WORK/anchor2"
expect_status 0 "$MUSUBI" trust verify "$L"
expect_in "$WORK/out" "accepted as a first list"

# A rogue copy signed by another key is refused.
cp "$L" "$WORK/rogue.list"
expect_status 0 "$MUSUBI" trust sign "$WORK/rogue.list" --key "$WORK/rogue"
expect_in "$WORK/out" "is not an anchor of version 1"

# show: a table and JSON.
expect_status 0 "$MUSUBI" trust show "$L"
expect_in "$WORK/out" "federation  hokkaido-shizuoka"
expect_in "$WORK/out" "函館市"
expect_in "$WORK/out" "from 2020-03-31T15:00:00Z"
expect_in "$WORK/out" "valid"
expect_status 0 "$MUSUBI" trust show "$L" --json
[ "$(json_field "$WORK/out" 'len(d["members"])')" = 3 ] || fail "show --json should list 3 members"
[ "$(json_field "$WORK/out" '[s["status"] for s in d["signatures"]]')" = "['valid', 'valid']" ] ||
	fail "show --json should find both signatures valid"

# Damaged files are refused with a clear error.
head -c 200 "$L" >"$WORK/truncated.list"
expect_status 1 "$MUSUBI" trust show "$WORK/truncated.list"
expect_in "$WORK/err" "not a signed trust list"
echo "not a list" >"$WORK/text.list"
expect_status 1 "$MUSUBI" trust verify "$WORK/text.list"
expect_in "$WORK/err" "do not decode"

# Each municipality joins with the signed list and publishes real data.
for m in $MEMBERS; do
	expect_status 0 "$MUSUBI" init --dir "$WORK/node$m" --member "$m" --key "$WORK/key$m" --trust "$L"
	expect_in "$WORK/out" "federation \"hokkaido-shizuoka\" (trust list version 1)"
done
# A node whose key is not the registered one is warned.
"$MUSUBI" keygen --out "$WORK/otherkey" >/dev/null
expect_status 0 "$MUSUBI" init --dir "$WORK/wrongkey" --member 011002 --key "$WORK/otherkey" --trust "$L"
expect_in "$WORK/err" "warning: this node signs with key"

pub() {
	expect_status 0 "$MUSUBI" publish --dir "$WORK/node$1" --dataset "$2" --schema "$3" "$4"
}
pub 011002 evacuation_sites gsi_evacuation_site@1 "$DATA/evacuation_sites/011002_sapporo_gsi.csv"
pub 012025 designated_shelters gsi_designated_shelter@1 "$DATA/designated_shelters/012025_hakodate_gsi.csv"
pub 012025 evacuation_sites gsi_evacuation_site@1 "$DATA/evacuation_sites/012025_hakodate_gsi.csv"
pub 222127 aed aed@1 "$DATA/aed/222127_yaizu.csv"
for m in $MEMBERS; do
	expect_status 0 "$MUSUBI" verify --dir "$WORK/node$m"
	expect_in "$WORK/out" "checked against trust list version 1"
done

# 012025's key is stolen at T, between two of its publishes (second
# precision, so a second on each side).
sleep 1
T=$(date -u +%Y-%m-%dT%H:%M:%SZ)
sleep 1
head -n 120 "$DATA/evacuation_sites/012025_hakodate_gsi.csv" >"$WORK/hakodate_after.csv"
pub 012025 evacuation_sites gsi_evacuation_site@1 "$WORK/hakodate_after.csv"
expect_status 0 "$MUSUBI" verify --dir "$WORK/node012025"

# Version 2 revokes 012025 from T.
expect_status 0 "$MUSUBI" trust revoke "$L" --member 012025 --reason "signing key stolen" --at "$T"
expect_in "$WORK/out" "this edit starts version 2 (signatures cleared"
[ -f "$L.v1" ] || fail "the signed version 1 should be kept as $L.v1"
expect_status 1 "$MUSUBI" trust verify "$L" --prev "$L.v1"
expect_status 0 "$MUSUBI" trust sign "$L" --key "$WORK/anchor2"
expect_status 0 "$MUSUBI" trust sign "$L" --key "$WORK/anchor1"
expect_status 0 "$MUSUBI" trust verify "$L" --prev "$L.v1"
expect_in "$WORK/out" "accepted after"
expect_status 1 "$MUSUBI" trust verify "$L.v1" --prev "$L"
expect_in "$WORK/err" "downgrade or replay: version 1 is not newer than 2"
expect_status 0 "$MUSUBI" trust show "$L"
expect_in "$WORK/out" "(signing key stolen)"

# Key rotation on a scratch copy: the old key becomes a retired key.
cp "$L" "$WORK/scratch.list"
"$MUSUBI" keygen --out "$WORK/key222127b" >/dev/null
expect_status 0 "$MUSUBI" trust rotate "$WORK/scratch.list" --member 222127 --key "$WORK/key222127b" \
	--at 2026-01-01T00:00:00.5Z --reason "yearly rotation"
expect_in "$WORK/out" "retired at 2026-01-01T00:00:00.500000Z (yearly rotation)"
expect_status 0 "$MUSUBI" trust show "$WORK/scratch.list"
expect_in "$WORK/out" "retired keys"
expect_status 0 "$MUSUBI" trust anchors "$WORK/scratch.list" --remove "$WORK/anchor2/signing.pub.pem" --threshold 1
expect_in "$WORK/out" "1 anchor, threshold 1"
expect_status 2 "$MUSUBI" trust anchors "$WORK/scratch.list" --threshold 2
expect_in "$WORK/err" "the threshold must be between 1 and the number of anchors"

# Every node takes version 2; an old or unsigned list is refused.
for m in $MEMBERS; do
	expect_status 0 "$MUSUBI" trust update --dir "$WORK/node$m" "$L"
	expect_in "$WORK/out" "now follows trust list version 2"
done
expect_status 0 "$MUSUBI" trust update --dir "$WORK/node011002" "$L"
expect_in "$WORK/out" "already has trust list version 2"
expect_status 1 "$MUSUBI" trust update --dir "$WORK/node011002" "$L.v1"
expect_in "$WORK/err" "downgrade or replay"
expect_status 1 "$MUSUBI" trust update --dir "$WORK/node011002" "$WORK/scratch.list"
expect_in "$WORK/err" "threshold not met"

# 012025's newest evacuation_sites head is dated after T: it no longer
# counts. Its shelters, published before T, still do. The others are green.
expect_status 1 "$MUSUBI" verify --dir "$WORK/node012025"
expect_in "$WORK/out" "NEWEST HEAD DOES NOT COUNT 012025/evacuation_sites"
expect_in "$WORK/out" "member 012025 was revoked at $T (signing key stolen) in trust list version 2"
if grep -q "012025/designated_shelters" "$WORK/out"; then
	fail "012025/designated_shelters was published before the revocation and still counts"
fi
expect_status 1 "$MUSUBI" verify --dir "$WORK/node012025" --json
[ "$(json_field "$WORK/out" '[x["dataset"] for x in d["newest_head_refused"]]')" = "['012025/evacuation_sites']" ] ||
	fail "verify --json should name 012025/evacuation_sites only"
for m in 011002 222127; do
	expect_status 0 "$MUSUBI" verify --dir "$WORK/node$m"
	expect_in "$WORK/out" "checked against trust list version 2"
done

finish
