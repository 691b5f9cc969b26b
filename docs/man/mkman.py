#!/usr/bin/env python3
"""mkman.py - write musubi's man pages from the programs' own --help texts.

The pages say what --help says, so they cannot drift from the programs:
musubid.8 (with the settings of deploy/musubid.conf), musubi.1, and one
musubi-COMMAND.1 for each COMMAND given. A command whose help lists
"Subcommands:" gets each subcommand's --help as a subsection. What --help
does not carry (exit status, files, environment, see also) is added here.

usage: mkman.py --musubi EXE --musubid EXE --conf FILE --version V --outdir DIR COMMAND...
"""
import argparse
import os
import re
import subprocess
import sys

MANUAL = "musubi manual"

EXIT_STATUS = [
    ("0", "success"),
    ("1", "the command ran and found something wrong (a problem in the data, a "
          "refused trust list, a failed check); the output says what and where"),
    ("2", "the command line is wrong"),
    ("3", "the command could not run (a file, the store or the network failed)"),
]

ENVIRONMENT = [
    ("MUSUBI_MAP_INITIAL", "the initial LMDB map size in bytes of a store opened "
     "for writing (default 1 GiB); the map doubles whenever it fills"),
    ("MUSUBI_MAP_MAX", "the largest the map of a store may grow, in bytes (default "
     "1 TiB); a write that needs more fails with \"store cannot grow\" and writes "
     "nothing (musubid's setting is map-max)"),
    ("NO_COLOR", "when set and not empty, musubi status writes no colour on a "
     "terminal either (--color=always still does)"),
]

# Further --help texts worth a subsection: (command, argv after "musubi").
EXTRA_HELP = {
    "status": [["status", "--node", "ENDPOINT", "--help"]],
}

SEE_ALSO = {
    "backup": ["musubi-verify(1)", "musubi-status(1)", "musubid(8)"],
    "init": ["musubi-keygen(1)", "musubi-trust(1)", "musubid(8)"],
    "keygen": ["musubi-init(1)", "musubi-trust(1)"],
    "publish": ["musubi-schema(1)", "musubi-status(1)", "musubi-verify(1)"],
    "trust": ["musubi-init(1)", "musubi-keygen(1)", "musubi-verify(1)"],
}


def run_help(exe, args):
    out = subprocess.run([exe] + args, capture_output=True, text=True, check=False)
    if out.returncode != 0 or not out.stdout.strip():
        sys.exit("mkman: '%s %s' gave no help (exit %d): %s" %
                 (exe, " ".join(args), out.returncode, out.stderr.strip()))
    return out.stdout


