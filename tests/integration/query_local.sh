#!/bin/sh
# musubi query on a data directory: every output format read back by a
# real parser, manifests and --as-of, refusals, standard input and the shell.
. "$(dirname "$0")/lib.sh"

N="$WORK/node"
expect_status 0 "$MUSUBI" query --help
expect_in "$WORK/out" "usage: musubi query"
"$MUSUBI" keygen --out "$WORK/keys" >/dev/null
"$MUSUBI" init --dir "$N" --member 012025 --key "$WORK/keys" >/dev/null
"$MUSUBI" publish --dir "$N" --dataset evacuation_sites --schema gsi_evacuation_site@1 \
	"$DATA/evacuation_sites/012025_hakodate_gsi.csv" >/dev/null
"$MUSUBI" publish --dir "$N" --dataset designated_shelters --schema gsi_designated_shelter@1 \
	"$DATA/designated_shelters/012025_hakodate_gsi.csv" >/dev/null
"$MUSUBI" publish --dir "$N" --dataset aed --schema aed@1 "$DATA/aed/222127_yaizu.csv" >/dev/null

# table: aligned by display width, Japanese two cells wide; heads on stderr.
expect_status 0 "$MUSUBI" query --dir "$N" \
	'SELECT "施設・場所名", NO, 備考 FROM evacuation_sites ORDER BY NO LIMIT 5'
expect_in "$WORK/out" "(5 rows)"
expect_in "$WORK/err" "answered from 1 signed head"
expect_in "$WORK/err" "012025/evacuation_sites  241"
python3 - "$WORK/out" <<'EOF' || fail "table columns are not aligned by display width"
import sys, unicodedata
def width(s):
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()[:-1]
starts = set()
for line in lines:
    if line.startswith("─"):
        continue
    first = line.split("  ")[0]
    rest = line[len(first):]
    starts.add(width(first) + len(rest) - len(rest.lstrip(" ")))
assert len(starts) == 1 and any("市営" in l or "団地" in l or "町" in l for l in lines), starts
EOF

# csv: RFC 4180, read back by python's csv module, quotes and line breaks intact.
expect_status 0 "$MUSUBI" query --dir "$N" --format csv \
	"SELECT *, 'a,\"b\"' || char(10) || 'c' AS tricky, '' AS empty FROM evacuation_sites"
python3 - "$WORK/out" <<'EOF' || fail "csv output does not parse back"
import csv, sys
rows = list(csv.reader(open(sys.argv[1], encoding="utf-8", newline="")))
head, data = rows[0], rows[1:]
assert head[:3] == ["全国地方公共団体コード", "NO", "共通ID"], head
assert "_publisher" in head and "_hash" in head, head
assert len(data) == 241, len(data)
t, e, p = head.index("tricky"), head.index("empty"), head.index("_publisher")
assert all(r[t] == 'a,"b"\nc' and r[e] == "" and r[p] == "012025" for r in data)
assert all(len(r[head.index("_hash")]) == 64 for r in data)
EOF

# jsonl: one object a line, values typed.
expect_status 0 "$MUSUBI" query --dir "$N" --format jsonl \
	'SELECT NO, "施設・場所名", 津波, 緯度, 備考 FROM evacuation_sites'
python3 - "$WORK/out" <<'EOF' || fail "jsonl output is not typed JSON lines"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
assert len(rows) == 241
assert all(isinstance(r["NO"], int) and isinstance(r["緯度"], float) and r["備考"] is None for r in rows)
assert {r["津波"] for r in rows} <= {1, None}
EOF

# geojson: a FeatureCollection; rows without coordinates are counted out.
expect_status 0 "$MUSUBI" query --dir "$N" --format geojson \
	'SELECT 名称, CASE WHEN _seq % 4 <> 0 THEN 緯度 END AS 緯度, 経度 FROM aed'
expect_in "$WORK/err" "21 rows without valid coordinates left out of the GeoJSON"
python3 - "$WORK/out" <<'EOF' || fail "geojson output is not the expected FeatureCollection"
import json, sys
d = json.load(open(sys.argv[1], encoding="utf-8"))
assert d["type"] == "FeatureCollection" and len(d["features"]) == 82 - 21, len(d["features"])
f = d["features"][0]
assert f["geometry"]["type"] == "Point" and "名称" in f["properties"] and "緯度" not in f["properties"]
lon, lat = f["geometry"]["coordinates"]
assert 138 < lon < 139 and 34 < lat < 35
EOF
expect_status 2 "$MUSUBI" query --dir "$N" --format geojson 'SELECT 名称 FROM aed'
expect_in "$WORK/err" "GeoJSON needs coordinates"

