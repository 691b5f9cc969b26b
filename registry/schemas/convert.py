#!/usr/bin/env python3
"""Build the standard built-in schemas and check every real file against its schema.

Usage: convert.py [generate|check|all]   (default: all)

generate  writes <schema_id>@1.json here for the 20 standard definitions in
          deploy/data/schemas (suisho_v1 and covid19_v1, see deploy/data/SOURCES.md).
          The other *.json files here (the real layouts without a standard, and
          the @2 versions of standards that require only what real files
          carry, docs/DATA.md section 3) are written by hand and left alone.
check     validates every real CSV file in deploy/data that follows a built-in
          schema: header onto fields, every cell's type and constraints, primary
          key uniqueness. Known deviations (EXPECTED_FAILURES) must fail, and only
          for the stated reason. Exits 1 on any surprise.

NEC's `required` flags are unreliable, so a generated field is required only
when NEC marks it required and no real file of that schema leaves it empty;
primary key fields are always required. Python 3 standard library only.
"""
import csv
import glob
import json
import math
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "deploy", "data")

# Real files in deploy/data and the schema each follows ("id@version").
REAL_FILES = {
    "aed@1": ["aed/222127_yaizu.csv"],
    "child_care_facility@1": ["child_care_facility/222127_yaizu.csv"],
    "evacuation_space@1": ["evacuation_sites/222127_yaizu.csv"],
    "public_wireless_lan@1": ["public_wireless_lan/222127_yaizu.csv"],
    "tourism@1": ["tourism/222127_yaizu.csv"],
    "public_toilet@2": ["public_toilet/222127_yaizu.csv"],
    "fire_hydrant@2": ["fire_hydrant/222127_yaizu.csv"],
    "yaizu_shelter@1": ["designated_shelters/222127_yaizu.csv"],
    "gsi_evacuation_site@1": ["evacuation_sites/*_gsi.csv"],
    "gsi_designated_shelter@1": ["designated_shelters/*_gsi.csv"],
    "address@1": ["addresses/*.csv"],
    "covid19_hokkaido_patients@1": ["covid19/010006_hokkaido_patients_20200329.csv"],
}

# Real deviations from the standard that mappings handle, not the schema.
EXPECTED_FAILURES = {
    ("evacuation_sites/222127_yaizu.csv", "evacuation_space@1"):
        "is not one of the allowed values",  # flags written as ○, not 1
}

# The standard's identifier column(s). The covid19 daily counts have one row a day.
PRIMARY_KEYS = {
    "population": ["調査年月日", "地域名"],
    "covid19_patients": ["No"],
    "covid19_test_people": ["実施_年月日"],
    "covid19_test_count": ["実施_年月日"],
    "covid19_confirm_negative": ["完了_年月日"],
    "covid19_call_center": ["受付_年月日"],
    "covid19_support_system": ["制度番号"],
}

# Header spellings seen in real files that differ by more than spacing or
# full-width ASCII: known real-world spellings, accepted as aliases.
ALIASES = {
    ("child_care_facility", "都道府県コード又は市区町村コード"):
        ["都道府県コ\u2015ド又は市区町村コ\u2015ド"],
}

# What the real files taught us, for the schema's description.
NOTES = {
    "child_care_facility": "x-aliases accepts the header spelling with U+2015 in place of ー "
                           "that Yaizu publishes.",
    "covid19_patients": "NEC's YAML turned the first column name No into false; it is No here.",
    "evacuation_space": "Yaizu writes the disaster flags as ○ rather than 1, which this schema "
                        "rejects on purpose: a mapping converts them.",
    "tourism": "Yaizu's file adds 20 local columns after the standard ones (ignored) and writes "
               "料金（基本） with full-width parentheses, which header matching folds to ASCII.",
}

TYPES = {"string": ("string", None), "url": ("string", "uri"), "number": ("number", None),
         "integer": ("integer", None), "date": ("date", None), "time": ("time", None),
         "datetime": ("datetime", None)}


def std_field(schema_id, col):
    """One standard column as a Table Schema field (required is decided later)."""
    # NEC's YAML turned the column name "No" into the boolean false.
    name = "No" if col["name"] is False else col["name"]
    ftype, fmt = TYPES[col["type"]]
    if ftype == "datetime" and col.get("format") == "date":
        ftype = "date"  # NEC types the 年月日 columns datetime/format date: they hold dates
    f = {"name": name, "title": name, "description": col["description"], "type": ftype}
    if fmt:
        f["format"] = fmt
    cons = {}
    if "enum" in col:
        cons["enum"] = col["enum"]
    if name == "緯度":
        cons.update(minimum=-90, maximum=90)
    elif name == "経度":
        cons.update(minimum=-180, maximum=180)
    elif "6桁" in col["description"] and "コード" in name:
        cons["pattern"] = "[0-9]{6}"
    if cons:
        f["constraints"] = cons
    if (schema_id, name) in ALIASES:
        f["x-aliases"] = ALIASES[(schema_id, name)]
    return f


