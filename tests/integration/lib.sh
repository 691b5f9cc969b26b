# lib.sh - shared helpers of musubi's shell tests. Source it; it expects
# MUSUBI (the musubi binary) and DATA (the bundled data) in the environment.
set -eu

WORK=$(mktemp -d /tmp/mu-it-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
failures=0

fail() {
	echo "FAIL: $*" >&2
	failures=$((failures + 1))
}

# expect_status CODE CMD...: run CMD, fail unless it exits with CODE.
expect_status() {
	_want=$1
	shift
	set +e
	"$@" >"$WORK/out" 2>"$WORK/err"
	_got=$?
	set -e
	if [ "$_got" -ne "$_want" ]; then
		fail "'$*' exited $_got, wanted $_want"
		sed 's/^/  | /' "$WORK/out" "$WORK/err" >&2
	fi
}

# expect_in FILE TEXT: FILE contains TEXT.
expect_in() {
	grep -qF -- "$2" "$1" || { fail "$1 lacks '$2'"; sed 's/^/  | /' "$1" >&2; }
}

finish() {
	if [ "$failures" -ne 0 ]; then
		echo "$failures failure(s)" >&2
		exit 1
	fi
	echo "ok"
}

# json_field FILE EXPR: a value from a JSON document, via python3.
# wait_for_log FILE TEXT SECONDS WHAT: until FILE holds TEXT; after SECONDS,
# fail "WHAT" (a sentence saying what did not happen) and go on.
wait_for_log() {
	_n=0
	until grep -qF -- "$2" "$1"; do
		_n=$((_n + 1))
		[ $_n -lt $(($3 * 10)) ] || { fail "$4"; return 0; }
		sleep 0.1
	done
}

json_field() {
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {"d": d}))' "$1" "$2"
}
