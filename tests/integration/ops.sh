#!/bin/sh
# Operations end to end: 'meson install' puts every file where Debian puts
# it; the systemd unit verifies, and what musubid really does (its system
# calls, socket families, writes) fits inside the unit's sandbox; the man
# pages render and say what --help says; the example config documents every
# setting and musubid accepts it as written; bash completion completes; a
# backup taken while a publish is writing opens and verifies, and a node
# restored from it catches up from its peer.
#
# Parts that need a tool the machine lacks (systemd-analyze, strace, man)
# print "SKIP: ..." and are left out; deploy/install-deps installs them.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fed.sh"
trap 'kill "$WATCHDOG" 2>/dev/null; stop_nodes; stop_bg; rm -rf "$WORK"' EXIT
trap 'exit 1' INT TERM

BUILD=$(dirname "$(dirname "$MUSUBI")")
BG=""
# stop_pid PID: SIGTERM, and SIGKILL if that has not worked in 10 s: a
# node that hangs on its way out must not hang the test.
stop_pid() {
	kill "$1" 2>/dev/null || return 0
	n=0
	while kill -0 "$1" 2>/dev/null; do
		n=$((n + 1))
		if [ $n -ge 100 ]; then
			echo "NOTE: process $1 ignored SIGTERM for 10 s: killed" >&2
			kill -KILL "$1" 2>/dev/null || true
			break
		fi
		sleep 0.1
	done
	wait "$1" 2>/dev/null || true
}
stop_bg() {
	for p in $BG; do
		stop_pid "$p"
	done
	BG=""
}
stop_node() {
	[ -f "$WORK/fed/$1.pid" ] || return 0
	stop_pid "$(cat "$WORK/fed/$1.pid")"
	rm -f "$WORK/fed/$1.pid"
}
stop_nodes() {
	for id in $FED_IDS; do
		stop_node "$id"
	done
}
skip() { echo "SKIP: $*"; }
have() { command -v "$1" >/dev/null 2>&1; }
# stage NAME: say what runs, so that a hang names its place (the watchdog
# below ends the test well inside meson's timeout).
stage() { echo "$*" >"$WORK/stage"; }
WATCHED=$$
(
	i=0   # short sleeps: a killed watchdog leaves no long sleep holding the output open
	while [ $i -lt 600 ]; do sleep 1; i=$((i + 1)); done
	echo "ops.sh: stuck in: $(cat "$WORK/stage" 2>/dev/null)" >&2
	kill -TERM "$WATCHED"
) >/dev/null &
WATCHDOG=$!

# --- Install layout ---------------------------------------------------------
stage "install layout"
# Where a Debian build (prefix /usr) installs each file: configure only and
# read meson's install plan.
expect_status 0 meson setup "$WORK/deb" "$SRC" --prefix=/usr
expect_status 0 meson introspect --installed "$WORK/deb"
python3 - "$WORK/out" "$MUSUBI" <<'PY' || fail "the install plan for prefix /usr is not Debian's layout"
import json, re, subprocess, sys
plan = set(json.load(open(sys.argv[1])).values())
unitdir = subprocess.run(["pkg-config", "--variable=systemdsystemunitdir", "systemd"],
                         capture_output=True, text=True).stdout.strip() or "/usr/lib/systemd/system"
helptext = subprocess.run([sys.argv[2], "--help"], capture_output=True, text=True).stdout
commands = re.findall(r"^  ([a-z][a-z0-9-]*)\s{2,}", helptext.split("Commands:")[1], re.M)
want = {"/usr/bin/musubi", "/usr/sbin/musubid", unitdir + "/musubid.service",
        "/etc/musubi/musubid.conf", "/usr/lib/sysusers.d/musubi.conf",
        "/usr/lib/tmpfiles.d/musubi.conf", "/usr/share/bash-completion/completions/musubi",
        "/usr/share/bash-completion/completions/musubid", "/usr/share/doc/musubi/OPERATIONS.md",
        "/usr/share/man/man1/musubi.1", "/usr/share/man/man8/musubid.8"}
want |= {"/usr/share/man/man1/musubi-%s.1" % c for c in commands}
missing = sorted(want - plan)
for m in missing:
    print("not installed:", m)
