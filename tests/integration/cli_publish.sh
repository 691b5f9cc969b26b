#!/bin/sh
# The publishing workflow through the musubi command, as municipal IT runs it.
. "$(dirname "$0")/lib.sh"

N="$WORK/node"

# Every command answers --help.
for c in keygen init publish status verify schema; do
	expect_status 0 "$MUSUBI" "$c" --help
	expect_in "$WORK/out" "usage: musubi $c"
done
expect_status 0 "$MUSUBI" --help
expect_status 2 "$MUSUBI" nosuchcommand
expect_in "$WORK/err" "'nosuchcommand' is not a command"

expect_status 0 "$MUSUBI" keygen --out "$WORK/keys"
expect_status 3 "$MUSUBI" keygen --out "$WORK/keys"
expect_in "$WORK/err" "already holds keys"
openssl pkey -in "$WORK/keys/signing.pem" -noout || fail "openssl cannot read signing.pem"

expect_status 2 "$MUSUBI" init --dir "$N" --member "Sapporo!" --key "$WORK/keys"
expect_in "$WORK/err" "is not valid"
expect_status 0 "$MUSUBI" init --dir "$N" --member 011002 --key "$WORK/keys"
expect_status 0 "$MUSUBI" init --dir "$N" --member 011002 --key "$WORK/keys"
expect_in "$WORK/out" "already initialised"
[ "$(stat -c %a "$N/keys/signing.pem")" = 600 ] || fail "signing.pem is not mode 600"

# Publish a real file; the summary names the counts.
F="$DATA/evacuation_sites/011002_sapporo_gsi.csv"
expect_status 0 "$MUSUBI" publish --dir "$N" --dataset evacuation_sites --schema gsi_evacuation_site@1 "$F"
expect_in "$WORK/out" "011002/evacuation_sites: 348 rows read (UTF-8): 348 new, 0 changed, 0 deleted, 0 unchanged"
expect_in "$WORK/out" "log 0 -> 348 entries in 1 signed batch"

# Twice: nothing appended.
expect_status 0 "$MUSUBI" publish --dir "$N" --dataset evacuation_sites --schema gsi_evacuation_site@1 "$F"
expect_in "$WORK/out" "nothing to append: the log stays at 348 entries"

# A changed file: a dry run shows the diff, the publish appends it.
head -n 300 "$F" | sed 's/もみじ台中学校/もみじ台中学校(改築中)/' >"$WORK/changed.csv"
expect_status 0 "$MUSUBI" publish --dir "$N" --dataset evacuation_sites --schema gsi_evacuation_site@1 --dry-run "$WORK/changed.csv"
expect_in "$WORK/out" "dry run, nothing written"
expect_in "$WORK/out" "0 new, 1 changed, 49 deleted, 298 unchanged"
expect_status 0 "$MUSUBI" publish --dir "$N" --dataset evacuation_sites --schema gsi_evacuation_site@1 --json "$WORK/changed.csv"
[ "$(json_field "$WORK/out" 'd["new_size"]')" = 398 ] || fail "log should hold 348 + 1 + 49 entries"

# Shift_JIS input is detected and converted.
iconv -f UTF-8 -t CP932 "$DATA/aed/222127_yaizu.csv" >"$WORK/aed_sjis.csv"
expect_status 0 "$MUSUBI" publish --dir "$N" --dataset aed --schema aed@1 "$WORK/aed_sjis.csv"
expect_in "$WORK/out" "82 rows read (Shift_JIS (CP932))"

# Bad input: exit 1, the error names line and column, nothing appended.
cp "$DATA/aed/222127_yaizu.csv" "$WORK/bad.csv"
sed -i '5s/34\.[0-9]*/北緯34度/' "$WORK/bad.csv"
expect_status 1 "$MUSUBI" publish --dir "$N" --dataset aed --schema aed@1 "$WORK/bad.csv"
expect_in "$WORK/err" "nothing was appended to 011002/aed"
expect_in "$WORK/err" "line 5, column 9"
expect_in "$WORK/err" "北緯34度"

# The Yaizu evacuation file uses ○ where the standard says 1: refused with the rule.
expect_status 1 "$MUSUBI" publish --dir "$N" --dataset evacuation_space --schema evacuation_space@1 "$DATA/evacuation_sites/222127_yaizu.csv"
expect_in "$WORK/err" "○"

# Status: a table and JSON.
expect_status 0 "$MUSUBI" status --dir "$N"
expect_in "$WORK/out" "member   011002"
expect_in "$WORK/out" "011002/evacuation_sites"
expect_in "$WORK/out" "gsi_evacuation_site@1"
expect_status 0 "$MUSUBI" status --dir "$N" --json
[ "$(json_field "$WORK/out" 'len(d["datasets"])')" = 2 ] || fail "status --json should list 2 datasets"
[ "$(json_field "$WORK/out" '[x["rows"] for x in d["datasets"] if x["dataset"]=="011002/aed"][0]')" = 82 ] ||
	fail "aed should hold 82 rows"

# Verify: green, then red after a byte of the store is changed.
expect_status 0 "$MUSUBI" verify --dir "$N"
expect_in "$WORK/out" "verified: 2 datasets"
expect_status 0 "$MUSUBI" verify --dir "$N" --dataset 011002/aed --json
[ "$(json_field "$WORK/out" 'd["ok"]')" = True ] || fail "verify --json should say ok"

# Schemas.
expect_status 0 "$MUSUBI" schema list
expect_in "$WORK/out" "evacuation_space@1"
expect_in "$WORK/out" "gsi_evacuation_site@1"
expect_status 0 "$MUSUBI" schema show aed@1
expect_in "$WORK/out" "緯度"
expect_status 1 "$MUSUBI" schema check public_toilet@1 public_toilet@2
expect_in "$WORK/out" "NOT a compatible evolution"

finish
