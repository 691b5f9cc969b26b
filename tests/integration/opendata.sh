#!/bin/sh
# Every real file of deploy/data that has a schema goes in through musubi
# publish (through its mapping where its layout needs one), on the node of
# the municipality it belongs to, named in a signed trust list; row counts
# and string values are checked against the source files with Python's csv
# module. Layouts that miss a required column fail naming it. Each dataset
# exports to CSV that publishes back to nothing new; older heads export as
# they were; the DCAT catalogue is read by rdflib (Debian python3-rdflib)
# and the Data Package by Python's csv and json modules. Two musubid nodes
# replicate each other: one catalogue names both publishers, each dataset
# with its own publisher, licence and signed root, and federated queries
# ask for rows valid at a date.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fed.sh"
trap 'fed_stop_all; rm -rf "$WORK"' EXIT

# rdflib comes from Debian; the python3 on PATH may be another one.
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
if ! $PY -c 'import rdflib' 2>/dev/null && [ "$(id -u)" -eq 0 ]; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-rdflib >/dev/null 2>&1 || true
fi
$PY -c 'import rdflib' 2>/dev/null || { echo "FAIL: python3-rdflib is not installed (deploy/install-deps)" >&2; exit 1; }

# ---- the federation: one anchor, one node per municipality ----
L="$WORK/trust.list"
"$MUSUBI" keygen --out "$WORK/anchor" >/dev/null
"$MUSUBI" trust init --out "$L" --anchor "$WORK/anchor/signing.pub.pem" --threshold 1 \
	--federation opendata >/dev/null
name_of() {
	case $1 in
	222127) echo 焼津市 ;; 372013) echo 高松市 ;; 010006) echo 北海道 ;; 011002) echo 札幌市 ;;
	011011) echo 札幌市中央区 ;; 012025) echo 函館市 ;; 012033) echo 小樽市 ;; 012041) echo 旭川市 ;;
	012050) echo 室蘭市 ;; 012068) echo 釧路市 ;; 012076) echo 帯広市 ;; 012084) echo 北見市 ;;
	012173) echo 江別市 ;;
	esac
}
CODES="222127 372013 010006 011002 011011 012025 012033 012041 012050 012068 012076 012084 012173"
for m in $CODES; do
	"$MUSUBI" keygen --out "$WORK/key$m" >/dev/null
	"$MUSUBI" trust add "$L" --member "$m" --name "$(name_of $m)" --key "$WORK/key$m" \
		--roles publisher >/dev/null
done
"$MUSUBI" trust sign "$L" --key "$WORK/anchor" >/dev/null
for m in $CODES; do
	expect_status 0 "$MUSUBI" init --dir "$WORK/n$m" --member "$m" --key "$WORK/key$m" --trust "$L"
done

# Rows of a source file as Python's csv module counts them (LinkData '#'
# lines are metadata).
src_rows() {
	$PY - "$1" <<'EOF'
import csv, sys
rows = [r for r in csv.reader(open(sys.argv[1], encoding="utf-8-sig", newline=""))]
print(sum(1 for r in rows[1:] if r and not r[0].startswith("#")))
EOF
}

LICENSE=https://creativecommons.org/licenses/by/4.0/
# pub CODE DATASET FILE ARGS...: publish, check the row count, keep the root.
pub() {
	code=$1 ds=$2 file=$DATA/$3
	shift 3
	expect_status 0 "$MUSUBI" publish --dir "$WORK/n$code" --dataset "$ds" --license "$LICENSE" "$@" "$file"
	rows=$(src_rows "$file")
	expect_in "$WORK/out" "$code/$ds: $rows rows read ("
	expect_in "$WORK/out" "): $rows new, 0 changed, 0 deleted"
	sed -n 's/.*root \([0-9a-f]*\)$/\1/p' "$WORK/out" >"$WORK/root.$code.$ds"
	echo "$code $ds $rows $file $*" >>"$WORK/published"
}

