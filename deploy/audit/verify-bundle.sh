#!/bin/sh
# verify-bundle.sh - check a musubi audit bundle with stock tools only:
# POSIX sh, od, awk, tail, cmp and openssl (3.0 or later). No musubi.
#
#  1. Recompute every leaf hash, SHA-256(0x00 || entry), and the RFC 9162
#     root at every head's size with openssl dgst -sha256, and compare it
#     with roots.txt and with the root inside the signed TreeHead.
#  2. Check every head: heads/SIZE.msg is "musubi tree head v1\n" and one
#     TreeHead naming this dataset, SIZE, the root, and the key id of the
#     key file roots.txt names; heads/SIZE.sig verifies over it
#     (openssl pkeyutl -verify -rawin); heads/SIZE.signed holds exactly
#     those bytes and that signature.
#  3. Each pair in fork/ (if any): two heads, both validly signed, that do
#     not extend one another - proof that the publisher showed two
#     histories. It is reported, and the script fails.
#
# Exit 0 when everything holds, 1 on any mismatch (or fork), 2 when the
# bundle cannot be read. The byte formats are in musubi's docs/AUDIT.md.
# The key files are believed as given: compare them with the keys the
# federation's trust list names (trust/).
# Word splitting of "DATASET SIZE ROOT ..." lines is meant: their fields
# are digits, hex and [0-9a-z_/-] (treehead checks the dataset name).
# shellcheck disable=SC2086
set -u
cd "$(dirname "$0")" || exit 2
T="${TMPDIR:-/tmp}/musubi-verify.$$"
mkdir "$T" || exit 2
trap 'rm -rf "$T"' EXIT
trap 'exit 2' HUP INT TERM
bad=0

fail() {
	echo "FAIL: $*"
	bad=1
}

hex() { od -An -v -tx1 "$1" | tr -d ' \n'; }
sha() { openssl dgst -sha256 -binary; }
# node hash SHA-256(0x01 || left || right) of two 32-byte files into $3
node() { { printf '\001'; cat "$1" "$2"; } | sha >"$3"; }

# The TreeHead in a signed message FILE.msg, as "DATASET SIZE ROOT KEYID"
# (root and key id in hex), or nothing if the file is not exactly the
# 20-byte prefix "musubi tree head v1\n" followed by one TreeHead with its
# fields in the order protobuf writes them, each at most once:
#   1 dataset (bytes)  2 size (varint)  3 root (32 bytes)  4 time_us (varint)
#   5 trust_version (varint)  6 publisher (bytes)  7 key_id (32 bytes)
#   8 members_only (varint)  9 license (bytes)
treehead() {
	od -An -v -tu1 "$1" | awk '
	function varint(   v, m, b, k) {
		v = 0; m = 1
		for (k = 0; k < 10; k++) {
			if (p >= n) { bad = 1; return 0 }
			b = byte[p++]; v += (b % 128) * m; m *= 128
			if (b < 128) return v
		}
		bad = 1; return 0
	}
	function hexof(at, len,   s, i) {
		s = ""
		for (i = 0; i < len; i++) s = s sprintf("%02x", byte[at + i])
		return s
	}
	{ for (i = 1; i <= NF; i++) byte[n++] = $i + 0 }
	END {
		split("109 117 115 117 98 105 32 116 114 101 101 32 104 101 97 100 32 118 49 10", pre, " ")
		split("2 0 2 0 0 2 2 0 2", wire, " ")
		if (n < 20) exit 1
		for (i = 0; i < 20; i++) if (byte[i] != pre[i + 1]) exit 1
		p = 20; last = 0
		while (p < n) {
			tag = varint(); f = int(tag / 8); wt = tag % 8
			if (bad || f <= last || f > 9 || wt != wire[f]) exit 1
			last = f
			if (wt == 0) { v = varint(); if (f == 2) size = v; continue }
			len = varint()
			if (bad || p + len > n) exit 1
			if (f == 1) {
				for (i = 0; i < len; i++) {
					c = byte[p + i]
					if (!(c >= 48 && c <= 57 || c >= 97 && c <= 122 || c == 95 || c == 47 || c == 45)) exit 1
					ds = ds sprintf("%c", c)
				}
			} else if (f == 3) {
				if (len != 32) exit 1
				root = hexof(p, 32)
			} else if (f == 7) {
				if (len != 32) exit 1
				kid = hexof(p, 32)
			}
			p += len
		}
		if (bad || ds == "" || root == "" || kid == "") exit 1
		printf "%s %.0f %s %s\n", ds, size, root, kid
	}'
}