# SQL from standard input when it is not a terminal.
echo 'SELECT COUNT(*) AS n FROM aed' | "$MUSUBI" query --dir "$N" --format csv >"$WORK/out" 2>/dev/null
[ "$(tail -n 1 "$WORK/out" | tr -d '\r')" = 82 ] || fail "SQL from standard input"

# Manifest, a new publish, then --as-of gives the old answer again.
Q='SELECT 津波, COUNT(*) AS n FROM evacuation_sites GROUP BY 1 ORDER BY 1'
expect_status 0 "$MUSUBI" query --dir "$N" --format csv --manifest "$WORK/m1.json" "$Q"
cp "$WORK/out" "$WORK/before.csv"
[ "$(json_field "$WORK/m1.json" 'd["heads"][0]["head_size"]')" = 241 ] || fail "manifest head size"
[ "$(json_field "$WORK/m1.json" 'd["query"]')" = "$Q" ] || fail "manifest query text"
head -n 200 "$DATA/evacuation_sites/012025_hakodate_gsi.csv" >"$WORK/less.csv"
"$MUSUBI" publish --dir "$N" --dataset evacuation_sites --schema gsi_evacuation_site@1 "$WORK/less.csv" >/dev/null
expect_status 0 "$MUSUBI" query --dir "$N" --format csv "$Q"
cmp -s "$WORK/out" "$WORK/before.csv" && fail "the new publish should change the answer"
expect_status 0 "$MUSUBI" query --dir "$N" --format csv --as-of "$WORK/m1.json" --manifest "$WORK/m2.json"
cmp -s "$WORK/out" "$WORK/before.csv" || fail "--as-of does not reproduce the answer"
expect_in "$WORK/err" "012025/evacuation_sites  241"
[ "$(json_field "$WORK/m2.json" 'd["heads"]')" = "$(json_field "$WORK/m1.json" 'd["heads"]')" ] ||
	fail "the re-run's manifest names other heads"
# A manifest whose root this node's log does not give is refused.
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["heads"][0]["root"]="00"*32; json.dump(d, open(sys.argv[2], "w"))' \
	"$WORK/m1.json" "$WORK/bad.json"
expect_status 1 "$MUSUBI" query --dir "$N" --as-of "$WORK/bad.json"
expect_in "$WORK/err" "the logs differ"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["heads"][0]["dataset"]="012025/nosuch"; json.dump(d, open(sys.argv[2], "w"))' \
	"$WORK/m1.json" "$WORK/nosuch.json"
expect_status 1 "$MUSUBI" query --dir "$N" --as-of "$WORK/nosuch.json"
expect_in "$WORK/err" "this node holds no dataset 012025/nosuch"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["heads"][0]["head_size"]=100; json.dump(d, open(sys.argv[2], "w"))' \
	"$WORK/m1.json" "$WORK/nohead.json"
expect_status 1 "$MUSUBI" query --dir "$N" --as-of "$WORK/nohead.json"
expect_in "$WORK/err" "012025/evacuation_sites has no signed head at size 100"

# Refused: writes, several statements, bad SQL; stopped: the time limit.
expect_status 1 "$MUSUBI" query --dir "$N" 'DELETE FROM aed'
expect_in "$WORK/err" "not authorized"
expect_status 1 "$MUSUBI" query --dir "$N" "ATTACH DATABASE '$WORK/x.db' AS x"
[ -e "$WORK/x.db" ] && fail "ATTACH created a file"
expect_status 2 "$MUSUBI" query --dir "$N" 'SELECT 1; SELECT 2'
expect_in "$WORK/err" "one statement only"
expect_status 2 "$MUSUBI" query --dir "$N" 'SELECT nosuch FROM aed'
expect_in "$WORK/err" "no such column: nosuch"
expect_status 1 "$MUSUBI" query --dir "$N" --timeout 200 \
	'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT COUNT(*) FROM c'
expect_in "$WORK/err" "query exceeded its time limit of 200 ms"

