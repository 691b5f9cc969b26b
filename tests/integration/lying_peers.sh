#!/bin/sh
# Lying peers and access control against real musubid processes.
#
# A member that lies (tests/integration/liar.c) peers with a fresh honest
# node H, one lie per case. Each lie must be refused with its reason in H's
# log and in `musubi status` (peer last_error, refused_* counters, evidence
# for a fork); the liar must be penalised (strikes, backoff); nothing it
# sent may be stored (H verifies, its datasets are unchanged); and H must
# keep serving everyone else: an honest peer B still replicates from and
# through H after the lie.
#
# Then access: clients with no key, an unknown key or a revoked member's
# key read no members-only data; no message type writes; ZAP fails closed
# (wrong server key, no CURVE, no handler); queries cannot write, attach,
# load an extension, or run or allocate past their bounds.
#
# KNOWN_GAPS lists checks that fail today because of a node gap (see
# docs/SECURITY.md), as CASE:WHAT with the spaces of WHAT written "_":
# they print XFAIL; once one passes it prints XPASS and fails, so that the
# entry is removed when the node is fixed. CASES="fork access" runs some.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fed.sh"
LIAR=${LIAR:?LIAR must name the liar program}
trap 'fed_stop_all; [ -n "${KEEP:-}" ] || rm -rf "$WORK"' EXIT

# Node gaps found by this test (docs/SECURITY.md, "Known gaps"): none open.
KNOWN_GAPS=${KNOWN_GAPS-""}
KNOWN_GAPS=$(echo $KNOWN_GAPS)

# check CASE WHAT COND...: COND is a shell command that must succeed.
check() {
	c=$1 what=$2 key="$1:$(echo "$2" | tr ' ' _)"
	shift 2
	if "$@" >/dev/null 2>&1; then
		case " $KNOWN_GAPS " in
		*" $key "*) fail "XPASS $c: $what (remove it from KNOWN_GAPS)" ;;
		*) echo "ok   $c: $what" ;;
		esac
	else
		case " $KNOWN_GAPS " in
		*" $key "*) echo "XFAIL $c: $what (known gap)" ;;
		*) fail "$c: $what" ;;
		esac
	fi
}

A=011002 B=012025 H=012033 L=012041 R=222127 U=999999
fed_init $A $B $H $L $R
TL="$WORK/fed"
cp "$TL/trust.tl" "$TL/trust.v1.tl"

# The liar's stores: its own dataset with two heads, another member's
# dataset, one of a member about to be revoked, one of a member outside
# the federation.
pub() { "$MUSUBI" publish --dir "$(fed_dir "$1")" --dataset "$2" --schema "$3" "$4" >/dev/null; }
head -n 101 "$DATA/designated_shelters/012041_asahikawa_gsi.csv" >"$WORK/l100.csv"
pub $L shelters gsi_designated_shelter@1 "$WORK/l100.csv"
pub $L shelters gsi_designated_shelter@1 "$DATA/designated_shelters/012041_asahikawa_gsi.csv"
LROWS=$(($(wc -l <"$DATA/designated_shelters/012041_asahikawa_gsi.csv") - 1))
pub $A evacuation_sites gsi_evacuation_site@1 "$DATA/evacuation_sites/011002_sapporo_gsi.csv"
pub $R public_toilet public_toilet@2 "$DATA/public_toilet/222127_yaizu.csv"
"$MUSUBI" keygen --out "$TL/keys/$U" >/dev/null
"$MUSUBI" init --dir "$(fed_dir $U)" --member $U --key "$TL/keys/$U" >/dev/null
pub $U aed aed@1 "$DATA/aed/222127_yaizu.csv"

# Version 2 of the trust list revokes R from a time before its heads.
cp "$TL/trust.v1.tl" "$TL/trust.v2.tl"
"$MUSUBI" trust revoke "$TL/trust.v2.tl" --member $R --reason "key stolen" \
	--at 2020-01-01T00:00:00Z >/dev/null
"$MUSUBI" trust sign "$TL/trust.v2.tl" --key "$TL/keys/anchor" >/dev/null