: >"$WORK/published"
pub 222127 aed aed/222127_yaizu.csv --schema aed@1
pub 222127 evacuation_space evacuation_sites/222127_yaizu.csv --mapping yaizu-to-evacuation_space
pub 222127 designated_shelters designated_shelters/222127_yaizu.csv --schema yaizu_shelter@1
pub 222127 public_toilet public_toilet/222127_yaizu.csv --schema public_toilet@2
pub 222127 fire_hydrant fire_hydrant/222127_yaizu.csv --schema fire_hydrant@2
pub 222127 public_wireless_lan public_wireless_lan/222127_yaizu.csv --schema public_wireless_lan@1
pub 222127 child_care_facility child_care_facility/222127_yaizu.csv --mapping yaizu-to-child_care_facility
pub 222127 tourism tourism/222127_yaizu.csv --schema tourism@1 --ignore-extra-columns
pub 010006 patients covid19/010006_hokkaido_patients_20200329.csv --schema covid19_hokkaido_patients@1
pub 010006 patients_early covid19/010006_hokkaido_patients_raw_20200309.csv \
	--mapping hokkaido-patients-raw-to-covid19_hokkaido_patients
# the same two files onto the 項目定義書's 陽性患者属性 (covid19_patients@2)
pub 010006 covid19_patients covid19/010006_hokkaido_patients_20200329.csv \
	--mapping hokkaido-patients-to-covid19_patients
pub 010006 covid19_patients_early covid19/010006_hokkaido_patients_raw_20200309.csv \
	--mapping hokkaido-patients-raw-to-covid19_patients
for f in "$DATA"/evacuation_sites/*_gsi.csv; do
	b=$(basename "$f")
	pub "${b%%_*}" evacuation_sites "evacuation_sites/$b" --schema gsi_evacuation_site@1
	# the same file onto the standard, through its mapping (evacuation_space@2)
	pub "${b%%_*}" evacuation_space "evacuation_sites/$b" --mapping gsi-to-evacuation_space
done
pub 372013 evacuation_space evacuation_sites/372013_takamatsu_nonstandard.csv \
	--mapping takamatsu-linkdata-to-evacuation_space
pub 372013 aed aed/372013_takamatsu_nonstandard.csv --mapping takamatsu-linkdata-to-aed
for f in "$DATA"/designated_shelters/*_gsi.csv; do
	b=$(basename "$f")
	pub "${b%%_*}" designated_shelters "designated_shelters/$b" --schema gsi_designated_shelter@1
done
for f in "$DATA"/addresses/*.csv; do
	b=$(basename "$f")
	pub "${b%%_*}" address "addresses/$b" --schema address@2
done
[ "$(wc -l <"$WORK/published")" -eq 46 ] || fail "$(wc -l <"$WORK/published") files published, wanted 46"
for code in 011002 372013; do
	"$MUSUBI" status --dir "$WORK/n$code" --json >"$WORK/st.json"
	[ "$(json_field "$WORK/st.json" '[x["schema"] for x in d["datasets"] if x["dataset"].endswith("/evacuation_space")][0]')" = evacuation_space@2 ] ||
		fail "$code/evacuation_space is not under evacuation_space@2"
done

# ---- layouts @1 of the standard cannot take: actionable errors ----
expect_status 1 "$MUSUBI" publish --dir "$WORK/n011002" --dataset evac_v1 --schema evacuation_space@1 \
	--mapping gsi-to-evacuation_space "$DATA/evacuation_sites/011002_sapporo_gsi.csv"
expect_in "$WORK/err" "required field \"名称_カナ\" of schema evacuation_space@1, and mapping gsi-to-evacuation_space makes none"
expect_in "$WORK/err" "required field \"電話番号\""
expect_status 1 "$MUSUBI" publish --dir "$WORK/n372013" --dataset aed_v1 --schema aed@1 \
	--mapping takamatsu-linkdata-to-aed "$DATA/aed/372013_takamatsu_nonstandard.csv"
expect_in "$WORK/err" "required field \"名称_カナ\" of schema aed@1"
expect_in "$WORK/err" "column 4: field \"設置位置\": value is required"
expect_status 1 "$MUSUBI" publish --dir "$WORK/n372013" --dataset evac_v1 --schema evacuation_space@1 \
	--mapping takamatsu-linkdata-to-evacuation_space "$DATA/evacuation_sites/372013_takamatsu_nonstandard.csv"
expect_in "$WORK/err" "required field \"名称_カナ\""
# Without its mapping the LinkData file is refused at its first line.
expect_status 1 "$MUSUBI" publish --dir "$WORK/n372013" --dataset aed_v1 --schema aed@1 \
	"$DATA/aed/372013_takamatsu_nonstandard.csv"
expect_in "$WORK/err" "column \"#LINK\" is not a field of schema aed@1"
# Yaizu's ○ flags without the mapping: the value, line and column.
expect_status 1 "$MUSUBI" publish --dir "$WORK/n222127" --dataset evac2 --schema evacuation_space@1 \
	"$DATA/evacuation_sites/222127_yaizu.csv"
expect_in "$WORK/err" "line 2, column 17: field \"災害種別_地震\": \"○\" is not one of the allowed values"
expect_status 1 "$MUSUBI" publish --dir "$WORK/n222127" --dataset x --mapping no-such-mapping \
	"$DATA/aed/222127_yaizu.csv"
expect_in "$WORK/err" "no built-in mapping is named \"no-such-mapping\""

# ---- values against the source files ----
# Every string field of every directly published file, row by row by key.
while read -r code ds rows file args; do
	case "$args" in *--mapping*) continue ;; esac
	"$MUSUBI" export --dir "$WORK/n$code" --dataset "$code/$ds" --out "$WORK/exp.csv" ||
		fail "export $code/$ds"
	$PY - "$file" "$WORK/exp.csv" "$rows" "$SRC/registry/schemas/$(echo "$args" | sed 's/--schema \([^ ]*\).*/\1/').json" <<'EOF' || fail "values of $code/$ds differ from $file"
