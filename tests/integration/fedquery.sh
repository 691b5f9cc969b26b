#!/bin/sh
# Federated queries through real musubid processes: five municipalities each
# publish their own real data; every answer equals sqlite3 over all the CSV
# files loaded into one database; a stopped node makes the answer partial
# (or an error with --require-all); a replica answers for a stopped
# publisher; --as-of reproduces an answer after new data was published.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fed.sh"
trap 'fed_stop_all; rm -rf "$WORK"' EXIT

fed_init 011002 012025 012033 012041 012076
A=011002 B=012025 C=012033 D=012041 E=012076
# Only own data at A, so that A must ask the others; B..E replicate all.
FED_EXTRA="--replicate 011002/*"
fed_start $A $B
FED_EXTRA=""
fed_start $B $A $C
fed_start $C $B $D
fed_start $D $C $E
fed_start $E $D $B

pub() {   # member city
	"$MUSUBI" publish --dir "$(fed_dir "$1")" --dataset evacuation_sites --schema gsi_evacuation_site@1 \
		"$DATA/evacuation_sites/$1_$2_gsi.csv" >/dev/null
}
pub $A sapporo
pub $B hakodate
pub $C otaru
pub $D asahikawa
pub $E obihiro
for city in 012025_hakodate 012041_asahikawa 012076_obihiro; do
	"$MUSUBI" publish --dir "$(fed_dir "${city%%_*}")" --dataset addresses --schema address@1 \
		"$DATA/addresses/$city.csv" >/dev/null
done
for id in $B $C $D $E; do
	fed_wait_rows "$id" 012076/evacuation_sites 120 30
done
fed_wait_rows $B 012076/addresses 1580 30

# The reference: the same CSV files in one sqlite3 database, typed as the
# schemas type them (flags "1"/"" are 1/NULL, coordinates are numbers).
python3 - "$DATA" "$WORK/ref.db" <<'PY'
import csv, sqlite3, sys
data, db = sys.argv[1], sys.argv[2]
con = sqlite3.connect(db)
cities = {"011002": "sapporo", "012025": "hakodate", "012033": "otaru", "012041": "asahikawa", "012076": "obihiro"}
flags = ["洪水", "崖崩れ、土石流及び地滑り", "高潮", "地震", "津波", "大規模な火事", "内水氾濫", "火山現象", "指定避難所との住所同一"]
rows = []
for code, city in cities.items():
    with open(f"{data}/evacuation_sites/{code}_{city}_gsi.csv", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            rows.append(r | {"_publisher": code})
cols = list(rows[0].keys())
con.execute("CREATE TABLE evacuation_sites (" + ", ".join(f'"{c}"' for c in cols) + ")")
def val(c, v):
    if v == "": return None
    if c in flags: return 1 if v == "1" else None
    if c in ("緯度", "経度"): return float(v)
    return v
con.executemany("INSERT INTO evacuation_sites VALUES (" + ",".join("?" * len(cols)) + ")",
                [[val(c, r[c]) for c in cols] for r in rows])
arows = []
for code, city in (("012025", "hakodate"), ("012041", "asahikawa"), ("012076", "obihiro")):
    with open(f"{data}/addresses/{code}_{city}.csv", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            arows.append(r | {"_publisher": code})
acols = list(arows[0].keys())
con.execute("CREATE TABLE addresses (" + ", ".join(f'"{c}"' for c in acols) + ")")
con.executemany("INSERT INTO addresses VALUES (" + ",".join("?" * len(acols)) + ")",
                [[(float(r[c]) if c in ("緯度", "経度") and r[c] else (r[c] or None)) for c in acols] for r in arows])
con.commit()
PY

NODE="tcp://127.0.0.1:$(fed_port $A)"
Q() {   # musubi query at A, as CSV
	"$MUSUBI" query --node "$NODE" --dir "$(fed_dir $A)" --format csv --timeout 60000 "$@"
}
same() {   # SQL: the federation's answer equals sqlite3's
	Q "$1" >"$WORK/got.csv" 2>"$WORK/got.err" || { fail "query failed: $1"; cat "$WORK/got.err" >&2; return; }
	python3 - "$WORK/ref.db" "$1" "$WORK/got.csv" <<'PY' || fail "differs from sqlite3: $1"
import csv, sqlite3, sys
con = sqlite3.connect(sys.argv[1])
def norm(v):
    if v is None or v == "": return ""
    try:
        f = float(v)
        return repr(round(f, 9))
    except ValueError:
        return str(v)
want = [[norm(v) for v in r] for r in con.execute(sys.argv[2])]
got = [[norm(v) for v in r] for r in list(csv.reader(open(sys.argv[3], encoding="utf-8")))[1:]]
ordered = "ORDER BY" in sys.argv[2].upper()
if not ordered:
    want.sort(); got.sort()
if want != got:
    print("want", want[:5], "\ngot ", got[:5], file=sys.stderr)
    sys.exit(1)
PY
}

same "SELECT _publisher, count(*), sum(津波), count(津波) FROM evacuation_sites GROUP BY _publisher"
same "SELECT 施設・場所名, 住所 FROM evacuation_sites WHERE 津波 = 1 AND 緯度 > 41.8 ORDER BY 緯度 DESC, 施設・場所名 LIMIT 7"
same "SELECT DISTINCT 都道府県名及び市町村名 FROM evacuation_sites"
same "SELECT count(*) FROM evacuation_sites WHERE 備考 IS NULL"
same "SELECT count(*) FROM evacuation_sites WHERE 施設・場所名 LIKE '%小学校'"
same "SELECT 施設・場所名 FROM evacuation_sites WHERE 施設・場所名 >= 'も' AND 施設・場所名 < 'や' ORDER BY 施設・場所名 LIMIT 10"
same "SELECT e._publisher, count(DISTINCT e.共通ID), (SELECT count(*) FROM addresses a WHERE a._publisher = e._publisher) FROM evacuation_sites e GROUP BY e._publisher"
same "SELECT a.町丁目, count(*) FROM evacuation_sites e JOIN addresses a ON e._publisher = a._publisher AND e.住所 LIKE '%' || a.町丁目 || '%' WHERE e._publisher = '012076' GROUP BY a.町丁目 ORDER BY 2 DESC, 1 LIMIT 5"
same "SELECT max(緯度), min(経度), avg(緯度) FROM evacuation_sites WHERE _publisher IN ('012025', '012033')"

# A table larger than one scan reply comes in pages, from one head.
"$GENCSV" 45000 >"$WORK/big.csv"
"$MUSUBI" publish --dir "$(fed_dir $D)" --dataset sites --schema "$SRC/tests/bench/bench_schema.json" \
	"$WORK/big.csv" >/dev/null
Q --explain "SELECT count(*), sum(収容人数), count(DISTINCT code) FROM sites" >"$WORK/out" 2>"$WORK/err" ||
	{ fail "paged scan failed"; cat "$WORK/err" "$WORK/fed/012041.log" "$WORK/fed/011002.log" >&2; }
python3 - "$WORK/big.csv" "$WORK/out" <<'PY' || fail "the paged scan lost or repeated rows"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1], encoding="utf-8")))
want = f"{len(rows)},{sum(int(r['収容人数']) for r in rows)},{len(set(r['code'] for r in rows))}"
got = open(sys.argv[2], encoding="utf-8").read().splitlines()[1]
sys.exit(0 if got == want else print("want", want, "got", got) or 1)
PY

