"""Real English sentences for sentence encoders, offline from Debian: the prose of Python's own
documentation (`python3.11-doc`: tutorial, FAQ, HOWTOs, reference; PSF licence) and plain quotes
from `fortunes` / `fortunes-min` (a few of their files: literature, wisdom, science, ...).
Sentences of 5-40 words, deduplicated; a seeded split gives OUT/calib.txt (half of each source)
and OUT/eval.txt (held out), one sentence per line.

Usage: python tools/fetch_sentences.py OUT [--calib 256] [--eval 512]
Needs apt-get (packages are downloaded, not installed) and dpkg-deb.
"""

from __future__ import annotations

import argparse
import glob
import os
import random
import re
import subprocess
import sys
import tempfile

PACKAGES = ("python3.11-doc", "fortunes", "fortunes-min")
FORTUNE_FILES = ("fortunes", "literature", "wisdom", "people", "science", "education", "work",
                 "politics", "humorists", "computers")  # fmt: skip
_OK = re.compile(r"^[A-Z][A-Za-z0-9 ,;:'\"()\-.!?%/]*[.!?]$")
_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'])")


def fetch(workdir: str) -> str:
    """The packages' files unpacked under workdir/root."""
    root = os.path.join(workdir, "root")
    for package in PACKAGES:
        cmd = ["apt-get", "download", "-q", package]
        if subprocess.run(cmd, cwd=workdir, capture_output=True).returncode != 0:
            if os.geteuid() == 0:
                subprocess.run(["apt-get", "update", "-qq"], check=True)
            subprocess.run(cmd, cwd=workdir, check=True, capture_output=True)
    for deb in sorted(glob.glob(os.path.join(workdir, "*.deb"))):
        subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
    return root


def rst_paragraphs(text: str) -> list[str]:
    """The prose paragraphs of a reStructuredText source: no directives, code, lists, titles."""
    out, in_code, indent = [], False, 0
    for line in text.splitlines():
        s, ind = line.strip(), len(line) - len(line.lstrip())
        if in_code:
            if s == "" or ind > indent:
                continue
            in_code = False
        if s.startswith((".. ", ">>>", "...")):
            in_code = s.startswith((".. code", ".. doctest", ".. productionlist", ">>>"))
            indent = ind
            out.append("")
            continue
        if re.fullmatch(r"[=\-~^*#+`'\"]{3,}", s):
            out.append("")
            continue
        if s.endswith("::"):
            in_code, indent = True, ind
            s = s[:-2] + ("" if s.endswith(" ::") else ":")
        if s.startswith(("*", "-", "|", "+")) or re.match(r"^\d+\.", s):
            out.append("")
            continue
        out.append(s)
    t = "\n".join(out)
    t = re.sub(r":[a-z:]+:`~?([^`<]*?)(?:\s*<[^>]*>)?`", r"\1", t)  # roles
    t = re.sub(r"`([^`<]*?)\s*<[^>]*>`_+", r"\1", t)  # links
    t = re.sub(r"``([^`]*)``", r"\1", t)
    t = re.sub(r"`([^`]*)`_*", r"\1", t)
    t = re.sub(r"\*\*?([^*]+)\*\*?", r"\1", t)
    return [" ".join(p.split()) for p in re.split(r"\n\s*\n", t)]


def keep(s: str) -> bool:
    n = len(s.split())
    return (
        5 <= n <= 40
        and bool(_OK.match(s))
        and not re.search(r"\b(e\.g|i\.e|etc)\.$", s)
        and "()" not in s
        and "_" not in s
    )


def dedupe(xs: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for x in xs:
        if x.lower() not in seen:
            seen.add(x.lower())
            out.append(x)
    return out


def collect(root: str) -> tuple[list[str], list[str]]:
    docs = []
    pattern = os.path.join(root, "usr/share/doc/python3.11/html/_sources/**/*.rst.txt")
    for f in sorted(glob.glob(pattern, recursive=True)):
        if "/c-api/" in f or "/library/" in f or "whatsnew" in f:
            continue  # API listings and changelogs: not prose
        with open(f, encoding="utf-8", errors="replace") as fh:
            for par in rst_paragraphs(fh.read()):
                docs += [s for s in _SPLIT.split(par) if keep(s)]
    quotes = []
    for name in FORTUNE_FILES:
        path = os.path.join(root, "usr/share/games/fortunes", name)
        if not os.path.exists(path):
            continue
        with open(path, encoding="latin-1") as fh:
            for cookie in fh.read().split("\n%\n"):
                body = " ".join(re.split(r"\n\s*(--|-)\s*\S", cookie)[0].split())
                quotes += [s for s in _SPLIT.split(body) if keep(s)]
    return dedupe(docs), dedupe(quotes)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--calib", type=int, default=256)
    ap.add_argument("--eval", type=int, default=512)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="quantune-sentences-") as tmp:
        docs, quotes = collect(fetch(tmp))
    rng = random.Random(16)
    rng.shuffle(docs)
    rng.shuffle(quotes)
    c, e = args.calib // 2, args.eval // 2
    calib, held = docs[:c] + quotes[:c], docs[c : c + e] + quotes[c : c + e]
    rng.shuffle(calib)
    rng.shuffle(held)
    os.makedirs(args.out, exist_ok=True)
    for name, lines in (("calib.txt", calib), ("eval.txt", held)):
        with open(os.path.join(args.out, name), "w") as f:
            f.write("\n".join(lines) + "\n")
    print(f"fetch_sentences: {len(docs)} documentation and {len(quotes)} quote sentences; "
          f"{len(calib)} calibration and {len(held)} evaluation in {args.out}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