import csv, json, sys
src, exp, rows, schema = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.load(open(sys.argv[4]))
fields = {f["name"]: f for f in schema["fields"]}
names = {}
for f in schema["fields"]:
    for n in [f["name"]] + f.get("x-aliases", []):
        names[n] = f["name"]
pk = schema["primaryKey"] if isinstance(schema["primaryKey"], list) else [schema["primaryKey"]]
s = list(csv.DictReader(open(src, encoding="utf-8-sig", newline="")))
e = list(csv.DictReader(open(exp, encoding="utf-8", newline="")))
assert len(s) == rows == len(e), (len(s), rows, len(e))
s = [{names.get(k.strip(), k): v for k, v in r.items()} for r in s]
key = lambda r: tuple(r[k] for k in pk)
ek = {key(r): r for r in e}
checked = 0
for r in s:
    x = ek[key(r)]
    for n, f in fields.items():
        if f.get("type", "string") == "string" and n in r:
            assert r[n] == x[n], (n, r[n], x[n])
            checked += 1
assert checked > 0
EOF
done <"$WORK/published"
# The files mapped onto evacuation_space@2 and aed@2: names, addresses,
# points and flags as the source has them under its own column names.
for f in "$DATA"/evacuation_sites/*_gsi.csv "$DATA/evacuation_sites/372013_takamatsu_nonstandard.csv" \
	"$DATA/aed/372013_takamatsu_nonstandard.csv"; do
	code=$(basename "$f" | cut -c1-6)
	case "$f" in */aed/*) ds=aed ;; *) ds=evacuation_space ;; esac
	"$MUSUBI" export --dir "$WORK/n$code" --dataset "$code/$ds" --out "$WORK/exp.csv" || fail "export $code/$ds"
	$PY - "$f" "$WORK/exp.csv" <<'EOF' || fail "values of $code/$ds differ from $f"
import csv, sys, unicodedata
src, exp = sys.argv[1], sys.argv[2]
rows = list(csv.reader(open(src, encoding="utf-8-sig", newline="")))
if rows[0][0].startswith("#"):      # LinkData: the header is the #property line
    head = next(r for r in rows if r[0] == "#property")
    data = [dict(zip(head, r)) for r in rows if r and not r[0].startswith("#")]
    key, name, addr, flags = "#property", "name", "address", {"earthquake": "災害種別_地震", "fire": "災害種別_大規模な火事"}
else:
    data = list(csv.DictReader(open(src, encoding="utf-8-sig", newline="")))
    key, name, addr, flags = "共通ID", "施設・場所名", "住所", {"地震": "災害種別_地震", "津波": "災害種別_津波", "洪水": "災害種別_洪水"}
e = {r["NO"]: r for r in csv.DictReader(open(exp, encoding="utf-8", newline=""))}
assert len(e) == len(data), (len(e), len(data))
fold = lambda s: unicodedata.normalize("NFKC", s).strip() if s.strip() else ""
for r in data:
    x = e[r[key].strip()]
    assert x["名称"] == r[name].strip(), (x["名称"], r[name])
    assert fold(x["住所"]) == fold(r[addr]), (x["住所"], r[addr])
    if "location" in r:
        lat, lon = r["location"].split(",")
        assert float(x["緯度"]) == float(lat) and float(x["経度"]) == float(lon)
    else:
        assert float(x["緯度"]) == float(r["緯度"]) and float(x["経度"]) == float(r["経度"])
    if "aed" not in src:
        for s, t in flags.items():
            assert x[t] == ("1" if r[s].strip() in ("1", "○") else ""), (t, x[t], r[s])
EOF
done

# ---- round trips: export, publish again, nothing appended ----
while read -r code ds rows file args; do
	"$MUSUBI" export --dir "$WORK/n$code" --dataset "$code/$ds" --out "$WORK/rt.csv" ||
		fail "export $code/$ds"
	case "$args" in
	*gsi-to-evacuation_space* | *takamatsu-linkdata-to-evacuation_space*) spec=evacuation_space@2 ;;
	*takamatsu-linkdata-to-aed*) spec=aed@2 ;;
	*evacuation_space*) spec=evacuation_space@1 ;;
	*child_care*) spec=child_care_facility@1 ;;
	*-to-covid19_patients*) spec=covid19_patients@2 ;;
	*hokkaido-patients*) spec=covid19_hokkaido_patients@1 ;;
	*) spec=$(echo "$args" | sed 's/--schema \([^ ]*\).*/\1/') ;;
	esac
	expect_status 0 "$MUSUBI" publish --dir "$WORK/n$code" --dataset "$ds" --schema "$spec" "$WORK/rt.csv"
	expect_in "$WORK/out" "0 new, 0 changed, 0 deleted, $rows unchanged"
	expect_in "$WORK/out" "nothing to append"