# Requests unanswered for 1.5 s time out (10 s by default), so that a peer
# whose replies vanish is seen within a case.
echo "request-timeout-ms = 1500" >"$WORK/node.conf"
FED_EXTRA="--config $WORK/node.conf"
HEP="tcp://127.0.0.1:$(fed_port $H)"
HPUB="$TL/keys/$H/transport.pub.pem"

fresh() {
	rm -rf "$(fed_dir "$1")"
	"$MUSUBI" init --dir "$(fed_dir "$1")" --member "$1" --key "$TL/keys/$1" \
		--trust "$TL/trust.v1.tl" >/dev/null
}

# H's status as JSON into $WORK/st.json; st EXPR [MEMBER] evaluates EXPR
# over it, with p = H's view of the liar (or of MEMBER).
hstatus() {
	"$MUSUBI" status --node "$HEP" --dir "$(fed_dir $H)" --timeout 2000 --json >"$WORK/st.json" 2>/dev/null
}
st() {
	python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
p = next((x for x in d["peers"] if x["member"] == sys.argv[3]), {})
c = d["counters"]
r = eval(sys.argv[2])
print(r)
sys.exit(0 if r else 1)' "$WORK/st.json" "$1" "${2:-$L}"
}
# wait_st EXPR SECONDS: until H's status makes EXPR true.
wait_st() {
	deadline=$(($(date +%s) + $2))
	while :; do
		hstatus && st "$1" >/dev/null 2>&1 && return 0
		[ "$(date +%s)" -lt "$deadline" ] || return 1
		sleep 0.1
	done
}
# wait_rows ID DATASET ROWS: until node ID holds ROWS rows (20 s at most).
wait_rows() {
	deadline=$(($(date +%s) + 20))
	until [ "$(fed_rows "$1" "$2")" = "$3" ]; do
		[ "$(date +%s)" -lt "$deadline" ] || return 1
		sleep 0.1
	done
}
# Entries of DATASET in H's store (0 if absent).
entries() {
	"$MUSUBI" status --dir "$(fed_dir $H)" --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(next((x["entries"] for x in d["datasets"] if x["dataset"] == sys.argv[1]), 0))' "$1"
}

start_liar() {
	"$LIAR" serve --key "$TL/keys/$L" --member $L --listen "tcp://127.0.0.1:$(fed_port $L)" \
		--pub "tcp://127.0.0.1:$(($(fed_port $L) + 1))" "$@" \
		"$(fed_dir $L)" "$(fed_dir $A)" "$(fed_dir $R)" "$(fed_dir $U)" \
		>"$WORK/liar.log" 2>&1 &
	echo $! >"$TL/$L.pid"
}

