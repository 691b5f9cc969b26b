#!/bin/sh
# bench_fedquery.sh - federated queries through NODES real musubid processes
# on 127.0.0.1 (default 8), each publishing an equal slice of ROWS
# generated rows (default 1,000,000), against sqlite3 running the same SQL
# over the same CSV imported into one table, measured in the same run:
# a GROUP BY aggregate (pushed down, then with --no-pushdown), a 1% filter
# and a primary-key lookup. Prints figures only, no pass/fail: README.md.
#
# usage: tests/bench/bench_fedquery.sh [ROWS]
# Binaries: $MUSUBI, $MUSUBID, $GENCSV (under $BUILD, default build/), $SQLITE3.
# REPEAT=N (default 3) runs each query N times and keeps the best.
set -eu

ROWS=${1:-1000000}
NODES=${NODES:-8}
REPEAT=${REPEAT:-3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
MUSUBI=${MUSUBI:-$BUILD/tools/musubi}
MUSUBID=${MUSUBID:-$BUILD/node/musubid}
GENCSV=${GENCSV:-$BUILD/tests/gencsv}
LOOKUP=${LOOKUP:-$BUILD/tests/bench/lookup_client}
LOOKUPS=${LOOKUPS:-1000}
SQLITE3=${SQLITE3:-sqlite3}
export MUSUBI MUSUBID

for b in "$MUSUBI" "$MUSUBID" "$GENCSV" "$LOOKUP"; do
	[ -x "$b" ] || { echo "bench_fedquery: $b is missing (build it, or set its variable)" >&2; exit 2; }
done
command -v "$SQLITE3" >/dev/null || { echo "bench_fedquery: no $SQLITE3 on PATH" >&2; exit 2; }
[ "$NODES" -ge 1 ] && [ "$NODES" -le 8 ] || { echo "bench_fedquery: NODES is 1 to 8" >&2; exit 2; }

# The federation helpers of the integration tests (they make $WORK).
. "$ROOT/tests/integration/lib.sh"
. "$ROOT/tests/integration/fed.sh"
trap 'fed_stop_all; rm -rf "$WORK"' EXIT
trap 'exit 1' HUP INT PIPE TERM

IDS=$(echo 011002 012025 012033 012041 012050 012068 012076 012084 | cut -d' ' -f1-"$NODES")
fed_init $IDS
for id in $IDS; do
	# Each node holds its own data only: every query must ask all of them.
	FED_EXTRA="--replicate $id/*" fed_start "$id"
done

echo "generating $ROWS rows..." >&2
"$GENCSV" "$ROWS" >"$WORK/all.csv"
PER=$(((ROWS + NODES - 1) / NODES))
awk -v per="$PER" -v dir="$WORK" 'NR == 1 { h = $0; next }
	{ i = int((NR - 2) / per); f = dir "/slice" i ".csv"; if (!(i in seen)) { print h > f; seen[i] = 1 } print > f }' \
	"$WORK/all.csv"
i=0
t0=$(date +%s)
for id in $IDS; do
	echo "publishing slice $i at $id..." >&2
	"$MUSUBI" publish --dir "$(fed_dir "$id")" --dataset sites \
		--schema "$ROOT/tests/bench/bench_schema.json" "$WORK/slice$i.csv" >/dev/null
	rm -f "$WORK/slice$i.csv"
	i=$((i + 1))
done
t1=$(date +%s)
echo "importing into sqlite3..." >&2
# Typed as the schema types them, id the primary key (musubi's too).
"$SQLITE3" "$WORK/ref.db" <<EOF
CREATE TABLE sites(id INTEGER PRIMARY KEY, code TEXT, 名称 TEXT, 住所 TEXT, 緯度 REAL, 経度 REAL,
	収容人数 INTEGER, 開設日 TEXT, 有効 TEXT, 備考 TEXT);
.import --csv --skip 1 $WORK/all.csv sites
EOF
rm -f "$WORK/all.csv"

FIRST=$(echo "$IDS" | cut -d' ' -f1)
PK=$((ROWS * 7 / 9 + 1))
python3 - "$MUSUBI" "tcp://127.0.0.1:$(fed_port "$FIRST")" "$(fed_dir "$FIRST")" "$SQLITE3" \
	"$WORK/ref.db" "$REPEAT" "$ROWS" "$NODES" "$PK" "$((t1 - t0))" "$LOOKUP" "$LOOKUPS" <<'PY'
import csv, io, os, sqlite3 as sqlite, subprocess, sys, time
musubi, node, ndir, sqlite3, ref, repeat, rows, nodes, pk, pubs, lookup, nlook = sys.argv[1:]
repeat = int(repeat)
queries = [
    ("GROUP BY aggregate (2,400 groups)",
     "SELECT 名称, count(*), sum(収容人数), avg(緯度), max(開設日) FROM sites GROUP BY 名称 ORDER BY 1", []),
    ("  the same, --no-pushdown", None, ["--no-pushdown"]),
    ("1% filter (収容人数 < 20, ~1% of rows)",
     "SELECT id, 名称, 収容人数 FROM sites WHERE 収容人数 < 20 ORDER BY id", []),
    ("primary-key lookup (id = %s)" % pk,
     "SELECT id, 名称, 住所, 収容人数 FROM sites WHERE id = %s" % pk, []),
]
# CPU seconds (user + system) the nodes have used so far: every musubid
# of the federation, from /proc. Other work on the machine stretches wall
# time much more than this.
fed = os.path.dirname(ndir)
pids = [open(os.path.join(fed, f)).read().strip() for f in sorted(os.listdir(fed)) if f.endswith(".pid")]
tick = os.sysconf("SC_CLK_TCK")
def nodes_cpu():
    t = 0
    for pid in pids:
        try:
            f = open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()
            t += int(f[11]) + int(f[12])
        except (OSError, IndexError, ValueError):
            pass
    return t / tick
def run(cmd):
    best, out, cpu = None, None, None
    for _ in range(repeat):
        c = nodes_cpu()
        t = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True)
        dt = time.perf_counter() - t
        c = nodes_cpu() - c
        if p.returncode != 0:
            sys.exit("failed: %s\n%s" % (" ".join(cmd[:3]), p.stderr.decode()))
        best = dt if best is None else min(best, dt)
        cpu = c if cpu is None else min(cpu, c)
        out = p.stdout.decode()
    run.cpu = cpu
    return best, out