# Pushdown: the plan names what went to each node.
Q --explain "SELECT count(*) FROM evacuation_sites WHERE _publisher = '012033' AND 津波 = 1" \
	>"$WORK/out" 2>"$WORK/err"
expect_in "$WORK/err" "WHERE pushed down: _publisher = 012033 AND 津波 = 1"
expect_in "$WORK/err" "evacuation_sites: publisher 012033 -> 012033 (publisher)"

# A manifest, then new data, then --as-of gives the old answer again.
Q --manifest "$WORK/m1.json" "SELECT count(*) FROM evacuation_sites" >"$WORK/r1.csv" 2>/dev/null
head -n 101 "$DATA/evacuation_sites/012033_otaru_gsi.csv" >/dev/null
"$MUSUBI" publish --dir "$(fed_dir $C)" --dataset evacuation_sites --schema gsi_evacuation_site@1 \
	"$DATA/evacuation_sites/012068_kushiro_gsi.csv" >/dev/null 2>&1 || true
head -n 21 "$DATA/evacuation_sites/012033_otaru_gsi.csv" >"$WORK/otaru20.csv"
"$MUSUBI" publish --dir "$(fed_dir $C)" --dataset evacuation_sites --schema gsi_evacuation_site@1 \
	"$WORK/otaru20.csv" >/dev/null
sleep 1
Q "SELECT count(*) FROM evacuation_sites" >"$WORK/r2.csv" 2>/dev/null
cmp -s "$WORK/r1.csv" "$WORK/r2.csv" && fail "new data should change the count"
Q --as-of "$WORK/m1.json" >"$WORK/r3.csv" 2>"$WORK/err" || { fail "--as-of failed"; cat "$WORK/err" >&2; }
cmp -s "$WORK/r1.csv" "$WORK/r3.csv" || fail "--as-of should reproduce the first answer"

# A stopped publisher node, which A does not replicate: partial, named.
fed_stop $E
Q --timeout 8000 "SELECT _publisher, count(*) FROM evacuation_sites GROUP BY 1" >"$WORK/out" \
	2>"$WORK/err" || fail "a partial query should still answer"
expect_in "$WORK/err" "PARTIAL RESULT"
expect_in "$WORK/err" "evacuation_sites of 012076"
grep -q "^012076," "$WORK/out" && fail "012076 rows cannot be there"
expect_status 1 Q --timeout 8000 --require-all "SELECT count(*) FROM evacuation_sites"
expect_in "$WORK/err" "require-all"

# The same question at B, which replicates E: the replica answers for it.
"$MUSUBI" query --node "tcp://127.0.0.1:$(fed_port $B)" --dir "$(fed_dir $B)" --format csv \
	--manifest "$WORK/m2.json" "SELECT _publisher, count(*) FROM evacuation_sites GROUP BY 1" \
	>"$WORK/out" 2>"$WORK/err"
expect_in "$WORK/out" "012076,120"
expect_in "$WORK/err" "answered by 012025 from a verified replica"
python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); assert m["complete"]; assert any(h["source"]=="replica" and h["publisher"]=="012076" for h in m["heads"])' "$WORK/m2.json" ||
	fail "the manifest should name the replica that answered for 012076"

# Queries cannot write, attach or load extensions (exit 2: the SQL is refused).
for bad in "DELETE FROM evacuation_sites" "ATTACH '/tmp/x.db' AS x" "SELECT load_extension('/tmp/x.so')" \
	"CREATE TABLE t(x)"; do
	expect_status 2 Q "$bad"
	grep -Eq "not authorized|may not be modified" "$WORK/err" || fail "no refusal for: $bad"
done
finish