sys.exit(1 if missing else 0)
PY

# The real install of this build, into a staging directory.
DEST="$WORK/dest"
expect_status 0 meson install -C "$BUILD" --destdir "$DEST" --no-rebuild
eval "$(meson introspect --buildoptions "$BUILD" | python3 -c '
import json, sys
o = {x["name"]: x["value"] for x in json.load(sys.stdin)}
p = o["prefix"]
j = lambda d: d if d.startswith("/") else p + "/" + d
print("PREFIX=%s SBINDIR=%s SYSCONFDIR=%s MANDIR=%s DATADIR_=%s" % (
    p, j(o["sbindir"]), j(o["sysconfdir"]), j(o["mandir"]), j(o["datadir"])))')"
UNIT=$(find "$DEST" -name musubid.service | head -n 1)
CONF="$DEST$SYSCONFDIR/musubi/musubid.conf"
COMPLETION="$DEST$DATADIR_/bash-completion/completions/musubi"
for f in "$UNIT" "$CONF" "$COMPLETION" "$DEST$SBINDIR/musubid" "$DEST$MANDIR/man8/musubid.8"; do
	[ -f "$f" ] || fail "meson install did not install $f"
done
[ "$(readlink "$DEST$DATADIR_/bash-completion/completions/musubid")" = musubi ] ||
	fail "the musubid completion is not a link to musubi's"
expect_in "$UNIT" "ExecStart=$SBINDIR/musubid --config $SYSCONFDIR/musubi/musubid.conf"

# --- The systemd unit ---------------------------------------------------------
stage "systemd unit"
if have systemd-analyze; then
	# verify needs ExecStart to exist and the Documentation= pages to be found.
	mkdir -p "$WORK/unit"
	sed "s|^ExecStart=$SBINDIR/musubid|ExecStart=$DEST$SBINDIR/musubid|" "$UNIT" \
		>"$WORK/unit/musubid.service"
	if ! MANPATH="$DEST$MANDIR" systemd-analyze verify "$WORK/unit/musubid.service" \
		>"$WORK/verify.out" 2>&1 || [ -s "$WORK/verify.out" ]; then
		fail "systemd-analyze verify complains about the unit"
		sed 's/^/  | /' "$WORK/verify.out" >&2
	fi
	systemd-analyze security --offline=yes "$WORK/unit/musubid.service" >"$WORK/sec.out" 2>&1 || true
	level=$(sed -n 's/.*Overall exposure level for musubid.service: \([0-9.]*\).*/\1/p' "$WORK/sec.out")
	python3 -c "import sys; sys.exit(0 if float('${level:-10}') <= 2.0 else 1)" ||
		fail "the unit's exposure level is ${level:-unknown}, want 2.0 or less"
	# The sysusers.d and tmpfiles.d snippets, applied to an empty root.
	mkdir -p "$WORK/root/etc"
	if systemd-sysusers --root="$WORK/root" "$(find "$DEST" -path '*/sysusers.d/musubi.conf')" \
		>"$WORK/sysusers.out" 2>&1; then
		grep -q '^musubi:x:[0-9]*:[0-9]*:musubi node:/var/lib/musubi:/usr/sbin/nologin$' \
			"$WORK/root/etc/passwd" || fail "sysusers.d does not make the musubi user"
		systemd-tmpfiles --root="$WORK/root" --create "$(find "$DEST" -path '*/tmpfiles.d/musubi.conf')" \
			>"$WORK/tmpfiles.out" 2>&1 || fail "systemd-tmpfiles refuses the snippet"
		[ "$(stat -c %a "$WORK/root/var/lib/musubi" 2>/dev/null)" = 750 ] ||
			fail "tmpfiles.d does not make /var/lib/musubi mode 0750"
	else
		fail "systemd-sysusers refuses the snippet"
		cat "$WORK/sysusers.out" >&2
	fi
else
	skip "systemd-analyze is missing (apt-get install systemd): the unit is not verified"
fi

