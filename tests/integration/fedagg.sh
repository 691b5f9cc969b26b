#!/bin/sh
# Aggregate pushdown in federated queries, through four real musubid
# processes: every GROUP BY query gives the same answer with pushdown as
# with --no-pushdown (every row streamed to the coordinator), --explain
# says "aggregate pushed down" exactly for the shapes that decompose, and
# the nodes' groups come back in pages when there are many.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fed.sh"
trap 'fed_stop_all; rm -rf "$WORK"' EXIT

fed_init 012025 012033 012041 012076
A=012025 B=012033 C=012041 D=012076
# A holds only its own data, so that the others' must come over the wire.
FED_EXTRA="--replicate 012025/*"
fed_start $A $B
FED_EXTRA=""
fed_start $B $A $C
fed_start $C $B $D
fed_start $D $C $B

pub() {   # member dataset schema file
	"$MUSUBI" publish --dir "$(fed_dir "$1")" --dataset "$2" --schema "$3" "$4" >/dev/null ||
		fail "publish $2 at $1"
}
pub $A evacuation_sites gsi_evacuation_site@1 "$DATA/evacuation_sites/012025_hakodate_gsi.csv"
pub $B evacuation_sites gsi_evacuation_site@1 "$DATA/evacuation_sites/012033_otaru_gsi.csv"
pub $C evacuation_sites gsi_evacuation_site@1 "$DATA/evacuation_sites/012041_asahikawa_gsi.csv"
pub $D evacuation_sites gsi_evacuation_site@1 "$DATA/evacuation_sites/012076_obihiro_gsi.csv"
for city in 012025_hakodate 012041_asahikawa; do
	pub "${city%%_*}" addresses address@1 "$DATA/addresses/$city.csv"
done
# Generated rows with integers, reals, dates, booleans and NULLs; D has
# more groups by id than one scan reply holds.
"$GENCSV" 31000 >"$WORK/all.csv"
head -n 1 "$WORK/all.csv" >"$WORK/hdr.csv"
{ cat "$WORK/hdr.csv"; sed -n '2,3001p' "$WORK/all.csv"; } >"$WORK/s1.csv"
{ cat "$WORK/hdr.csv"; sed -n '3002,6001p' "$WORK/all.csv" | sed 's/,"指定[^"]*"$/,/'; } >"$WORK/s2.csv"
{ cat "$WORK/hdr.csv"; sed -n '6002,31001p' "$WORK/all.csv"; } >"$WORK/s3.csv"
SCHEMA="$SRC/tests/bench/bench_schema.json"
pub $B sites "$SCHEMA" "$WORK/s1.csv"
pub $C sites "$SCHEMA" "$WORK/s2.csv"
pub $D sites "$SCHEMA" "$WORK/s3.csv"

QAT=$A
QEXTRA=""
Q() {   # musubi query at $QAT (A), as CSV
	# shellcheck disable=SC2086
	"$MUSUBI" query --node "tcp://127.0.0.1:$(fed_port $QAT)" --dir "$(fed_dir $QAT)" --format csv \
		--timeout 60000 $QEXTRA "$@"
}

# check pushed|streamed|either SQL: the answer with pushdown equals the
# answer without; --explain names the pushdown exactly when expected.
check() {
	want=$1
	sql=$2
	if ! Q --explain "$sql" >"$WORK/on.csv" 2>"$WORK/on.err"; then
		fail "query failed with pushdown: $sql"
		sed 's/^/  | /' "$WORK/on.err" >&2
		return
	fi
	if ! Q --no-pushdown --explain "$sql" >"$WORK/off.csv" 2>"$WORK/off.err"; then
		fail "query failed without pushdown: $sql"
		sed 's/^/  | /' "$WORK/off.err" >&2
		return
	fi
	grep -q "aggregate pushed down" "$WORK/off.err" && fail "--no-pushdown pushed down: $sql"
	case $want in
	pushed)
		grep -q "aggregate pushed down" "$WORK/on.err" ||
			{ fail "not pushed down: $sql"; grep -i aggregate "$WORK/on.err" >&2; } ;;
	streamed)
		grep -q "aggregate pushed down" "$WORK/on.err" && fail "pushed down, but must not be: $sql" ;;
	esac
	# Sums of REAL values are added in another order: equal to 12 digits.
	python3 - "$WORK/on.csv" "$WORK/off.csv" <<'PY' || fail "pushdown changes the answer: $sql"
import csv, sys
def norm(v):
    try:
        int(v)
        return v
    except ValueError:
        pass
    try:
        return "%.12g" % float(v)
    except ValueError:
        return v
a, b = ([[norm(v) for v in r] for r in csv.reader(open(f, encoding="utf-8"))] for f in sys.argv[1:3])
if a != b:
    print("pushed  ", a[:4], len(a), "\nstreamed", b[:4], len(b), file=sys.stderr)
    sys.exit(1)
if len(a) < 2:
    print("no rows: the check would prove nothing", file=sys.stderr)
    sys.exit(1)
PY
}

E=evacuation_sites
check pushed "SELECT _publisher, count(*), count(備考), count(津波), sum(津波) FROM $E GROUP BY _publisher"
check pushed "SELECT count(*), count(備考), sum(津波), total(洪水), avg(緯度) FROM $E"
check pushed "SELECT 都道府県名及び市町村名, sum(緯度), total(経度), avg(経度), min(緯度), max(経度),
	min(施設・場所名), max(住所) FROM $E GROUP BY 1"
