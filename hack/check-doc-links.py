#!/usr/bin/env python3
"""Fail when a relative link in docs/ (or README.md) points at a file or heading that does not exist.

    hack/check-doc-links.py        quiet on success, one line per broken link, exit 1

Anchors follow GitHub's rule: lower-case, spaces to '-', punctuation other than '-' and '_' dropped.
External links (http, https, mailto) are not fetched.
"""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")


def strip_code(text):
    """Lines outside fenced code blocks, inline code removed."""
    out, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append(re.sub(r"`[^`]*`", "", line))
    return out


def anchors(path):
    seen, result = {}, set()
    fenced = False
    for line in path.read_text().splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if fenced:
            continue
        m = HEADING.match(line)
        if not m:
            continue
        text = m.group(2).replace("`", "")
        slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        result.add(slug if n == 0 else "%s-%d" % (slug, n))
    return result


def main():
    files = sorted(ROOT.glob("docs/**/*.md"))
    readme = ROOT / "README.md"
    if readme.exists():
        files.append(readme)
    errors = []
    for path in files:
        for line in strip_code(path.read_text()):
            for target in LINK.findall(line):
                if re.match(r"^[a-z]+:", target):
                    continue
                file_part, _, anchor = target.partition("#")
                dest = (path.parent / file_part).resolve() if file_part else path
                where = "%s: %s" % (path.relative_to(ROOT), target)
                if not dest.exists():
                    errors.append("%s: no such file" % where)
                    continue
                if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                    errors.append("%s: no heading #%s in %s" % (where, anchor, dest.relative_to(ROOT)))
    for line in errors:
        print(line, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