# The shell on a terminal: .tables, a statement over two lines, history.
mkdir "$WORK/home"
python3 - "$MUSUBI" "$N" "$WORK/home" >"$WORK/shell.out" <<'EOF' || fail "the shell did not run"
import os, pty, select, sys, time
musubi, node, home = sys.argv[1:4]
pid, fd = pty.fork()
if pid == 0:
    os.environ["HOME"] = home
    os.execv(musubi, [musubi, "query", "--dir", node])
out = b""
def drain():
    # until the next prompt, or the end
    global out
    start, end = len(out), time.time() + 10
    while time.time() < end and not out[start:].endswith(b"> "):
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                out += os.read(fd, 65536)
            except OSError:
                return
for line in (".tables", "SELECT COUNT(*) AS n", "FROM designated_shelters;", ".quit"):
    drain()
    os.write(fd, (line + "\n").encode())
drain()
os.waitpid(pid, 0)
sys.stdout.write(out.decode("utf-8", "replace"))
EOF
expect_in "$WORK/shell.out" "evacuation_sites"
expect_in "$WORK/shell.out" "designated_shelters  1"
expect_in "$WORK/shell.out" "150"
expect_in "$WORK/home/.musubi_history" "designated_shelters;"

# --valid-at: Hakodate's 207 towns (no dates: always in force) under
# address@2, plus towns abolished before, on and after the day, and towns
# effective on and after it. 廃止日 is the first day no longer in force.
{ tr -d '\r' <"$DATA/addresses/012025_hakodate.csv" | sed '1s/$/,効力発生日,廃止日/;2,$s/$/,,/'
  echo "012025,北海道,函館市,旧旧町,,41.7,140.7,,2000-01-01"
  echo "012025,北海道,函館市,旧町,,41.7,140.7,1970-01-01,2024-04-01"
  echo "012025,北海道,函館市,残町,,41.7,140.7,1970-01-01,2024-04-02"
  echo "012025,北海道,函館市,今日町,,41.7,140.7,2024-04-01,"
  echo "012025,北海道,函館市,新町,,41.7,140.7,2024-04-02,"; } >"$WORK/addr.csv"
expect_status 0 "$MUSUBI" publish --dir "$N" --dataset address --schema address@2 "$WORK/addr.csv"
ADDRQ="SELECT count(*) AS n, group_concat(町丁目, ' ') AS dated FROM (SELECT 町丁目 FROM address
 WHERE 効力発生日 IS NOT NULL OR 廃止日 IS NOT NULL ORDER BY 町丁目)"
expect_status 0 "$MUSUBI" query --dir "$N" --format csv --valid-at 2024-04-01 "$ADDRQ"
expect_in "$WORK/out" "2,今日町 残町"
expect_status 0 "$MUSUBI" query --dir "$N" --format csv --valid-at 2024-03-31 \
	--manifest "$WORK/valid.json" "SELECT count(*) AS n FROM address"
expect_in "$WORK/out" "209"
[ "$(json_field "$WORK/valid.json" 'd["valid_at"]')" = 2024-03-31 ] || fail "the manifest lacks valid_at"
# --as-of re-runs the manifest's query for its day
expect_status 0 "$MUSUBI" query --dir "$N" --format csv --as-of "$WORK/valid.json"
expect_in "$WORK/out" "209"
expect_status 0 "$MUSUBI" query --dir "$N" --format csv "SELECT count(*) AS n FROM address"
expect_in "$WORK/out" "212"
# a table whose schema marks no valid time answers every row (199 since
# the shorter file above)
expect_status 0 "$MUSUBI" query --dir "$N" --format csv --valid-at 1900-01-01 \
	"SELECT count(*) AS n FROM evacuation_sites"
expect_in "$WORK/out" "199"
# the same as the SQL filter docs/QUERY.md gives
expect_status 0 "$MUSUBI" query --dir "$N" --format csv "SELECT count(*) AS n FROM address
 WHERE (効力発生日 IS NULL OR 効力発生日 <= '2024-04-01') AND (廃止日 IS NULL OR 廃止日 > '2024-04-01')"
expect_in "$WORK/out" "209"
expect_status 2 "$MUSUBI" query --dir "$N" --valid-at 2024-4-1 "SELECT 1"
expect_in "$WORK/err" "--valid-at 2024-4-1: a date as YYYY-MM-DD"

finish