def generate():
    for path in sorted(glob.glob(os.path.join(DATA, "schemas", "*__*.json"))):
        d = json.load(open(path, encoding="utf-8"))
        sid = d["schema_id"]
        ref = sid + "@1"
        fields = [std_field(sid, c) for c in d["columns"]]
        nec_required = {f["name"] for f, c in zip(fields, d["columns"]) if c["required"]}
        pk = PRIMARY_KEYS.get(sid, ["NO"])
        empties = empty_columns(ref, fields)
        relaxed = {}  # files -> NEC-required fields they leave empty
        for f in fields:
            req = f["name"] in pk or (f["name"] in nec_required and not empties.get(f["name"]))
            if req:
                f.setdefault("constraints", {})["required"] = True
            elif f["name"] in nec_required:
                relaxed.setdefault(", ".join(empties[f["name"]]), []).append(f["name"])
        files = real_paths(ref)
        desc = [d["description"], "Standard: %s, dataset %s %s." % (
            d["standard"].split(" — ")[0], d["dataset_no"], d["dataset_name_ja"])]
        desc.append("Generated by registry/schemas/convert.py from NEC's FIWARE transcription; "
                    "a field is required only where NEC marks it required and no real file "
                    "leaves it empty, and the primary key is always required.")
        if files:
            desc.append("Checked against " + ", ".join(files) + ".")
        else:
            desc.append("No real file in deploy/data follows this layout, so NEC's required "
                        "flags stand unchecked.")
        for files_, names in relaxed.items():
            desc.append("Not required although NEC marks them so, because %s leaves them "
                        "empty: %s." % (files_, ", ".join(names)))
        if any(c.get("format") == "date" and c["type"] == "datetime" for c in d["columns"]):
            desc.append("NEC types the 年月日 columns datetime with format date; they hold dates "
                        "and are type date here.")
        if any("" in c.get("enum", []) for c in d["columns"]):
            desc.append("An enum listing \"\" documents that a blank cell is allowed: blank cells "
                        "are NULL and are not checked against the enum.")
        if sid in NOTES:
            desc.append(NOTES[sid])
        doc = {
            "name": sid, "version": 1, "title": d["dataset_name_ja"],
            "description": " ".join(desc),
            "x-source": d["source"] + (" (commit 4ae28f2)" if d["family"] == "suisho_v1" else "")
                        + ", transcribing " + d["standard"].split(" — ")[0],
            "x-license": d["license"],
            "fields": fields, "primaryKey": pk, "missingValues": [""],
        }
        with open(os.path.join(HERE, ref + ".json"), "w", encoding="utf-8") as out:
            json.dump(doc, out, ensure_ascii=False, indent=1)
            out.write("\n")


def real_paths(ref):
    return [os.path.relpath(p, DATA) for g in REAL_FILES.get(ref, [])
            for p in sorted(glob.glob(os.path.join(DATA, g)))]


