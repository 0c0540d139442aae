#!/usr/bin/env python3
"""Every ```c block of README.md and doc/*.md compiles, so a sample can never miss a header or
use an undefined name; the programs among them also link and run.

The line before a block may say what it is, in an HTML comment (invisible on the page):
  (none)                              a complete translation unit: compiled (-c)
  <!-- doc-test: fragment(PARAMS) --> statements: compiled as the body of
                                      `void doc_fragment(PARAMS)` after #include <chat/chat.h>
                                      and the #include lines the fragment starts with;
                                      PARAMS names what the surrounding text provides
  <!-- doc-test: file PATH -->        a copy of PATH in the source tree: must equal it, and is
                                      built and run like a program of that name
  <!-- doc-test: program NAME -->     a complete program: compiled, linked, and run by the
                                      runner NAME below
Blocks are compiled with -Wall -Wextra -Werror.

usage: check_docs.py SOURCE_DIR BUILD_DIR CC SANITIZE [PRELOAD]
"""
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile

source, build, cc, sanitize = sys.argv[1:5]
preload = sys.argv[5] if len(sys.argv) > 5 else ""
cc = shlex.split(cc)
docs = [os.path.join(source, "README.md")] + sorted(
    os.path.join(source, "doc", n) for n in os.listdir(os.path.join(source, "doc"))
    if n.endswith(".md"))
libdir = os.path.join(build, "lib")
cflags = ["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-I", os.path.join(source, "include"),
          "-I", os.path.join(build, "include")]
san = [f"-fsanitize={sanitize}"] if sanitize != "none" else []
ldflags = [f"-L{libdir}", f"-Wl,-rpath,{libdir}", "-lchat", "-pthread"] + san
failures, passed = [], 0
BLOCK = re.compile(r"(?:^<!--\s*doc-test:\s*(?P<marker>.*?)\s*-->\n)?^```c\n(?P<body>.*?)^```",
                   re.S | re.M)


def child_env(**extra):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env.update(extra)
    return env


def compile_c(src, out, link, where, extra=()):
    cmd = cc + cflags + list(extra) + san + ["-o", out, src] + (ldflags if link else ["-c"])
    r = subprocess.run(cmd, capture_output=True, text=True, env=child_env())
    if r.returncode != 0:
        failures.append(f"{where}: does not compile:\n{r.stderr.strip()}")
        return False
    return True


# ---- runners of the programs ------------------------------------------------------------

def run_client_minimal(exe, work, where):
    """--version prints the library's version and the headers' (the same here)."""
    r = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30,
                       cwd=work, env=child_env())
    if r.returncode != 0 or not re.fullmatch(r"libchat (\S+) \(headers \1\)\n", r.stdout):
        return f"--version: exit {r.returncode}, printed {r.stdout!r}{r.stderr}"
    return None


def run_minimal_host(exe, work, where):
    """The host serves: a client authenticates with the token it printed and is online; on
    SIGTERM it revokes the token and exits 0, and a restart refuses that token."""
    sys.path.insert(0, os.path.join(source, "bindings", "python"))
    os.environ["LIBCHAT_PATH"] = os.path.join(libdir, "libchat.so")
    import libchat  # noqa: E402 (the Python binding, after the library path is set)

    def start():
        p = subprocess.Popen([exe, "0"], cwd=work, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=child_env())
        first, second = p.stdout.readline(), p.stdout.readline()
        m = re.fullmatch(r"listening on 127\.0\.0\.1:(\d+)\n", first)
        t = re.fullmatch(r"token for alice: (\S+)\n", second)
        if not m or not t:
            p.kill()
            out, err = p.communicate()
            raise RuntimeError(f"printed {first + second + out!r}, stderr {err!r}")
        return p, f"ws://127.0.0.1:{m.group(1)}/", t.group(1)

    def stop(p):
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=30)
        if p.returncode != 0:
            raise RuntimeError(f"exit {p.returncode} after SIGTERM: {out}{err}")

    try:
        p, url, token = start()  # in an empty directory: the host makes chat-data itself
        try:
            with libchat.Client(url, token, backoff=(100, 1000)) as c:
                ev = c.wait_for(type=libchat.EventType.ONLINE, timeout=30)
                if ev.user != "alice":
                    return f"online as {ev.user!r}, not alice"
        finally:
            stop(p)
        if not os.path.exists(os.path.join(work, "chat-data", "chat.db")):
            return "no chat-data/chat.db after a run"
        p, url, _ = start()  # the same data directory: the revocation persisted
        try:
            with libchat.Client(url, token, backoff=(100, 1000)) as c:
                ev = c.wait_for(type=libchat.EventType.AUTH_FAILED, timeout=30)
                if ev.code != libchat.EAUTH:
                    return f"the revoked token: {ev.error.name}, not EAUTH"
        finally:
            stop(p)
    except (RuntimeError, libchat.ChatError, subprocess.TimeoutExpired) as e:
        return str(e)
    return None


