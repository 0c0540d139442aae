#!/usr/bin/env python3
"""The shared library exports exactly the functions the public headers declare with CHAT_API."""
import re
import subprocess
import sys
from pathlib import Path

include_dir, library = Path(sys.argv[1]), sys.argv[2]
declared = set()
for header in include_dir.rglob("*.h"):
    text = header.read_text()
    for m in re.finditer(r"CHAT_API\b[^;{]*?\b(chat_\w+)\s*\(", text, re.S):
        declared.add(m.group(1))
out = subprocess.run(["nm", "-D", "--defined-only", library], check=True,
                     capture_output=True, text=True).stdout
exported = {line.split()[-1].split("@")[0] for line in out.splitlines()
            if len(line.split()) >= 3 and line.split()[1] in "TtDdBbRr"}
exported = {s for s in exported if not s.startswith("_")}
missing = sorted(declared - exported)
extra = sorted(exported - declared)
for name in missing:
    print(f"declared but not exported: {name}")
for name in extra:
    print(f"exported but not declared: {name}")
ok = not missing and not extra
print(f"{len(declared)} declared, {len(exported)} exported")
print(f"{1 if ok else 0} passed, {0 if ok else 1} failed")
sys.exit(0 if ok else 1)