# --- The example config ---------------------------------------------------------
stage "example config"
# Every key musubid reads is explained in the example, and every value the
# example shows is accepted: a node starts on it with all of them set.
for key in $(sed -n 's/.*strcmp(key, "\([a-z-]*\)").*/\1/p' "$SRC/node/config.c"); do
	grep -Eq "^#?$key = " "$CONF" || fail "the example config does not explain '$key'"
done
# Stores start with a 1 MiB map, so that it grows under the backups below.
export MUSUBI_MAP_INITIAL=1048576
fed_init 011002 222127
unset MUSUBI_MAP_INITIAL
A=011002 Y=222127
PORT=$(fed_port $Y)
sed -e 's/^#\([a-z]\)/\1/' \
	-e "s|^dir = .*|dir = $(fed_dir $Y)|" \
	-e "s|^listen = .*|listen = tcp://127.0.0.1:$PORT|" \
	-e "s|^pub = .*|pub = tcp://127.0.0.1:$((PORT + 1))|" \
	-e "s|^metrics = .*|metrics = 127.0.0.1:$((FED_BASE + 150))|" "$CONF" >"$WORK/all.conf"
"$MUSUBID" --config "$WORK/all.conf" >"$WORK/conf.log" 2>&1 &
BG=$!
n=0
until "$MUSUBI" status --node "tcp://127.0.0.1:$PORT" --dir "$(fed_dir $Y)" --timeout 500 \
	>/dev/null 2>&1; do
	n=$((n + 1))
	if [ $n -ge 40 ] || ! kill -0 "$BG" 2>/dev/null; then
		fail "musubid does not start with every setting of the example config"
		cat "$WORK/conf.log" >&2
		break
	fi
	sleep 0.1
done
stop_bg

# --- The sandbox against what musubid does ----------------------------------------
stage "sandbox"
# Two nodes replicate both ways while one runs under strace; every system
# call it makes must pass the unit's SystemCallFilter, every socket family
# its RestrictAddressFamilies, no mapping may be writable and executable
# (MemoryDenyWriteExecute), it writes only under its data directory
# (ProtectSystem=strict + ReadWritePaths) and reads only its own /proc
# entries (ProcSubset=pid).
if have strace && have systemd-analyze; then
	"$MUSUBI" publish --dir "$(fed_dir $A)" --dataset aed --schema aed@1 \
		"$DATA/aed/222127_yaizu.csv" >/dev/null
	strace -f -qq -o "$WORK/trace" "$MUSUBID" --dir "$(fed_dir $Y)" \
		--listen "tcp://127.0.0.1:$PORT" --peer $A --sync-interval-ms 200 \
		--metrics "127.0.0.1:$((FED_BASE + 151))" >"$WORK/traced.log" 2>&1 &
	BG=$!
	# Stopped through musubid itself: strace ends when its tracee does.
	# (By name: strace forks children of its own to probe the kernel.)
	n=0
	until TRACED=$(pgrep -P "$BG" -x musubid); do
		n=$((n + 1))
		[ $n -lt 200 ] && kill -0 "$BG" 2>/dev/null ||
			{ cat "$WORK/traced.log" >&2; fail "musubid does not start under strace"; exit 1; }
		sleep 0.05
	done
	BG="$TRACED $BG"
	fed_start $A $Y
	"$MUSUBI" publish --dir "$(fed_dir $Y)" --dataset toilets --schema public_toilet@2 \
		"$DATA/public_toilet/222127_yaizu.csv" >/dev/null
	fed_wait_rows $Y 011002/aed 82 30
	fed_wait_rows $A 222127/toilets "$(fed_rows $Y 222127/toilets)" 30
	"$MUSUBI" status --node "tcp://127.0.0.1:$PORT" --dir "$(fed_dir $Y)" >/dev/null 2>&1 ||
		fail "the traced node does not answer"
	# Its metrics thread (libmicrohttpd) must fit the sandbox too.
	for path in metrics healthz; do
		python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=10).read()' \
			"http://127.0.0.1:$((FED_BASE + 151))/$path" || fail "the traced node does not serve /$path"
	done
	stop_node $A
	stop_bg
	python3 - "$UNIT" "$WORK/trace" "$(cd "$(fed_dir $Y)" && pwd)" <<'PY' || fail "musubid does something its sandbox forbids"