# The key id of an Ed25519 public key file: SHA-256 of its raw 32 bytes,
# which are the last 32 of its 44-byte DER form (12 fixed bytes first).
keyid() {
	der=$(openssl pkey -pubin -in "$1" -outform DER 2>/dev/null | od -An -v -tx1 | tr -d ' \n')
	case $der in
	302a300506032b6570032100????????????????????????????????????????????????????????????????)
		openssl pkey -pubin -in "$1" -outform DER | tail -c 32 | sha >"$T/raw"
		hex "$T/raw" ;;
	*) echo "not-an-ed25519-key" ;;
	esac
}

# A protobuf varint of $1, as bytes (printf of an octal escape it builds).
# shellcheck disable=SC2059
varint() {
	v=$1
	while [ "$v" -ge 128 ]; do
		printf "\\$(printf '%03o' $((v % 128 + 128)))"
		v=$((v / 128))
	done
	printf "\\$(printf '%03o' "$v")"
}

# Check a signed head: NAME.msg and NAME.sig with KEYFILE; NAME.signed when
# there is one. Prints "DATASET SIZE ROOT" of the head, or a FAIL line and
# returns 1 (it runs in a subshell: the caller records the failure).
check_head() {
	name=$1 key=$2
	if [ ! -f "$name.msg" ] || [ ! -f "$name.sig" ] || [ ! -f "$key" ]; then
		fail "$name: .msg, .sig or key file $key is missing"
		return 1
	fi
	th=$(treehead "$name.msg")
	if [ -z "$th" ]; then
		fail "$name.msg is not \"musubi tree head v1\\n\" followed by one TreeHead"
		return 1
	fi
	set -- $th
	if [ "$4" != "$(keyid "$key")" ]; then
		fail "$name.msg names key id $4, which is not the key in $key"
		return 1
	fi
	if ! openssl pkeyutl -verify -pubin -inkey "$key" -rawin -in "$name.msg" \
		-sigfile "$name.sig" >/dev/null 2>&1; then
		fail "$name.sig does not verify over $name.msg under $key"
		return 1
	fi
	if [ -f "$name.signed" ]; then
		body=$(($(wc -c <"$name.msg") - 20))
		{ printf '\012'; varint "$body"; tail -c "$body" "$name.msg"; printf '\022\100'
		  cat "$name.sig"; } >"$T/signed"
		if ! cmp -s "$T/signed" "$name.signed"; then
			fail "$name.signed is not the SignedHead of $name.msg and $name.sig"
			return 1
		fi
	fi
	echo "$1 $2 $3"
}

if [ ! -f roots.txt ] || [ ! -d entries ]; then
	echo "no roots.txt or entries/ here: not a bundle" >&2
	exit 2
fi