done <"$WORK/published"

# ---- dry run and an older head ----
Y="$WORK/n222127"
"$MUSUBI" export --dir "$Y" --dataset 222127/aed --out "$WORK/aed.v1.csv"
sed -e 's/市役所本館/市役所本館(改修中)/' -e '$d' "$DATA/aed/222127_yaizu.csv" >"$WORK/aed2.csv"
printf '222127,0000000099,静岡県,焼津市,新施設,シンシセツ,焼津市本町1-1,,34.87,138.32,入口,,,,,,,,,,,\n' >>"$WORK/aed2.csv"
expect_status 0 "$MUSUBI" publish --dir "$Y" --dataset aed --schema aed@1 --dry-run "$WORK/aed2.csv"
expect_in "$WORK/out" "1 new, 2 changed, 1 deleted"
expect_in "$WORK/out" "new, for example: 0000000099"
expect_in "$WORK/out" "changed, for example: 0000000001; 0000000002"
expect_in "$WORK/out" "deleted, for example: 0000300025"
expect_status 0 "$MUSUBI" publish --dir "$Y" --dataset aed --schema aed@1 "$WORK/aed2.csv"
expect_in "$WORK/out" "log 82 -> 86 entries"
sed -n 's/.*root \([0-9a-f]*\)$/\1/p' "$WORK/out" >"$WORK/root.222127.aed"
expect_status 0 "$MUSUBI" export --dir "$Y" --dataset 222127/aed --as-of 82 --out "$WORK/aed.asof.csv"
cmp -s "$WORK/aed.v1.csv" "$WORK/aed.asof.csv" || fail "export --as-of 82 differs from the export at 82"
expect_status 1 "$MUSUBI" export --dir "$Y" --dataset 222127/aed --as-of 83
expect_in "$WORK/err" "no signed head at size 83"
expect_status 0 "$MUSUBI" export --dir "$Y" --dataset 222127/aed --format geojson --out "$WORK/aed.geojson"
[ "$(json_field "$WORK/aed.geojson" 'len(d["features"])')" = 82 ] || fail "geojson features"
expect_status 0 "$MUSUBI" export --dir "$Y" --dataset 222127/aed --format jsonl --out "$WORK/aed.jsonl"
[ "$(wc -l <"$WORK/aed.jsonl")" -eq 82 ] || fail "jsonl lines"
# valid time through the command: Hakodate's towns plus one abolished
H="$WORK/n012025"
{ cat "$DATA/addresses/012025_hakodate.csv" | tr -d '\r' | sed '1s/$/,効力発生日,廃止日/;2,$s/$/,,/'
  echo "012025,北海道,函館市,旧町,,,,1970-01-01,2024-04-01"; } >"$WORK/addr.csv"