# Sanitizer reports of the background processes land in their logs.
scan_logs() {
	for f in "$TL"/*.log "$WORK"/*.log; do
		[ -f "$f" ] || continue
		if grep -qE "ERROR: [A-Za-z]+Sanitizer|runtime error:" "$f"; then
			fail "sanitizer report in $(basename "$f")"
			grep -E -A12 "ERROR: [A-Za-z]+Sanitizer|runtime error:" "$f" | head -n 40 >&2
		fi
	done
}

# run_case CASE LIE DATASET ARMED REASON COUNTER-EXPR
#   ARMED: "armed" if the liar tells the truth until H holds DATASET
#   REASON: text that H's log and H's last_error for the liar must carry
#   COUNTER-EXPR: a Python expression over the counters c that must hold
run_case() {
	case_name=$1 lie=$2 ds=$3 armed=$4 reason=$5 counter=$6
	case " ${CASES:-$case_name} " in *" $case_name "*) ;; *) return 0 ;; esac
	echo "--- $case_name"
	fresh $H
	fresh $B
	: >"$TL/$H.log"
	[ "$case_name" = revoked ] && "$MUSUBI" trust update --dir "$(fed_dir $H)" "$TL/trust.v2.tl" >/dev/null
	pub $H evacuation_sites gsi_evacuation_site@1 "$DATA/evacuation_sites/012033_otaru_gsi.csv"
	pub $B shelters gsi_designated_shelter@1 "$DATA/designated_shelters/012025_hakodate_gsi.csv"
	if [ "$armed" = armed ]; then
		start_liar --lie "$lie" --serve "$ds" --armed-by-signal
	else
		start_liar --lie "$lie" --serve "$ds"
	fi
	fed_start $B $H
	fed_start $H $L $B
	before=0
	if [ "$armed" = armed ]; then
		fed_wait_rows $H "$ds" $LROWS 20   # armed lies are about the liar's own data
		before=$(entries "$ds")
		kill -USR1 "$(cat "$TL/$L.pid")"
	fi
	if [ "$lie" = fork ]; then
		wait_st 'd["evidence"] > 0' 10 || true
		check "$case_name" "evidence stored" st 'd["evidence"] > 0 and c["forks"] > 0'
		# The same two heads are one piece of evidence, however often shown.
		sleep 2
		hstatus
		st 'd["evidence"]' | sed 's/^/     | evidence records after 2 s: /'
		check "$case_name" "evidence kept once" st 'd["evidence"] == 1'
		# The forking publisher's dataset is held: no new head of it is
		# taken until an operator clears the hold.
		check "$case_name" "dataset held" st "[x['dataset'] for x in d['held']] == ['$ds']"
		check "$case_name" "hold listed" eval '! "$MUSUBI" evidence --dir "$(fed_dir $H)" >"$WORK/out" 2>&1 &&
			grep -q "^held $ds since" "$WORK/out"'
	fi
	# The liar is penalised: a strike and a backoff (both hold right after it).
	penalised=0
	wait_st 'p.get("strikes", 0) > 0 and p.get("backoff_ms", 0) > 0' 5 && penalised=1
	check "$case_name" "lie told" grep -q "liar: $lie" "$WORK/liar.log"
	check "$case_name" "penalised" [ $penalised = 1 ]
	if [ "$case_name" = badsig ]; then
		check "$case_name" "backoff doubles" wait_st 'p["strikes"] >= 2 and p["backoff_ms"] > 2000' 10
	fi
	hstatus
	st '"status: strikes %s, backoff_ms %s, evidence %s, %s, last_error: %s" % (p.get("strikes"),
		p.get("backoff_ms"), d["evidence"], {k: v for k, v in c.items() if k.startswith("refused") and v},
		p.get("last_error"))' | sed 's/^/     | /'
	check "$case_name" "reason in status" st "'''$reason''' in p.get('last_error', '')"
	check "$case_name" "reason in log" grep -qF "$reason" "$TL/$H.log"
	check "$case_name" "counted" st "$counter"
	# Nothing of the lie is stored.
	check "$case_name" "nothing stored" [ "$(entries "$ds")" = "$before" ]
	# Still serving: B publishes after the lie and H takes it; B takes H's
	# data from H.
	pub $B aed aed@1 "$DATA/aed/222127_yaizu.csv"
	check "$case_name" "still syncs" wait_rows $H $B/aed 82
	check "$case_name" "still serves" wait_rows $B $H/evacuation_sites 45
	check "$case_name" "status answers" hstatus
	# B only ever lags (it is fresh): lagging is not lying.
	check "$case_name" "honest peer not struck" st 'p.get("strikes", 1) == 0' $B
	if [ "$lie" = fork ]; then
		check "$case_name" "hold cleared" "$MUSUBI" evidence --dir "$(fed_dir $H)" --clear "$ds"
		check "$case_name" "no hold after clearing" eval 'hstatus && st "d[\"held\"] == []"'
	fi
	fed_stop $L
	fed_stop $B
	fed_stop $H
	verify_rc=0
	"$MUSUBI" verify --dir "$(fed_dir $H)" >"$WORK/verify.out" 2>&1 || verify_rc=$?
	check "$case_name" "verify passes" [ $verify_rc = 0 ]
	[ $verify_rc = 0 ] || grep -v "^ *$" "$WORK/verify.out" | head -n 3 | sed 's/^/     | verify: /'
	check "$case_name" "entries unchanged" [ "$(entries "$ds")" = "$before" ]
	cp "$TL/$H.log" "$WORK/h-$case_name.log"
	cp "$WORK/liar.log" "$WORK/liar-$case_name.log"
	grep -h "$L" "$TL/$H.log" | grep -E "refused|EVIDENCE|ignored|speaks|timed out" | head -n 2 | sed 's/^/     | /'
}

run_case badsig badsig $L/shelters now \
	"signature that does not verify" 'c["refused_badsig"] > 0'
run_case altered altered $A/evacuation_sites now \
	"do not give the root signed" 'c["refused_root"] > 0'
run_case reorder reorder $L/shelters now \
	"claims to be" 'c["refused_decode"] > 0'
run_case duplicate duplicate $L/shelters now \
	"claims to be" 'c["refused_decode"] > 0'
run_case rollback rollback $L/shelters armed \
	"rolled back" 'c["refused_proto"] > 0'
run_case fork fork $L/shelters armed \
	"two histories" 'c["forks"] > 0'
run_case backdate backdate $L/shelters armed \
	"dated before" 'sum(v for k, v in c.items() if k.startswith("refused")) > 0'
run_case revoked none $R/public_toilet now \
	"revoked" 'c["refused_trust"] > 0'
run_case unknown none $U/aed now \
	"$U" 'c["refused_trust"] > 0'
run_case huge huge $L/shelters now \
	"do not decode" 'c["refused_decode"] > 0'
run_case huge-entries huge-entries $L/shelters now \
	"does not match the request" 'c["refused_proto"] > 0'
run_case huge-envelope huge-envelope $L/shelters now \
	"does not decode" 'c["refused_decode"] > 0'
run_case version version $L/shelters now \
	"speaks protocol version $(( $("$MUSUBID" --version | sed 's/.*protocol \([0-9]*\).*/\1/') + 1 ))" \
	'c["refused_proto"] > 0'

# ---- Access ----
case " ${CASES:-access} " in *" access "*) ;; *) scan_logs; finish; exit ;; esac
echo "--- access"
fresh $H
: >"$TL/$H.log"
pub $H evacuation_sites gsi_evacuation_site@1 "$DATA/evacuation_sites/012033_otaru_gsi.csv"
"$MUSUBI" publish --dir "$(fed_dir $H)" --dataset aed --schema aed@1 --access members \
	"$DATA/aed/222127_yaizu.csv" >/dev/null