def read_csv(rel):
    with open(os.path.join(DATA, rel), encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def fold(s):
    """The header normalisation of schema_field_index(): trim spaces, fold full-width ASCII."""
    s = s.strip(" \t\r\n\u3000\u00a0")
    return "".join(chr(ord(c) - 0xFEE0) if 0xFF01 <= ord(c) <= 0xFF5E else c for c in s)


def header_map(fields, header):
    """Column index of each field name, or None when the file lacks it."""
    out = {}
    for f in fields:
        names = [f["name"]] + f.get("x-aliases", [])
        idx = [i for i, h in enumerate(header) if h in names]
        if not idx:
            idx = [i for i, h in enumerate(header) if fold(h) in map(fold, names)]
        out[f["name"]] = idx[0] if idx else None
    return out


def empty_columns(ref, fields):
    """Field name -> files that leave it empty somewhere."""
    res = {}
    for rel in real_paths(ref):
        header, rows = read_csv(rel)
        for name, i in header_map(fields, header).items():
            if i is not None and any(i >= len(r) or r[i] == "" for r in rows):
                res.setdefault(name, []).append(rel)
    return res


NUM = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
DATE = re.compile(r"([0-9]{4})([-/])([0-9]{1,2})\2([0-9]{1,2})")
TIME = re.compile(r"([0-9]{1,2}):([0-9]{2})(:([0-9]{2}))?")


def valid_date(v):
    m = DATE.fullmatch(v)
    if not m:
        return False
    y, mo, d = int(m[1]), int(m[3]), int(m[4])
    mdays = [31, 29 if y % 4 == 0 and (y % 100 != 0 or y % 400 == 0) else 28,
             31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    return 1 <= mo <= 12 and 1 <= d <= mdays[mo - 1]


def valid_time(v, allow24):
    m = TIME.fullmatch(v)
    if not m:
        return False
    h, mi, s = int(m[1]), int(m[2]), int(m[4] or 0)
    return (h < 24 and mi < 60 and s < 60) or (allow24 and (h, mi, s) == (24, 0, 0))


def cell_error(f, v):
    """Why the cell v does not satisfy field f, or None (mirrors schema_convert)."""
    c = f.get("constraints", {})
    if v == "":
        return "value is required" if c.get("required") else None
    t = f.get("type", "string")
    if t in ("integer", "year"):
        ok = re.fullmatch(r"[+-]?[0-9]+" if t == "integer" else r"[0-9]{1,4}", v)
        num = int(v) if ok else None
    elif t == "number":
        ok = NUM.fullmatch(v) and math.isfinite(float(v))
        num = float(v) if ok else None
    elif t == "boolean":
        ok = v in f.get("trueValues", ["true", "True", "TRUE", "1"]) + \
            f.get("falseValues", ["false", "False", "FALSE", "0"]) + ["true", "false"]
    elif t == "date":
        ok = valid_date(v)
    elif t == "time":
        ok = valid_time(v, True)
    elif t == "datetime":
        m = re.fullmatch(r"(\S+)[T ](\S+?)(Z|[+-][0-9]{2}:?[0-9]{2})?", v)
        ok = m and valid_date(m[1]) and valid_time(m[2], False)
    else:
        ok = True
    if not ok:
        return '"%s" is not a %s' % (v, t)
    if "enum" in c and v not in c["enum"]:
        return '"%s" is not one of the allowed values: %s' % (
            v, ", ".join('"%s"' % e for e in c["enum"]))
    if "pattern" in c and not re.fullmatch(c["pattern"], v):
        return '"%s" does not match the pattern %s' % (v, c["pattern"])
    if "minimum" in c and num < c["minimum"] or "maximum" in c and num > c["maximum"]:
        return '"%s" is out of the range [%s, %s]' % (v, c.get("minimum"), c.get("maximum"))
    if len(v) < c.get("minLength", 0) or len(v) > c.get("maxLength", len(v)):
        return '"%s" has a length outside [%s, %s]' % (v, c.get("minLength"), c.get("maxLength"))
    return None


def check():
    surprises = 0
    for ref in sorted(REAL_FILES):
        doc = json.load(open(os.path.join(HERE, ref + ".json"), encoding="utf-8"))
        for rel in real_paths(ref):
            header, rows = read_csv(rel)
            cols = header_map(doc["fields"], header)
            errors = ["missing column %s" % n for n, i in cols.items() if i is None]
            keys = set()
            for line, r in enumerate(rows, 2):
                for f in doc["fields"]:
                    i = cols[f["name"]]
                    e = cell_error(f, r[i] if i is not None and i < len(r) else "")
                    if e:
                        errors.append("line %d, %s: %s" % (line, f["name"], e))
                key = tuple(r[cols[k]] for k in doc["primaryKey"])
                if key in keys:
                    errors.append("line %d: duplicate primary key %s" % (line, key))
                keys.add(key)
            extra = len(header) - sum(1 for i in cols.values() if i is not None)
            expected = EXPECTED_FAILURES.get((rel, ref))
            if expected:
                ok = errors and all(expected in e for e in errors)
                print("%s %s against %s: %d expected errors (%s)" % (
                    "ok" if ok else "UNEXPECTED", rel, ref, len(errors), expected))
            else:
                ok = not errors
                print("%s %s against %s: %d rows%s" % (
                    "ok" if ok else "FAIL", rel, ref, len(rows),
                    ", %d extra columns ignored" % extra if extra else ""))
                for e in errors[:10]:
                    print("    " + e)
            surprises += not ok
    return surprises


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else "all"
    if cmd not in ("generate", "check", "all"):
        sys.exit(__doc__)
    if cmd in ("generate", "all"):
        generate()
    if cmd in ("check", "all") and check():
        sys.exit(1)