expect_status 0 "$MUSUBI" publish --dir "$H" --dataset address --schema address@2 "$WORK/addr.csv"
expect_in "$WORK/out" "1 new, 0 changed, 0 deleted, 207 unchanged"
"$MUSUBI" export --dir "$H" --dataset 012025/address --valid-at 2024-03-31 --out "$WORK/v1.csv"
"$MUSUBI" export --dir "$H" --dataset 012025/address --valid-at 2024-04-01 --out "$WORK/v2.csv"
[ "$(grep -c . "$WORK/v1.csv")" -eq 209 ] && [ "$(grep -c . "$WORK/v2.csv")" -eq 208 ] ||
	fail "valid-at exports: $(grep -c . "$WORK/v1.csv") and $(grep -c . "$WORK/v2.csv") lines"
# a foreign key into the address registry, checked at publish
cat >"$WORK/facility.json" <<'EOF'
{"name": "facility", "version": 1, "primaryKey": "ID",
 "fields": [{"name": "ID", "type": "string"}, {"name": "名称", "type": "string"},
  {"name": "市区町村コード", "type": "string"}, {"name": "町丁目", "type": "string"}],
 "foreignKeys": [{"fields": ["市区町村コード", "町丁目"],
  "reference": {"resource": "address", "fields": ["市区町村コード", "町丁目"]}}]}
EOF
printf 'ID,名称,市区町村コード,町丁目\nf1,市役所,012025,東雲町\nf2,駅,012025,存在しない町\n' >"$WORK/fac.csv"
expect_status 1 "$MUSUBI" publish --dir "$H" --dataset facility --schema "$WORK/facility.json" "$WORK/fac.csv"
expect_in "$WORK/err" "line 3, column 3: fields \"市区町村コード, 町丁目\": value \"012025,存在しない町\": no such key in any publisher's address"

# ---- DCAT: parsed by rdflib ----
for code in 222127 010006 012025; do
	expect_status 0 "$MUSUBI" export --dir "$WORK/n$code" --catalog dcat \
		--base-url "https://$code.example/musubi/" --out "$WORK/dcat.$code.jsonld"
done
$PY - "$WORK" "$LICENSE" <<'EOF' || fail "DCAT catalogues as rdflib reads them"
import sys, os
from rdflib import Graph, Namespace, URIRef, Literal
from rdflib.namespace import RDF, DCTERMS, FOAF
DCAT = Namespace("http://www.w3.org/ns/dcat#")
SPDX = Namespace("http://spdx.org/rdf/terms#")
work, lic = sys.argv[1], sys.argv[2]
want = {"222127": ("焼津市", {"aed", "evacuation_space", "designated_shelters", "public_toilet",
                           "fire_hydrant", "public_wireless_lan", "child_care_facility", "tourism"}),
        "010006": ("北海道", {"patients", "patients_early", "covid19_patients", "covid19_patients_early"}),
        "012025": ("函館市", {"evacuation_sites", "evacuation_space", "designated_shelters", "address"})}
published = {}
for line in open(os.path.join(work, "published")):
    code, ds = line.split()[:2]
    published[(code, ds)] = open(os.path.join(work, "root.%s.%s" % (code, ds))).read().strip()