fed_start $H
probe() { "$PROBE" "$HEP" "$HPUB" "$@" >"$WORK/out" 2>&1; }
denied() { probe "$1" entries $H/aed 0 10 && grep -q "error denied" "$WORK/out"; }
served() { probe "$1" entries $H/aed 0 10 && grep -q "entries 10" "$WORK/out"; }
check access "a member reads members-only data" served "$TL/keys/$B"
check access "no key: members-only entries denied" denied -
check access "no key: public entries served" eval 'probe - entries $H/evacuation_sites 0 10 && grep -q "entries 10" "$WORK/out"'
check access "no key: members-only heads unlisted" eval 'probe - heads && grep -q "^$H/evacuation_sites " "$WORK/out" && ! grep -q "^$H/aed " "$WORK/out"'
check access "unknown key: members-only entries denied" denied "$TL/keys/$U"
check access "revoked member, old list: served" served "$TL/keys/$R"

# No request type writes: every message type, with real data (a dataset H
# does not have, its head and entries, a newer trust list, a schema, a
# query that creates a table), from no key and from a member's key.
"$MUSUBI" trust update --dir "$(fed_dir $A)" "$TL/trust.v2.tl" >/dev/null
snapshot() {
	hstatus && python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(d["trust_version"], d["evidence"], sorted((x["dataset"], x["entries"], x["head_size"])
      for x in d["datasets"] if not x["dataset"].endswith("/access_log")))' "$WORK/st.json"
}
snapshot >"$WORK/before"
"$LIAR" push "$HEP" "$HPUB" - "$(fed_dir $A)" >"$WORK/push-anon" 2>&1
"$LIAR" push "$HEP" "$HPUB" "$TL/keys/$B" "$(fed_dir $A)" >"$WORK/push-member" 2>&1
snapshot >"$WORK/after"
check access "every pushed type answered" eval '[ "$(grep -c "^type " "$WORK/push-anon")" = \
	"$(sed -n "s/^pushed \([0-9]*\) message types.*/\1/p" "$WORK/push-anon")" ] &&
	! grep -q "no answer" "$WORK/push-anon" "$WORK/push-member"'
