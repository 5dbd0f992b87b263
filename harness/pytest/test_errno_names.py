"""test_errno_names.py - every errno the code names has a name in the errno
table (impl/common/err.c ERRNO_NAMES), so no error a user meets prints as
"EUNKNOWN" and every name a fault spec or a report prints parses back.
(harness/unit/test-common.c checks the round trip name -> errno -> name.)

Rerun one: /usr/bin/python3 -m pytest harness/pytest -k errno_names
"""
import errno
import re

TOKEN_RE = re.compile(r"\bE[A-Z0-9]{2,}\b")
TABLE_RE = re.compile(r"#define ERRNO_(?:NAMES|ALIASES)\(X\)(.*?)(?:\n\s*\n|\n#)", re.S)
ERRNOS = set(errno.errorcode.values())


def _strip_comments(src):
    return re.sub(r"/\*.*?\*/|//[^\n]*", " ", src, flags=re.S)


def test_errno_names_cover_every_errno_in_code(repo_root):
    text = (repo_root / "impl/common/err.c").read_text()
    table = set()
    for m in TABLE_RE.finditer(text):
        table |= set(re.findall(r"X\((E[A-Z0-9]+)\)", m.group(1)))
    assert "EIO" in table and "ELOOP" in table, "cannot read ERRNO_NAMES in impl/common/err.c"
    missing = {}
    for top in ("impl", "harness/runner", "harness/sim", "fakes", "include"):
        for path in sorted((repo_root / top).rglob("*.[ch]")):
            src = _strip_comments(path.read_text(errors="replace"))
            for m in TOKEN_RE.finditer(src):
                name = m.group(0)
                if name in ERRNOS and name not in table:
                    line = src.count("\n", 0, m.start()) + 1
                    missing.setdefault(name, []).append(f"{path.relative_to(repo_root)}:{line}")
    assert not missing, "errnos used in code but missing from ERRNO_NAMES in impl/common/err.c: " + \
        "; ".join(f"{n} ({', '.join(w[:3])})" for n, w in sorted(missing.items()))