import re, subprocess, sys
unit, trace, datadir = sys.argv[1:]
settings = {}
for line in open(unit):
    m = re.match(r"^(\w+)=(.*)$", line.strip())
    if m:
        settings.setdefault(m.group(1), []).append(m.group(2))
groups, cur = {}, None
for line in subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True,
                           text=True).stdout.splitlines():
    if line.startswith("@"):
        cur = groups.setdefault(line.split()[0], set())
    elif cur is not None and line.strip() and not line.strip().startswith("#"):
        cur.add(line.strip())
def expand(name):
    if not name.startswith("@"):
        return {name}
    return set().union(*(expand(x) for x in groups.get(name, ())))
allowed, denied = set(), set()
for f in settings["SystemCallFilter"]:
    if f.startswith("~"):
        denied |= set().union(*(expand(x) for x in f[1:].split()))
    else:
        allowed |= set().union(*(expand(x) for x in f.split()))
allowed -= denied
families = set(settings["RestrictAddressFamilies"][0].split())
mdwe = settings.get("MemoryDenyWriteExecute") == ["yes"]
strict = settings.get("ProtectSystem") == ["strict"]
writable = [p.lstrip("-") for v in settings.get("ReadWritePaths", []) for p in v.split()]
procsubset = settings.get("ProcSubset") == ["pid"]
bad = set()
for line in open(trace):
    m = re.match(r"^\d+\s+(\w+)\((.*)", line)
    if not m:
        continue
    call, args = m.groups()
    if call not in allowed:
        bad.add("system call %s is outside SystemCallFilter" % call)
    if call in ("socket", "socketpair"):
        fam = args.split(",")[0]
        if fam not in families:
            bad.add("socket family %s is outside RestrictAddressFamilies" % fam)
    if call in ("mmap", "mprotect", "pkey_mprotect"):
        prot = args.split(",")[2]
        if mdwe and "PROT_EXEC" in prot and ("PROT_WRITE" in prot or call != "mmap"):
            bad.add("%s(%s) breaks MemoryDenyWriteExecute" % (call, prot.strip()))
    if call in ("open", "openat"):
        pm = re.search(r'"([^"]*)", ([A-Z_|]+)', args)
        if pm and " = -1 " not in line:
            path, flags = pm.groups()
            # The data directory stands in for ReadWritePaths here.
            if strict and re.search(r"O_WRONLY|O_RDWR|O_CREAT", flags) and not (
                    path.startswith(datadir + "/") or path.startswith("/dev/")):
                bad.add("writes %s outside ReadWritePaths=%s" % (path, " ".join(writable)))
            if procsubset and path.startswith("/proc/") and \
                    not re.match(r"/proc/(self|thread-self|\d+)/", path):
                bad.add("reads %s, hidden by ProcSubset=pid" % path)
for b in sorted(bad):
    print(b)
sys.exit(1 if bad else 0)
PY
else
	skip "strace or systemd-analyze is missing: musubid is not checked against its sandbox"
fi