RUNNERS = {"client-minimal": run_client_minimal, "minimal-host": run_minimal_host}

# ---- the blocks -------------------------------------------------------------------------

tmp = tempfile.mkdtemp(prefix="libchat-docs-")
try:
    for doc in docs:
        text = open(doc).read()
        rel = os.path.relpath(doc, source)
        for n, m in enumerate(BLOCK.finditer(text)):
            line = text[:m.start("body")].count("\n")
            where = f"{rel}:{line}"
            body, marker = m.group("body"), (m.group("marker") or "")
            src = os.path.join(tmp, f"{os.path.basename(doc)}-{n}.c")
            out = src[:-2]
            run_as = None
            if marker.startswith("fragment"):
                fm = re.fullmatch(r"fragment\((.*)\)", marker)
                if not fm:
                    failures.append(f"{where}: write the marker as fragment(PARAMS)")
                    continue
                params = fm.group(1).strip() or "void"
                head = re.match(r"(?:#include [^\n]*\n|\n)*", body).group(0)
                code = ("#include <chat/chat.h>\n"
                        f"#line {line + 1} \"{rel}\"\n{head}\n"
                        f"void doc_fragment({params});\n"
                        f"void doc_fragment({params})\n{{\n"
                        f"#line {line + 1 + head.count(chr(10))} \"{rel}\"\n"
                        f"{body[len(head):]}}}\n")
                link = False
            elif marker.startswith("file "):
                path = marker[5:].strip()
                try:
                    same = open(os.path.join(source, path)).read() == body
                except OSError as e:
                    failures.append(f"{where}: {e}")
                    continue
                if not same:
                    failures.append(f"{where}: differs from {path}; copy the file again")
                run_as, code, link = os.path.basename(os.path.dirname(path)), body, True
            elif marker.startswith("program "):
                run_as, code, link = marker[8:].strip(), body, True
            elif marker:
                failures.append(f"{where}: unknown marker {marker!r}")
                continue
            else:
                code, link = body, False
            if run_as is not None and run_as not in RUNNERS:
                failures.append(f"{where}: no runner for {run_as!r} ({', '.join(RUNNERS)})")
                continue
            if not marker.startswith("fragment"):
                code = f"#line {line + 1} \"{rel}\"\n{code}"
            with open(src, "w") as f:
                f.write(code)
            # a fragment need not use every parameter the text provides
            extra = ["-Wno-unused-parameter"] if marker.startswith("fragment") else []
            if not compile_c(src, out, link, where, extra):
                continue
            if run_as is not None:
                work = os.path.join(tmp, f"run-{n}-{run_as}")
                os.mkdir(work)
                err = RUNNERS[run_as](out, work, where)
                if err:
                    failures.append(f"{where}: {run_as} run: {err}")
                    continue
            print(f"ok {where} ({marker or 'translation unit'})")
            passed += 1
finally:
    shutil.rmtree(tmp, ignore_errors=True)

for f in failures:
    print(f"FAIL {f}")
print(f"{passed} passed, {len(failures)} failed")
sys.exit(1 if failures or not passed else 0)