def esc(text):
    """Text as troff shows it: backslashes and hyphens escaped, no line
    starting with a control character."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + l if l[:1] in (".", "'") else l for l in text.split("\n"))


def blocks(text):
    """Paragraphs of a help text: lists of lines split at blank lines."""
    out, cur = [], []
    for line in text.rstrip("\n").split("\n"):
        if line.strip():
            cur.append(line.rstrip())
        elif cur:
            out.append(cur)
            cur = []
    if cur:
        out.append(cur)
    return out


TERM = re.compile(r"^(\s*)(\S(?:.*?\S)?)(\s{2,}|\s(?=\S))(\S.*)$")


def as_list(block):
    """A block of "term  description" lines (descriptions aligned, long
    ones continued under themselves) as [(term, description)], or None."""
    cols = {}
    for line in block:
        m = re.match(r"^(\s*\S.*?\S)\s{2,}\S", line) or re.match(r"^(\s*\S+)\s{2,}\S", line)
        if m:
            col = len(line) - len(line[m.end() - 1:])
            cols[col] = cols.get(col, 0) + 1
    if not cols:
        return None
    col = max(cols, key=cols.get)
    if cols[col] < (len(block) + 1) // 3 or block[0][:col].strip() == "":
        return None
    items = []
    for line in block:
        head, tail = line[:col], line[col:]
        if head.strip() == "":
            if not items:
                return None
            items[-1][1] += " " + tail.strip()
        elif head.endswith(" ") or tail == "":
            items.append([head.strip(), tail.strip()])
        else:   # a term longer than the column, one space before its text
            m = TERM.match(line)
            if m is None:
                return None
            items.append([m.group(2), m.group(4)])
    if any(t.strip() == "" or " " * 3 in t for t, _ in items):
        return None
    return items


def term_troff(term):
    """An option or name in bold, its argument in italics."""
    first, _, rest = term.partition(" ")
    out = "\\fB" + esc(first) + "\\fR"
    if rest:
        out += " \\fI" + esc(rest) + "\\fR"
    return out


def parse_help(text):
    """(synopsis lines, description parts, option items). A description
    part is ("text", None, lines) or ("list", header or None, items)."""
    bl = blocks(text)
    synopsis = []
    if bl and bl[0][0].startswith("usage:"):
        for line in bl.pop(0):
            # "usage: " goes; continuation lines keep their alignment.
            synopsis.append(line[len("usage:"):].strip() if line.startswith("usage:")
                            else line[len("usage: "):])
    desc, opts = [], []
    for b in bl:
        head = None
        if len(b) > 1 and b[0].endswith(":") and not b[0].startswith(" "):
            head, items = b[0], as_list(b[1:])
        else:
            items = as_list(b)
        if items and head is None and all(t.startswith("-") for t, _ in items):
            opts.extend(items)
        elif items:
            desc.append(("list", head, items))
        else:
            desc.append(("text", None, b))
    return synopsis, desc, opts


def synopsis_troff(lines):
    return [".nf"] + [esc(l) for l in lines] + [".fi"]


def items_troff(items):
    out = []
    for term, text in items:
        out += [".TP", term_troff(term), esc(text)]
    return out


def desc_troff(desc):
    out = []
    for kind, head, body in desc:
        if kind == "list":
            if head:
                out += [".PP", "\\fB%s\\fR" % esc(head)]
            out += items_troff(body)
        else:
            out += [".PP", esc("\n".join(l.strip() for l in body))]
    return out


def section(name, body):
    return [".SH " + name] + body


def defs(pairs, bold=True):
    out = []
    for k, v in pairs:
        out += [".TP", ("\\fB%s\\fR" % esc(k)) if bold else esc(k), esc(v)]
    return out


def header(title, sec, version):
    # .nh .ad l: no hyphenation, ragged right; paths and flags stay whole.
    return ['.\\" Generated by docs/man/mkman.py from --help; do not edit.',
            '.TH %s %s "" "musubi %s" "%s"' % (title.upper().replace("-", "\\-"), sec, version,
                                              MANUAL),
            ".nh", ".ad l"]


def page_for_help(text, skip_list=None):
    synopsis, desc, opts = parse_help(text)
    if skip_list is not None:
        desc = [d for d in desc if not (d[0] == "list" and d[1] == skip_list)]
    out = section("SYNOPSIS", synopsis_troff(synopsis)) if synopsis else []
    out += section("DESCRIPTION", desc_troff(desc))
    if opts:
        out += section("OPTIONS", items_troff(opts))
    return out, desc


def command_page(musubi, cmd, summary, version):
    text = run_help(musubi, [cmd, "--help"])
    out = header("musubi-" + cmd, 1, version)
    out += section("NAME", ["musubi\\-%s \\- %s" % (esc(cmd), esc(summary))])
    body, desc = page_for_help(text)
    out += body
    subs = [t for kind, head, items in desc if kind == "list" and head == "Subcommands:"
            for t, _ in items]
    for args in [[cmd, s, "--help"] for s in subs] + EXTRA_HELP.get(cmd, []):
        synopsis, sdesc, sopts = parse_help(run_help(musubi, args))
        title = " ".join(a for a in args if a not in ("--help", "ENDPOINT"))
        out += [".SS " + esc("musubi " + title)] + synopsis_troff(synopsis)
        out += desc_troff(sdesc) + items_troff(sopts)
    out += section("EXIT STATUS", defs(EXIT_STATUS))
    out += section("ENVIRONMENT", defs(ENVIRONMENT))
    see = ["musubi(1)"] + SEE_ALSO.get(cmd, [])
    out += section("SEE ALSO", [",\n".join("\\fB%s\\fR(%s)" % (esc(s[:-3]), s[-2])
                                          for s in see)])
    return out


def musubi_page(musubi, commands, version):
    text = run_help(musubi, ["--help"])
    out = header("musubi", 1, version)
    out += section("NAME", ["musubi \\- publish, replicate and check a municipality's signed "
                            "open\\-data logs"])
    body, _ = page_for_help(text, skip_list="Commands:")
    out += body
    out += section("COMMANDS", [l for c, s in commands for l in
                                (".TP", "\\fB%s\\fR" % esc(c),
                                 "%s; see \\fBmusubi\\-%s\\fR(1)." % (esc(s), esc(c)))])
    out += section("EXIT STATUS", defs(EXIT_STATUS))
    out += section("ENVIRONMENT", defs(ENVIRONMENT))
    out += section("SEE ALSO", ["\\fBmusubid\\fR(8)"])
    return out


def conf_settings(path):
    """(key, example value, explanation) of each setting in the example
    config: the comment paragraph above each "key = value" or "#key = value"
    line, its first words "key:" dropped."""
    settings, comment = [], []
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        m = re.match(r"^#?([a-z][a-z-]*) = (.*)$", line)
        if m:
            if comment:
                text = " ".join(comment)
                text = re.sub(r"^%s:\s*" % re.escape(m.group(1)), "", text)
                settings.append((m.group(1), m.group(2), text))
            comment = []
        elif line.startswith("# "):
            comment.append(line[2:])
        elif line.strip() in ("", "#"):
            comment = []
    return settings


def musubid_page(musubid, conf, version):
    text = run_help(musubid, ["--help"])
    out = header("musubid", 8, version)
    out += section("NAME", ["musubid \\- the musubi node: serve and replicate signed open\\-data "
                            "logs"])
    body, _ = page_for_help(text)
    out += body
    seen, cfg = set(), []
    for key, value, explanation in conf_settings(conf):
        if key in seen:
            continue
        seen.add(key)
        cfg += [".TP", "\\fB%s\\fR = \\fI%s\\fR" % (esc(key), esc(value)), esc(explanation)]
    out += section("CONFIGURATION", [
        ".PP", esc("The file given to --config has one \"key = value\" a line; '#' starts a "
                   "comment; peer and replicate may repeat. Flags override the file. "
                   "The example /etc/musubi/musubid.conf explains each setting:")] + cfg)
    out += section("SIGNALS", defs([
        ("SIGTERM, SIGINT", "stop: finish the work in hand, close the sockets and the store. "
         "Every store write is one LMDB transaction, so even SIGKILL loses only the batch "
         "in flight, which is fetched again."),
    ]))
    out += section("FILES", defs([
        ("/etc/musubi/musubid.conf", "the settings the systemd unit starts musubid with"),
        ("/var/lib/musubi", "the data directory of a packaged install (user musubi)"),
        ("DATADIR/store/", "the LMDB environment: data.mdb, lock.mdb"),
        ("DATADIR/keys/", "signing.pem (Ed25519) and transport.pem (X25519), mode 0600, "
         "with their .pub.pem"),
        ("DATADIR/musubid.lock", "held while a musubid runs on DATADIR; a second one refuses "
         "to start"),
        ("DATADIR/musubid.sock", "the control socket through which local publishes wake the "
         "node"),
    ], bold=False))
    out += section("EXIT STATUS", defs([
        ("0", "stopped by a signal"),
        ("1", "could not start (the data directory, its keys, an endpoint) or failed while "
              "running; the log says why"),
        ("2", "bad flags or a bad line in the config file"),
    ]))
    out += section("ENVIRONMENT", defs(ENVIRONMENT))
    out += section("SEE ALSO", ["\\fBmusubi\\fR(1), \\fBmusubi\\-init\\fR(1), "
                                "\\fBmusubi\\-backup\\fR(1), \\fBsystemd.exec\\fR(5)"])
    return out


def command_summaries(musubi):
    text = run_help(musubi, ["--help"])
    return [(m.group(1), m.group(2).strip()) for m in
            re.finditer(r"^  ([a-z][a-z0-9-]*)\s{2,}(.*)$", text.split("Commands:", 1)[-1], re.M)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--musubi", required=True)
    ap.add_argument("--musubid", required=True)
    ap.add_argument("--conf", required=True)
    ap.add_argument("--version", required=True)
    ap.add_argument("--outdir", required=True)
    ap.add_argument("commands", nargs="*")
    a = ap.parse_args()
    summaries = dict(command_summaries(a.musubi))
    missing = sorted(set(summaries) - set(a.commands))
    if missing:
        print("mkman: no page requested for: %s" % " ".join(missing), file=sys.stderr)
    pages = {"musubi.1": musubi_page(a.musubi, list(summaries.items()), a.version),
             "musubid.8": musubid_page(a.musubid, a.conf, a.version)}
    for c in a.commands:
        if c not in summaries:
            sys.exit("mkman: 'musubi --help' does not list %s" % c)
        pages["musubi-%s.1" % c] = command_page(a.musubi, c, summaries[c], a.version)
    for name, lines in pages.items():
        with open(os.path.join(a.outdir, name), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