check pushed "SELECT 津波, 地震, count(*) AS n, avg(緯度) FROM $E GROUP BY 津波, 地震
	HAVING count(*) > 5 ORDER BY n DESC, 1, 2 LIMIT 3"
check pushed "SELECT 津波, count(*), max(NO) FROM $E WHERE _publisher = '012033' GROUP BY 津波"
check pushed "SELECT 津波, count(*) FROM $E WHERE 住所 LIKE '%旭%' AND 緯度 > 43.0 GROUP BY 津波"
check pushed "SELECT _publisher, sum(津波) * 100.0 / count(*) AS pct FROM $E GROUP BY 1 ORDER BY pct DESC, 1"
check pushed "SELECT _publisher, max(_seq), count(_hash) FROM $E WHERE length(_publisher) = 6
	GROUP BY _publisher ORDER BY 1"
check pushed "SELECT 有効, count(*), sum(収容人数), sum(緯度), avg(収容人数), min(開設日), max(開設日),
	count(備考), min(名称) FROM sites WHERE 収容人数 >= 1000 GROUP BY 有効"
check pushed "SELECT count(*), sum(収容人数), max(名称), total(緯度) FROM sites WHERE _publisher = '999999'"
check pushed "SELECT count(*), sum(収容人数) FROM sites WHERE id = 4242"
check pushed "SELECT id, count(*), sum(収容人数), max(住所) FROM sites GROUP BY id ORDER BY 3 DESC, 1 LIMIT 20"
check pushed "SELECT 住所 IS NULL, 有効, count(*) FROM sites GROUP BY 有効, 住所 ORDER BY 3 DESC, 2 LIMIT 5"

check streamed "SELECT count(DISTINCT 住所) FROM $E"
check streamed "SELECT _publisher, count(DISTINCT 住所) FROM $E GROUP BY 1"
check streamed "SELECT sum(緯度 + 経度), count(*) FROM $E"
check streamed "SELECT substr(住所, 1, 6), count(*) FROM $E GROUP BY substr(住所, 1, 6)"
check streamed "SELECT _publisher, min(住所), NO FROM $E GROUP BY _publisher"
check streamed "SELECT count(*) FROM $E WHERE 緯度 > 経度 - 99"
check streamed "SELECT sum(津波) FROM $E WHERE 津波 = '1'"
check streamed "SELECT _publisher, group_concat(NO) IS NOT NULL, count(*) FROM $E GROUP BY 1"
check streamed "SELECT e._publisher, count(*) FROM $E e JOIN (SELECT DISTINCT _publisher FROM addresses) a
	ON a._publisher = e._publisher GROUP BY 1"
check streamed "SELECT _publisher, count(*) FROM $E GROUP BY 1 HAVING count(*) > (SELECT count(*) FROM $E) / 5"
check streamed "SELECT count(*), sum(n) FROM (SELECT 有効, count(*) AS n FROM sites GROUP BY 有効)"
check either "SELECT _publisher, count(*) FROM $E WHERE _publisher IN ('012033', '012041') GROUP BY 1"

# The groups of D (25,000 ids) come in pages; nothing lost or repeated.
Q --explain "SELECT id, count(*) AS n, sum(収容人数) FROM sites GROUP BY id" >"$WORK/ids.csv" 2>"$WORK/ids.err" ||
	{ fail "grouping by id failed"; cat "$WORK/ids.err" >&2; }
expect_in "$WORK/ids.err" "aggregate pushed down"
expect_in "$WORK/ids.err" "sites: publisher 012076 -> 012076 (publisher), 25000 groups"
python3 - "$WORK/all.csv" "$WORK/ids.csv" <<'PY' || fail "paged groups lost or repeated rows"
import csv, sys
want = sorted((int(r["id"]), 1, int(r["収容人数"])) for r in csv.DictReader(open(sys.argv[1], encoding="utf-8")))
got = sorted((int(r[0]), int(r[1]), int(r[2])) for r in list(csv.reader(open(sys.argv[2], encoding="utf-8")))[1:])
sys.exit(0 if got == want else print(len(got), len(want), got[:3], want[:3]) or 1)
PY

# B from its replicas alone (--local): local scans group the same way.
fed_wait_rows $B 012025/evacuation_sites 241 30
fed_wait_rows $B 012041/evacuation_sites 79 30
fed_wait_rows $B 012076/evacuation_sites 120 30
QAT=$B QEXTRA=--local
check pushed "SELECT _publisher, count(*), sum(津波), min(住所), avg(緯度) FROM $E GROUP BY 1"
check streamed "SELECT _publisher, count(DISTINCT 住所) FROM $E GROUP BY 1"
QAT=$A QEXTRA=""

# A stopped node: its groups are missing and the answer says so, as
# without pushdown.
fed_stop $D
Q --timeout 6000 "SELECT _publisher, count(*) FROM $E GROUP BY 1" >"$WORK/out" 2>"$WORK/err" ||
	fail "a partial aggregate should still answer"
expect_in "$WORK/err" "PARTIAL RESULT"
grep -q "^012076," "$WORK/out" && fail "012076 cannot answer while stopped"
expect_in "$WORK/out" "012033,"
finish