check access "the pushed query was refused" grep -q "^type 20: error" "$WORK/push-member"
check access "no request type writes" cmp -s "$WORK/before" "$WORK/after"
sed 's/^/     | before: /' "$WORK/before"

# A request naming no dataset is a request for nothing, not a store error.
check access "empty dataset name: not found" eval 'probe - entries "" 0 10 && grep -q "No such file" "$WORK/out"'
check access "no store error logged" eval '! grep -q "LMDB" "$TL/$H.log"'

# ZAP fails closed.
check access "wrong server key: no answer" eval '! "$PROBE" "$HEP" "$TL/keys/$B/transport.pub.pem" - heads >"$WORK/out" 2>&1'
check access "no CURVE: no answer" eval '"$LIAR" plain "$HEP" | grep -q "no answer"'
"$LIAR" nozap >"$WORK/nozap"
check access "no ZAP handler: refused" grep -q "no ZAP handler: refused" "$WORK/nozap"
check access "ZAP handler: admitted (control)" grep -q "with a ZAP handler: admitted" "$WORK/nozap"

# Queries: read only, one statement, no attach, no extension, bounded.
query() {
	"$PROBE" "$HEP" "$HPUB" - query "$1" >"$WORK/out" 2>&1 || return 1
	printf '     | %.32s: %s\n' "$1" "$(grep "^error" "$WORK/out")" >>"$WORK/query-errors"
	grep -q "^error" "$WORK/out"
}
check access "query: SELECT works (control)" eval '"$PROBE" "$HEP" "$HPUB" - query "SELECT count(*) FROM evacuation_sites" | grep -q "^45$"'
check access "query: no INSERT" query "INSERT INTO evacuation_sites DEFAULT VALUES"
check access "query: no CREATE" query "CREATE TABLE t(x)"
check access "query: no DELETE" query "DELETE FROM evacuation_sites"
check access "query: no second statement" query "SELECT 1; DROP TABLE evacuation_sites"
check access "query: no PRAGMA" query "PRAGMA writable_schema = 1"
check access "query: no ATTACH" query "ATTACH DATABASE '$WORK/attached.db' AS x"
check access "query: ATTACH made no file" [ ! -e "$WORK/attached.db" ]
check access "query: no load_extension" query "SELECT load_extension('$WORK/ext.so')"
t0=$(date +%s)
check access "query: stopped at its time bound" query \
	"WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 1000000000000) SELECT count(*) FROM c"
check access "query: stopped within 15 s" [ $(($(date +%s) - t0)) -lt 15 ]
check access "query: bounded memory" query "SELECT length(randomblob(300000000))"
cat "$WORK/query-errors"
check access "still serving after the queries" hstatus

# Revocation reaches the ZAP handler once the node has the new list.
"$MUSUBI" trust update --dir "$(fed_dir $H)" "$TL/trust.v2.tl" >/dev/null
check access "revoked member, new list: denied" denied "$TL/keys/$R"
check access "a member still reads" served "$TL/keys/$B"

# With anonymous = no, a key outside the federation gets no connection.
fed_stop $H
"$MUSUBID" --dir "$(fed_dir $H)" --listen "$HEP" --anonymous no >>"$TL/$H.log" 2>&1 &
echo $! >"$TL/$H.pid"
check access "anonymous no: a member reads" eval 'n=0; until served "$TL/keys/$B"; do n=$((n+1)); [ $n -lt 20 ] || exit 1; sleep 0.2; done'
check access "anonymous no: no key, no answer" eval '! probe - heads'
check access "anonymous no: unknown key, no answer" eval '! probe "$TL/keys/$U" heads'
check access "refusals logged" grep -q "refused a connection: not a member of the federation" "$TL/$H.log"
fed_stop $H

scan_logs
finish