# Sizes at which a root is needed: every head, and the smaller head of
# each fork pair of different sizes.
cut -d' ' -f1 roots.txt >"$T/want"
for a in fork/*.a.msg; do
	[ -f "$a" ] || continue
	th=$(treehead "$a") && [ -n "$th" ] && echo "$th" | cut -d' ' -f2 >>"$T/want"
done
sort -n -u "$T/want" >"$T/sizes"

# One pass over the entries, keeping the RFC 9162 frontier: peak.L is the
# root of a perfect subtree of 2^L leaves, for each set bit L of the count.
append() {
	l=0
	while [ -f "$T/peak.$l" ]; do
		node "$T/peak.$l" "$T/cur" "$T/next"
		mv "$T/next" "$T/cur"
		rm "$T/peak.$l"
		l=$((l + 1))
	done
	mv "$T/cur" "$T/peak.$l"
}
root() {
	have=0 l=0
	while [ $l -lt 64 ]; do
		if [ -f "$T/peak.$l" ]; then
			if [ $have = 0 ]; then
				cp "$T/peak.$l" "$T/acc"
				have=1
			else
				node "$T/peak.$l" "$T/acc" "$T/next"
				mv "$T/next" "$T/acc"
			fi
		fi
		l=$((l + 1))
	done
	[ $have = 1 ] || printf '' | sha >"$T/acc"
	hex "$T/acc"
}
n=0
: >"$T/computed"
while read -r size; do
	while [ "$n" -lt "$size" ]; do
		f=entries/$(printf '%08d' "$n").bin
		[ -f "$f" ] || break 2
		printf '\000' | cat - "$f" | sha >"$T/cur"
		append
		n=$((n + 1))
	done
	echo "$size $(root)" >>"$T/computed"
done <"$T/sizes"
entries=$(find entries -type f | wc -l)
[ "$entries" -eq "$n" ] || [ "$n" -lt "$(tail -n 1 "$T/sizes")" ] ||
	fail "entries/ holds $entries files; the heads cover $n (entries 0 to $((n - 1)))"

computed() { awk -v s="$1" '$1 == s { print $2 }' "$T/computed"; }

dataset=""
heads=0
while read -r size want key; do
	got=$(computed "$size")
	if [ -z "$got" ]; then
		fail "head $size: the bundle holds only $n entries"
		continue
	fi
	[ "$got" = "$want" ] || fail "head $size: the entries give root $got, roots.txt says $want"
	th=$(check_head "heads/$size" "$key") || { echo "$th"; bad=1; continue; }
	set -- $th
	[ -n "$dataset" ] || dataset=$1
	[ "$1" = "$dataset" ] || fail "heads/$size.msg is a head of $1, not of $dataset"
	[ "$2" = "$size" ] || fail "heads/$size.msg is a head of size $2"
	[ "$3" = "$got" ] || fail "heads/$size.msg signs root $3; the entries give $got"
	heads=$((heads + 1))
done <roots.txt

forks=0
for a in fork/*.a.msg; do
	[ -f "$a" ] || continue
	k=${a%.a.msg}
	read -r ka kb <"$k.keys" || { fail "$k.keys is missing"; continue; }
	A=$(check_head "$k.a" "$ka") || { echo "$A"; bad=1; continue; }
	B=$(check_head "$k.b" "$kb") || { echo "$B"; bad=1; continue; }
	set -- $A $B
	if [ "$1" != "$dataset" ] || [ "$4" != "$dataset" ]; then
		fail "$k: the pair is not of $dataset"
	elif [ "$2" = "$5" ] && [ "$3" != "$6" ]; then
		echo "FORK: the publisher signed two heads of size $2: root $3 ($k.a) and root $6 ($k.b)"
		forks=$((forks + 1))
	elif [ "$2" -lt "$5" ] && cmp -s "$k.b.msg" "heads/$5.msg" && [ -n "$(computed "$2")" ] &&
		[ "$(computed "$2")" != "$3" ]; then
		echo "FORK: the publisher signed root $3 at size $2 ($k.a), but the head at size $5" \
			"($k.b, heads/$5) has root $(computed "$2") there"
		forks=$((forks + 1))
	else
		fail "$k: the two heads do not show a fork with this bundle's entries"
	fi
done
[ $forks -eq 0 ] || bad=1

if [ $bad -ne 0 ]; then
	echo "the bundle does NOT verify"
	exit 1
fi
echo "ok: $dataset: $n entries, $heads signed heads; every root and signature verifies"
