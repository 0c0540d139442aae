#!/usr/bin/env python3
"""The shared library exports exactly what the public headers declare with CHAT_API, each
function under the version node its @since names, and the versions agree with each other.

usage: check_symbols.py INCLUDE_DIR LIBRARY PROJECT_VERSION MAP CHANGELOG public|testing

- public: the library exports the declarations of every header but chat/testing.h;
  testing: those and chat/testing.h's, the latter under LIBCHAT_TESTING.
- Each public function has an @since X.Y, in its own doc comment or in the doc comment that
  opens its Doxygen group (@{ ... @}), and is exported under LIBCHAT_X.Y.
- The map has one node per @since version, in release order, none newer than the project
  version, and CHANGELOG.md has a section for the project version.
"""
import re
import subprocess
import sys
from pathlib import Path

TESTING_HEADER = "testing.h"
TESTING_NODE = "LIBCHAT_TESTING"

include_dir, library, version, map_path, changelog, mode = sys.argv[1:7]
major_minor = ".".join(version.split(".")[:2])
problems = []


def declarations(text):
    """(name, since) of each CHAT_API function in one header, in order."""
    out = []
    # Tokens in order: doc comments, group closers, declarations.
    token = re.compile(r"(?P<doc>/\*\*(?:(?!\*/).)*\*/)|(?P<decl>CHAT_API\b[^;{]*?\b(chat_\w+)\s*\()",
                       re.S)
    groups = []      # @since of each open group (None when the group has none)
    last_doc = None  # (end offset, text) of the last doc comment
    for m in token.finditer(text):
        if m.group("doc"):
            doc = m.group("doc")
            if re.search(r"@\}", doc):
                if groups:
                    groups.pop()
                last_doc = None
                continue
            if re.search(r"@\{", doc):
                s = re.search(r"@since\s+(\d+\.\d+)", doc)
                groups.append(s.group(1) if s else None)
                last_doc = None
                continue
            last_doc = (m.end(), doc)
            continue
        name = m.group(3)
        since = None
        if last_doc and text[last_doc[0]:m.start()].strip() == "":
            s = re.search(r"@since\s+(\d+\.\d+)", last_doc[1])
            since = s.group(1) if s else None
        if since is None:
            since = next((g for g in reversed(groups) if g), None)
        out.append((name, since))
        last_doc = None
    return out


public, testing = {}, {}
for header in sorted(Path(include_dir).rglob("*.h")):
    for name, since in declarations(header.read_text()):
        if header.name == TESTING_HEADER:
            testing[name] = since
        else:
            public[name] = since
            if since is None:
                problems.append(f"{name} ({header.name}): no @since")

out = subprocess.run(["nm", "-D", "--defined-only", library], check=True,
                     capture_output=True, text=True).stdout
exported = {}
for line in out.splitlines():
    parts = line.split()
    if len(parts) >= 3 and parts[1] in "TtDdBbRr":
        sym, _, node = parts[-1].partition("@@")
        if not sym.startswith("_"):
            exported[sym] = node

declared = dict(public)
if mode == "testing":
    declared.update(testing)
for name in sorted(set(declared) - set(exported)):
    hint = "lib/libchat-testing.map" if name in testing else f"LIBCHAT_{major_minor} in lib/libchat.map"
    problems.append(f"declared but not exported: {name} (add it to {hint})")
for name in sorted(set(exported) - set(declared)):
    problems.append(f"exported but not declared: {name}")
for name in sorted(set(declared) & set(exported)):
    want = TESTING_NODE if name in testing else f"LIBCHAT_{public[name]}" if public[name] else None
    if want and exported[name] != want:
        problems.append(f"{name}: exported under {exported[name] or 'no version'}, "
                        f"but its @since says {want}")

def vkey(v):
    return tuple(int(x) for x in v.split("."))

sinces = {s for s in public.values() if s}
for s in sorted(sinces, key=vkey):
    if vkey(s) > vkey(major_minor):
        problems.append(f"@since {s} is newer than the project version {version}")
nodes = re.findall(r"^\s*LIBCHAT_(\d+\.\d+)\s*\{", Path(map_path).read_text(), re.M)
if sorted(nodes, key=vkey) != sorted(sinces, key=vkey):
    problems.append(f"the map's nodes ({', '.join(nodes)}) are not the @since versions "
                    f"({', '.join(sorted(sinces, key=vkey))})")
if nodes != sorted(nodes, key=vkey):
    problems.append("the map's nodes are not in release order")
if not re.search(rf"^## \[?{re.escape(version)}\]?", Path(changelog).read_text(), re.M):
    problems.append(f"{changelog} has no section '## {version}'")

for p in problems:
    print(p)
n_nodes = len(set(exported.values()) - {""})
print(f"{mode}: {len(declared)} declared, {len(exported)} exported under {n_nodes} version nodes")
print(f"{0 if problems else 1} passed, {1 if problems else 0} failed")
sys.exit(1 if problems else 0)