for code, (name, names) in want.items():
    g = Graph()
    g.parse(os.path.join(work, "dcat.%s.jsonld" % code), format="json-ld")
    cats = list(g.subjects(RDF.type, DCAT.Catalog))
    assert len(cats) == 1, cats
    found = set()
    for d in g.subjects(RDF.type, DCAT.Dataset):
        assert (cats[0], DCAT.dataset, d) in g
        ident = str(g.value(d, DCTERMS.identifier))
        member, ds = ident.split("/")
        assert member == code, ident
        found.add(ds)
        pub = g.value(d, DCTERMS.publisher)
        assert (pub, RDF.type, FOAF.Agent) in g and str(g.value(pub, FOAF.name)) == name, ident
        assert g.value(d, DCTERMS.license) == URIRef(lic), ident
        assert g.value(d, DCTERMS.title) is not None and g.value(d, DCTERMS.modified) is not None
        dist = g.value(d, DCAT.distribution)
        assert str(g.value(dist, DCAT.mediaType)).endswith("text/csv")
        ck = g.value(dist, SPDX.checksum)
        root = str(g.value(ck, SPDX.checksumValue))
        if (code, ds) in published and published[(code, ds)]:
            # the newest head; the address of 012025 was published twice
            assert ds == "address" or root == published[(code, ds)], (ident, root)
        assert len(root) == 64
    assert found == names, (code, found, names)
    # the GSI sites have points: a bounding box in Hakodate
    if code == "012025":
        d = URIRef("https://012025.example/musubi/dataset/012025/evacuation_sites")
        bbox = str(g.value(g.value(d, DCTERMS.spatial), DCAT.bbox))
        assert bbox.startswith("POLYGON((140.") and " 41." in bbox, bbox
    if code == "010006":
        d = URIRef("https://010006.example/musubi/dataset/010006/patients")
        t = g.value(d, DCTERMS.temporal)
        assert str(g.value(t, DCAT.startDate)).startswith("2020-01-28"), list(g.predicate_objects(t))
EOF

# ---- Data Package: read back with csv and json ----
expect_status 0 "$MUSUBI" export --dir "$Y" --catalog datapackage --out "$WORK/pkg"
$PY - "$WORK/pkg" <<'EOF' || fail "the Data Package as csv and json read it"
import csv, hashlib, json, os, sys
d = sys.argv[1]
pkg = json.load(open(os.path.join(d, "datapackage.json")))
assert pkg["profile"] == "tabular-data-package"
res = {r["name"]: r for r in pkg["resources"]}
assert len(res) == 8, sorted(res)
for r in res.values():
    path = os.path.join(d, r["path"])
    raw = open(path, "rb").read()
    assert r["hash"] == "sha256:" + hashlib.sha256(raw).hexdigest()
    rows = list(csv.DictReader(open(path, encoding="utf-8", newline="")))
    assert len(rows) == r["musubi"]["rows"], (r["name"], len(rows))
    assert list(rows[0].keys()) == [f["name"] for f in r["schema"]["fields"]]
    pk = r["schema"]["primaryKey"]
    pk = pk if isinstance(pk, list) else [pk]
    assert len({tuple(x[k] for k in pk) for x in rows}) == len(rows)
assert res["222127_aed"]["musubi"]["rows"] == 82   # the v2 file: 82 - 1 + 1
assert res["222127_tourism"]["musubi"]["rows"] == 205
EOF

# ---- two publishers in one store: replication, one catalogue ----
fed_init 222127 012025
FY=$(fed_dir 222127) FH=$(fed_dir 012025)
LIC_H=https://creativecommons.org/licenses/by/2.1/jp/
expect_status 0 "$MUSUBI" publish --dir "$FY" --dataset aed --schema aed@1 --license "$LICENSE" \
	"$DATA/aed/222127_yaizu.csv"
sed -n 's/.*root \([0-9a-f]*\)$/\1/p' "$WORK/out" >"$WORK/fedroot.222127.aed"
expect_status 0 "$MUSUBI" publish --dir "$FH" --dataset address --schema address@2 --license "$LIC_H" \
	"$WORK/addr.csv"