# --- Man pages -----------------------------------------------------------------
stage "man pages"
# Each renders without a warning, and names every flag its program's --help
# names (pages are written from --help: this catches a page left behind).
if have man; then
	for page in "$DEST$MANDIR"/man1/*.1 "$DEST$MANDIR"/man8/*.8; do
		name=$(basename "$page")
		name=${name%.*}
		MANWIDTH=80 man --warnings -l "$page" >"$WORK/page.txt" 2>"$WORK/page.err" ||
			fail "man -l $page fails"
		[ -s "$WORK/page.err" ] && { fail "$page renders with warnings"; cat "$WORK/page.err" >&2; }
		case $name in
		musubid) "$MUSUBID" --help ;;
		musubi) "$MUSUBI" --help ;;
		*) "$MUSUBI" "${name#musubi-}" --help ;;
		esac >"$WORK/help.txt"
		for flag in $(grep -o -- '--[a-z][a-z-]*' "$WORK/help.txt" | sort -u); do
			grep -q -- "$flag" "$WORK/page.txt" || fail "$name(1) does not mention $flag"
		done
	done
	[ -f "$DEST$MANDIR/man1/musubi-backup.1" ] || fail "no page for musubi backup"
else
	skip "man is missing (apt-get install man-db): the pages are not rendered"
fi

# --- Bash completion -------------------------------------------------------------
stage "bash completion"
expect_status 0 bash -n "$COMPLETION"
# complete WORDS...: what the completion offers for the last word.
complete_words() {
	bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
		case $1 in *musubid) _musubid ;; *) _musubi ;; esac
		printf "%s\n" "${COMPREPLY[@]}"' - "$COMPLETION" "$@" 2>&1 | sort | tr '\n' ' '
}
expect_completion() {
	want=$1
	shift
	got=$(complete_words "$@")
	[ "$got" = "$want " ] || fail "completing '$*' gives '$got', want '$want'"
}
expect_completion "backup" "$MUSUBI" ba
expect_completion "--dataset --dir --dry-run" "$MUSUBI" publish --d
expect_completion "revoke rotate" "$MUSUBI" trust r
expect_completion "--key" "$MUSUBI" trust rotate --k
expect_completion "check list show" "$MUSUBI" schema ""
expect_completion "--timeout" "$MUSUBI" status --node tcp://x --ti
expect_completion "--dir --help --verify" "$MUSUBI" backup --
expect_completion "debug error info warn" "$MUSUBID" --log-level ""
expect_completion "no yes" "$MUSUBID" --anonymous ""
mkdir -p "$WORK/cdir/sub" && touch "$WORK/cdir/file"
expect_completion "$WORK/cdir/sub" "$MUSUBI" backup --dir "$WORK/cdir/"

# --- Backup while publishing, restore, catch-up -------------------------------------
stage "backup while publishing"
# A publishes large files in a loop (a few seconds each, the map growing
# under the copy) while its musubid serves Y; backups taken meanwhile are
# consistent snapshots: each opens, matches its manifest and verifies.
"$GENCSV" 60000 >"$WORK/v0.csv"
"$GENCSV" 60000 1 3 >"$WORK/v1.csv"
SCHEMA="$SRC/tests/bench/bench_schema.json"
fed_start $A $Y
fed_start $Y $A
(
	i=0
	while [ ! -f "$WORK/stop" ]; do
		"$MUSUBI" publish --dir "$(fed_dir $A)" --dataset sites \
			--schema "$SCHEMA" --batch-rows 5000 "$WORK/v$((i % 2)).csv" >/dev/null 2>&1 ||
			echo "publish $i failed" >>"$WORK/publish.err"
		i=$((i + 1))
	done
) &
BG=$!
n=0
until [ "$(fed_rows $A 011002/sites)" -gt 0 ]; do
	n=$((n + 1))
	[ $n -lt 300 ] || { fail "the publish loop stores nothing"; break; }
	sleep 0.1
done
for b in 1 2 3; do
	before=$("$MUSUBI" status --dir "$(fed_dir $A)" --json | python3 -c '
import json, sys
print(sum(d["entries"] for d in json.load(sys.stdin)["datasets"]))')
	expect_status 0 "$MUSUBI" backup --dir "$(fed_dir $A)" "$WORK/backup$b"
	expect_in "$WORK/out" "matches its manifest"
	expect_status 0 "$MUSUBI" verify --dir "$WORK/backup$b"
	expect_in "$WORK/out" "verified"
	expect_status 0 "$MUSUBI" backup --verify "$WORK/backup$b"
	after=$("$MUSUBI" status --dir "$(fed_dir $A)" --json | python3 -c '
import json, sys
print(sum(d["entries"] for d in json.load(sys.stdin)["datasets"]))')
	echo "backup $b taken while the log grew from $before to $after entries"
	[ "$after" -gt "$before" ] || writes_missed=$((${writes_missed:-0} + 1))
	[ "$(stat -c %a "$WORK/backup$b/keys/signing.pem")" = 600 ] ||
		fail "the backup's private key is not mode 0600"
done
[ "${writes_missed:-0}" -lt 3 ] || fail "no backup overlapped a publish: the test proves nothing"
touch "$WORK/stop"
wait "$BG"
BG=""
[ -f "$WORK/publish.err" ] && fail "publishes failed during the backups: $(cat "$WORK/publish.err")"

# A backup is refused over an existing one, and a broken one is named.
expect_status 3 "$MUSUBI" backup --dir "$(fed_dir $A)" "$WORK/backup1"
expect_in "$WORK/err" "exists already"
cp -a "$WORK/backup1" "$WORK/tampered"
echo "# changed" >>"$WORK/tampered/keys/signing.pub.pem"
expect_status 1 "$MUSUBI" backup --verify "$WORK/tampered"
expect_in "$WORK/err" "key file signing.pub.pem differs"
rm "$WORK/tampered/MANIFEST.json"
expect_status 1 "$MUSUBI" backup --verify "$WORK/tampered"
expect_in "$WORK/err" "did not finish"

stage "restore and catch-up"
# Restore A from the oldest backup: it fetches its own newer heads back
# from Y and ends identical to what Y holds, verified.
fed_wait_rows $Y 011002/sites 60000 60
root_of() {
	"$MUSUBI" status --dir "$1" --json | python3 -c '
import json, sys
print(next(d["root"] + "@" + str(d["entries"]) for d in json.load(sys.stdin)["datasets"]
           if d["dataset"] == sys.argv[1]))' "$2"
}
# Y has everything A published when its log stops changing.
want=""
n=0
until [ "$want" = "$(root_of "$(fed_dir $Y)" 011002/sites)" ] || [ $n -ge 60 ]; do
	want=$(root_of "$(fed_dir $Y)" 011002/sites)
	n=$((n + 1))
	sleep 1
done
stop_node $A
mv "$(fed_dir $A)" "$WORK/a.before-restore"
cp -a "$WORK/backup1" "$(fed_dir $A)"
[ "$(root_of "$(fed_dir $A)" 011002/sites)" != "$want" ] || fail "the backup already holds the newest head"
# The restore guard: before its node has caught up, a publish from the
# restored directory would fork A's log that Y holds; it is refused, says
# why and what to do, and writes nothing.
restored_root=$(root_of "$(fed_dir $A)" 011002/sites)
expect_status 0 "$MUSUBI" status --dir "$(fed_dir $A)" --json
[ "$(json_field "$WORK/out" 'd["restored_from_backup"] is not None')" = True ] ||
	fail "status does not say the directory was restored from a backup"
expect_status 1 "$MUSUBI" publish --dir "$(fed_dir $A)" --dataset sites --schema "$SCHEMA" "$WORK/v0.csv"
expect_in "$WORK/err" "restored from a backup"
expect_in "$WORK/err" "--after-restore"
[ "$(root_of "$(fed_dir $A)" 011002/sites)" = "$restored_root" ] || fail "a refused publish changed the log"
fed_start $A $Y
deadline=$(($(date +%s) + 60))
until [ "$(root_of "$(fed_dir $A)" 011002/sites)" = "$want" ]; do
	if [ "$(date +%s)" -ge "$deadline" ]; then
		fail "restored A does not catch up to $want (has $(root_of "$(fed_dir $A)" 011002/sites))"
		break
	fi
	sleep 0.2
done
expect_status 0 "$MUSUBI" verify --dir "$(fed_dir $A)"
expect_in "$WORK/out" "verified"
# Caught up: the node lifts the guard by itself, and publishing works again.
deadline=$(($(date +%s) + 60))
until "$MUSUBI" status --dir "$(fed_dir $A)" --json |
	python3 -c 'import json,sys; sys.exit(json.load(sys.stdin)["restored_from_backup"] is not None)'; do
	if [ "$(date +%s)" -ge "$deadline" ]; then
		fail "the caught-up node does not lift the restore guard"
		break
	fi
	sleep 0.5
done
expect_status 0 "$MUSUBI" publish --dir "$(fed_dir $A)" --dataset sites --schema "$SCHEMA" "$WORK/v0.csv"
# Nothing the restored node signed (its access log goes on) forked a log
# Y holds: a few seconds later Y still has no evidence against it.
sleep 3
expect_status 0 "$MUSUBI" status --node "tcp://127.0.0.1:$(fed_port $Y)" --dir "$(fed_dir $Y)" --json
[ "$(json_field "$WORK/out" 'd["evidence"]')" = 0 ] || fail "Y holds evidence against restored A"
finish