def parse(text):
    return list(csv.reader(io.StringIO(text)))
def same_value(a, b):
    if a == b:
        return True
    try:
        return abs(float(a) - float(b)) <= 1e-9 * max(abs(float(a)), abs(float(b)))
    except ValueError:
        return False
def same_rows(got, want):
    return len(got) == len(want) and all(len(g) == len(w) and all(map(same_value, g, w))
                                         for g, w in zip(got, want))
print("federated query benchmark: %s rows on %s musubid nodes (127.0.0.1), %d CPUs" % (rows, nodes, os.cpu_count()))
print("best of %d run(s); load average %s; publishing took %s s" % (repeat, "%.2f %.2f %.2f" % os.getloadavg(), pubs))
print()
print("%-40s %10s %10s %8s %7s %9s" % ("", "musubi s", "sqlite3 s", "ratio", "rows", "nodes cpu"))
last = None
for name, sql, opts in queries:
    sql = sql or last
    last = sql
    tm, out = run([musubi, "query", "--node", node, "--dir", ndir, "--format", "csv",
                   "--timeout", "300000"] + opts + [sql])
    cpu = run.cpu
    ts, ref_out = run([sqlite3, "-csv", "-header", ref, sql])
    got, want = parse(out), parse(ref_out)
    same = ""
    if not same_rows(got, want):
        diff = next(((g, w) for g, w in zip(got + [None], want + [None]) if g != w), None)
        same = "  DIFFERS from sqlite3: %s vs %s" % diff
    print("%-40s %10.3f %10.3f %7.1fx %7d %9.2f%s" % (name, tm, ts, tm / ts, len(got) - 1, cpu, same))

# Lookups as issue 5 measures them: one client session, nlook lookups one
# after another, each timed; sqlite3 the same over one connection.
def stats(ms):
    ms = sorted(ms)
    n = len(ms)
    med = ms[n // 2] if n % 2 else (ms[n // 2 - 1] + ms[n // 2]) / 2
    return med, ms[(n * 90 + 99) // 100 - 1]
nlook, nrows = int(nlook), int(rows)
ids = [1 + (i * 7919) % nrows for i in range(nlook)]
lsql = "SELECT id, 名称, 住所, 収容人数 FROM sites WHERE id = %d"
best, lines, lcpu = None, None, None
for _ in range(repeat):
    c = nodes_cpu()
    p = subprocess.run([lookup, node, ndir, str(nlook), rows], capture_output=True)
    c = nodes_cpu() - c
    lcpu = c if lcpu is None else min(lcpu, c)
    if p.returncode != 0:
        sys.exit("failed: lookup_client\n%s" % p.stderr.decode())
    f = p.stderr.decode().split()
    med, p90 = float(f[f.index("median") + 1]), float(f[f.index("p90") + 1])
    if best is None or med < best[0]:
        best, lines = (med, p90), p.stdout.decode().splitlines()
db = sqlite.connect(ref)
want, sbest = [], None
for _ in range(repeat):
    ms, want = [], []
    for i in ids:
        t = time.perf_counter()
        r = db.execute(lsql % i).fetchall()
        ms.append((time.perf_counter() - t) * 1000)
        want += ["\t".join("" if v is None else str(v) for v in row) for row in r]
    st = stats(ms)
    sbest = st if sbest is None or st[0] < sbest[0] else sbest
db.close()
same = "" if lines == want else "  DIFFERS from sqlite3 (%d vs %d rows)" % (len(lines), len(want))
print("%-40s %10.3f %10.3f %7.1fx %7d %9.2f%s" % ("pk lookup, one session: median ms", best[0], sbest[0],
      best[0] / sbest[0], len(lines), lcpu, same))
print("%-40s %10.3f %10.3f" % ("  p90 ms (%d lookups)" % nlook, best[1], sbest[1]))
print()
print("ratio: musubi seconds / sqlite3 seconds, each a whole process (start-up included),")
print("but the one-session lookups: %d queries over one connection (sqlite3: one" % nlook)
print("connection from Python), median and p90 of each lookup's latency in ms;")
print("nodes cpu: CPU seconds of all the musubid processes for the query (least of the runs;")
print("for the lookups, all %d); musubi asks the first node, which scans all %s nodes in parallel." % (nlook, nodes))
PY