sed -n 's/.*root \([0-9a-f]*\)$/\1/p' "$WORK/out" >"$WORK/fedroot.012025.address"
expect_status 0 "$MUSUBI" publish --dir "$FH" --dataset evacuation_space --license "$LIC_H" \
	--mapping gsi-to-evacuation_space "$DATA/evacuation_sites/012025_hakodate_gsi.csv"
sed -n 's/.*root \([0-9a-f]*\)$/\1/p' "$WORK/out" >"$WORK/fedroot.012025.evacuation_space"
fed_start 222127 012025
fed_start 012025 222127
fed_wait_rows 012025 222127/aed 82 60
fed_wait_rows 222127 012025/address 208 60
fed_wait_rows 222127 012025/evacuation_space 241 60
expect_status 0 "$MUSUBI" export --dir "$FH" --catalog dcat --base-url https://hakodate.example/musubi/ \
	--out "$WORK/dcat.fed.jsonld"
$PY - "$WORK" "$LICENSE" "$LIC_H" <<'EOF' || fail "the two-publisher DCAT catalogue as rdflib reads it"
import os, sys
from rdflib import Graph, Namespace
from rdflib.namespace import RDF, DCTERMS, FOAF
DCAT = Namespace("http://www.w3.org/ns/dcat#")
SPDX = Namespace("http://spdx.org/rdf/terms#")
work, lic_y, lic_h = sys.argv[1:4]
g = Graph()
g.parse(os.path.join(work, "dcat.fed.jsonld"), format="json-ld")
want = {"222127/aed": ("member 222127", lic_y), "012025/address": ("member 012025", lic_h),
        "012025/evacuation_space": ("member 012025", lic_h)}
found = {}
for d in g.subjects(RDF.type, DCAT.Dataset):
    ident = str(g.value(d, DCTERMS.identifier))
    pub = g.value(d, DCTERMS.publisher)
    assert (pub, RDF.type, FOAF.Agent) in g, ident
    ck = g.value(g.value(d, DCAT.distribution), SPDX.checksum)
    found[ident] = (str(g.value(pub, FOAF.name)), str(g.value(d, DCTERMS.license)),
                    str(g.value(ck, SPDX.checksumValue)), pub)
assert set(found) >= set(want), sorted(found)
for ident, (name, lic) in want.items():
    root = open(os.path.join(work, "fedroot." + ident.replace("/", "."))).read().strip()
    assert len(root) == 64 and found[ident][:3] == (name, lic, root), (ident, found[ident], name, lic, root)
# two publishers, two agents
assert found["222127/aed"][3] != found["012025/address"][3]
assert found["012025/address"][3] == found["012025/evacuation_space"][3]
EOF
# Federated queries for a day: 旧町 was abolished on 2024-04-01. Asked at
# Yaizu's node, Hakodate's node answers for its rows; with --local,
# Yaizu's replica does. aed marks no valid time: every row.
for local in "" --local; do
	for day in 2024-03-31:208:1 2024-04-01:207:0; do
		expect_status 0 "$MUSUBI" query --node "tcp://127.0.0.1:$(fed_port 222127)" --dir "$FY" \
			$local --format csv --valid-at "${day%%:*}" "SELECT 町丁目 FROM address"
		want=${day#*:}
		[ "$(($(wc -l <"$WORK/out") - 1))" = "${want%%:*}" ] && [ "$(tr -d '\r' <"$WORK/out" | grep -cx 旧町)" = "${want#*:}" ] ||
			fail "query $local --valid-at ${day%%:*}: $(($(wc -l <"$WORK/out") - 1)) rows, wanted ${want%%:*} (旧町 ${want#*:} times)"
	done
	expect_status 0 "$MUSUBI" query --node "tcp://127.0.0.1:$(fed_port 222127)" --dir "$FY" \
		$local --format csv --valid-at 2024-04-01 "SELECT NO FROM aed"
	[ "$(wc -l <"$WORK/out")" -eq 83 ] || fail "aed with --valid-at: $(wc -l <"$WORK/out") lines"
done
fed_stop_all

finish
