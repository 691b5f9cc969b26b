#!/bin/sh
# Run unit test binaries under valgrind's memcheck: any memory error, and
# any block definitely lost, fails the run (as the sanitizer build catches
# them in instrumented code, valgrind also sees inside the libraries).
# Usage: tests/valgrind.sh DIR     (DIR holds the test_* binaries of a build
#                                   without sanitizers, e.g. build/tests)
# Exit 77 (meson: skipped) when valgrind is not installed.
set -u
dir=$1
command -v valgrind >/dev/null 2>&1 || { echo "valgrind is not installed: skipped"; exit 77; }
work=$(mktemp -d "${TMPDIR:-/tmp}/mu-valgrind-XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

status=0
ran=0
for t in merkle sig csv schema store publish; do
	exe=$dir/test_$t
	[ -x "$exe" ] || continue
	ran=$((ran + 1))
	start=$(date +%s)
	valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
		--show-leak-kinds=definite --log-file="$work/$t.valgrind" "$exe" >"$work/$t.out" 2>&1
	rc=$?
	secs=$(($(date +%s) - start))
	if [ "$rc" -eq 0 ]; then
		echo "ok: test_$t (${secs}s)"
		continue
	fi
	status=1
	if [ "$rc" -eq 99 ]; then
		echo "FAILED: test_$t: valgrind reports errors:"
		cat "$work/$t.valgrind"
	else
		echo "FAILED: test_$t exited $rc under valgrind:"
		tail -n 40 "$work/$t.out"
	fi
done
[ "$ran" -gt 0 ] || { echo "no unit test binaries in $dir"; exit 1; }
exit $status
