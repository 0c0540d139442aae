#!/usr/bin/env python3
"""meson install into a staging DESTDIR, then use what it installed as a newcomer would.

- The files: shared and static library, headers (chat/, chat/sys/), libchat.pc, chatd,
  chat-cli, the Python package (and chat/testing.h only with -Dtesting_api=true).
- examples/client-minimal built three ways with pkg-config: against the staged install
  (PKG_CONFIG_PATH and PKG_CONFIG_SYSROOT_DIR into the DESTDIR), statically against the staged
  libchat.a (pkg-config --static --pure), and against the build tree (meson-uninstalled/).
- chatd and chat-cli carry a RUNPATH to the installed library directory (unless the prefix is
  /usr), so they run right after install; here they run from the DESTDIR.
- End to end: the staged chatd serves; the installed client-minimal and the build tree's send
  to bob, whom the installed Python package plays; bob must receive both messages.

usage: check_install.py MESON BUILD_DIR SOURCE_DIR PREFIX LIBDIR PURELIB CC TESTING_API
       SANITIZE [PRELOAD]
"""
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading

(meson, build, source, prefix, libdir, purelib, cc, testing_api, sanitize) = sys.argv[1:10]
preload = sys.argv[10] if len(sys.argv) > 10 else ""
testing_api = testing_api == "true"
version = None
failures = []


def fail(msg):
    print(f"FAIL: {msg}", flush=True)
    failures.append(msg)


def run(cmd, what, env=None, cwd=None, timeout=120):
    """Run cmd; its stdout, or None (and a failure naming what) when it fails."""
    r = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        fail(f"{what}: exit {r.returncode}\n  $ {shlex.join(cmd)}\n{r.stdout}{r.stderr}")
        return None
    return r.stdout


def staged(path):
    return os.path.join(stage, path.lstrip("/"))


def child_env(**extra):
    """The environment without python's own sanitizer preload (which would break gcc) and
    without a library path unless given: each program must find the libchat meant for it."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env.pop("LD_LIBRARY_PATH", None)  # meson test points it at the build tree
    env.update(extra)
    return env


stage = tempfile.mkdtemp(prefix="libchat-install-")
work = tempfile.mkdtemp(prefix="libchat-install-work-")
chatd = None
try:
    # ---- install ---------------------------------------------------------------------------
    if run([meson, "install", "-C", build, "--destdir", stage, "--no-rebuild", "--quiet"],
           "meson install --destdir") is None:
        sys.exit(1)
    lib_abs = libdir if os.path.isabs(libdir) else os.path.join(prefix, libdir)
    lib_dir = staged(lib_abs)
    version = re.search(r"Version: (\S+)",
                        open(os.path.join(lib_dir, "pkgconfig", "libchat.pc")).read()).group(1)
    soname = "libchat.so.0"
    expect = [os.path.join(lib_dir, n) for n in (soname, f"libchat.so.{version}", "libchat.so",
                                                 "libchat.a", "pkgconfig/libchat.pc")]
    expect += [staged(os.path.join(prefix, p)) for p in (
        "include/chat/chat.h", "include/chat/version.h", "include/chat/types.h",
        "include/chat/sys/store.h", "include/chat/sys/client_transport.h", "bin/chatd",
        "bin/chat-cli")]
    expect += [staged(os.path.join(purelib, "libchat", n))
               for n in ("__init__.py", "_ffi.py", "_installed.py")]
    for p in expect:
        if not os.path.exists(p):
            fail(f"not installed: {p[len(stage):]}")
    testing_h = staged(os.path.join(prefix, "include/chat/testing.h"))
    if os.path.exists(testing_h) != testing_api:
        fail(f"chat/testing.h installed: {os.path.exists(testing_h)}, -Dtesting_api={testing_api}")

    # ---- build client-minimal three ways ---------------------------------------------------
    main_c = os.path.join(source, "examples", "client-minimal", "main.c")
    san = [f"-fsanitize={sanitize}"] if sanitize != "none" else []
    pc_staged = child_env(PKG_CONFIG_PATH=os.path.join(lib_dir, "pkgconfig"),
                          PKG_CONFIG_SYSROOT_DIR=stage)
    pc_build = child_env(PKG_CONFIG_PATH=os.path.join(build, "meson-uninstalled"))
    builds = {}
    flags = run(["pkg-config", "--cflags", "--libs", "libchat"], "pkg-config (staged)", pc_staged)
    if flags is not None:
        if not all(f.startswith(stage) for f in re.findall(r"-[IL](\S+)", flags)
                   if "chat" in f or f.endswith(lib_abs)):
            fail(f"pkg-config flags do not point into the DESTDIR: {flags}")
        out = os.path.join(work, "cm-installed")
        if run([cc, "-o", out, main_c] + shlex.split(flags) + san, "cc (installed)") is not None:
            builds["installed"] = (out, {"LD_LIBRARY_PATH": lib_dir})
    cflags = run(["pkg-config", "--cflags", "libchat"], "pkg-config --cflags", pc_staged)
    # --pure: libchat.a's dependencies themselves stay shared (Debian's libpq.pc names private
    # archives, -lpgcommon and -lpgport, that libpq-dev does not ship)
    slibs = run(["pkg-config", "--static", "--pure", "--libs", "libchat"],
                "pkg-config --static --pure", pc_staged)
    if cflags is not None and slibs is not None:
        libs = [os.path.join(lib_dir, "libchat.a") if a == "-lchat" else a
                for a in shlex.split(slibs)]
        out = os.path.join(work, "cm-static")
        if run([cc, "-o", out, main_c] + shlex.split(cflags) + libs + san,
               "cc (static libchat.a)") is not None:
            needed = run(["readelf", "-d", out], "readelf")
            if needed is not None and "libchat.so" in needed:
                fail("the static build still needs libchat.so")
            builds["static"] = (out, {})
    flags = run(["pkg-config", "--cflags", "--libs", "libchat"], "pkg-config (uninstalled)",
                pc_build)
    if flags is not None:
        out = os.path.join(work, "cm-build")
        if run([cc, "-o", out, main_c] + shlex.split(flags) + san,
               "cc (meson-uninstalled)") is not None:
            builds["build"] = (out, {"LD_LIBRARY_PATH": os.path.join(build, "lib")})
    want = f"libchat {version} (headers {version})"
    for name, (exe, env) in builds.items():
        got = run([exe, "--version"], f"client-minimal ({name}) --version", child_env(**env))
        if got is not None and got.strip() != want:
            fail(f"client-minimal ({name}) --version printed {got.strip()!r}, not {want!r}")
    if "installed" in builds:
        ldd = run(["ldd", builds["installed"][0]], "ldd", child_env(LD_LIBRARY_PATH=lib_dir))
        if ldd is not None and f"{soname} => {os.path.join(lib_dir, soname)}" not in ldd:
            fail(f"the installed build does not load the staged {soname}:\n{ldd}")

    # ---- the installed programs ------------------------------------------------------------
    want_rpath = "" if prefix == "/usr" else lib_abs
    run_env = child_env(LD_LIBRARY_PATH=lib_dir)
    for prog in ("chatd", "chat-cli"):
        path = staged(os.path.join(prefix, "bin", prog))
        dyn = run(["readelf", "-d", path], f"readelf {prog}") or ""
        m = re.search(r"\((?:RUNPATH|RPATH)\)\s+Library r(?:un)?path: \[([^\]]*)\]", dyn)
        got_rpath = m.group(1) if m else ""
        if got_rpath != want_rpath:
            fail(f"{prog}: RUNPATH {got_rpath!r}, want {want_rpath!r} (the installed libdir)")
        run([path, "--help"], f"{prog} --help", run_env)

    # ---- end to end: installed chatd, C clients, the installed Python package as bob -------
    chatd_bin = staged(os.path.join(prefix, "bin", "chatd"))
    data = os.path.join(work, "data")
    tokens = {}
    for user, dev in (("alice", "d1"), ("alice", "d2"), ("bob", "py")):
        tok = run([chatd_bin, "token", "--data-dir", data, user, dev], f"chatd token {user}",
                  run_env)
        tokens[(user, dev)] = (tok or "").strip()
    chatd = subprocess.Popen([chatd_bin, "run", "--data-dir", data, "--port", "0"],
                             env=run_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    first = chatd.stdout.readline().strip()
    m = re.match(r"chatd listening on 127\.0\.0\.1:(\d+)$", first)
    if not m:
        fail(f"chatd's first line is {first!r}, not 'chatd listening on 127.0.0.1:PORT' "
             f"(stderr: {chatd.stderr.read() if chatd.poll() is not None else ''})")
        sys.exit(1)
    threading.Thread(target=chatd.stdout.read, daemon=True).start()
    url = f"ws://127.0.0.1:{m.group(1)}/"
    texts = {"installed": "hello from the installed libchat",
             "build": "hello from the build tree"}
    bob_py = (
        "import libchat, sys\n"
        "assert libchat.library_path.startswith(sys.argv[3]), libchat.library_path\n"
        "want = set(sys.argv[4:])\n"
        "with libchat.Client(sys.argv[1], sys.argv[2]) as c:\n"
        "    while want:\n"
        "        ev = c.wait_for(type=libchat.EventType.MESSAGE, timeout=60)\n"
        "        want.discard(ev.text)\n"
        "        print(ev.user, ev.text, flush=True)\n")
    py_env = child_env(PYTHONPATH=staged(purelib),
                       LIBCHAT_PATH=os.path.join(lib_dir, soname), PYTHONDONTWRITEBYTECODE="1")
    if preload:  # python is not instrumented: its sanitizer runtime goes first
        py_env.update(LD_PRELOAD=preload, ASAN_OPTIONS="detect_leaks=0")
    senders = [n for n in ("installed", "build") if n in builds]
    bob = subprocess.Popen([sys.executable, "-c", bob_py, url, tokens[("bob", "py")], stage]
                           + [texts[n] for n in senders],
                           env=py_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    procs = []
    for i, name in enumerate(senders):
        exe, env = builds[name]
        cwd = os.path.join(work, name)
        os.mkdir(cwd)  # client-minimal keeps its cache in ./client-minimal.db
        procs.append((name, subprocess.Popen(
            [exe, url, tokens[("alice", f"d{i + 1}")], "bob", texts[name]], cwd=cwd,
            env=child_env(**env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    for name, p in procs:
        out, err = p.communicate(timeout=60)
        if p.returncode != 0 or "sent " not in out:
            fail(f"client-minimal ({name}) as alice: exit {p.returncode}, no ack:\n{out}{err}")
    out, err = bob.communicate(timeout=90)
    if bob.returncode != 0:
        fail(f"the installed Python package as bob: exit {bob.returncode}\n{out}{err}")
    for name in senders:
        if f"alice {texts[name]}" not in out:
            fail(f"bob (Python) did not receive {texts[name]!r} from the {name} client:\n{out}")
    print(f"installed into a DESTDIR; client-minimal built {', '.join(builds)}; bob (the "
          f"installed Python package) received from {', '.join(senders)}:\n{out}", end="")
finally:
    if chatd is not None:
        chatd.terminate()
        try:
            chatd.wait(10)
        except subprocess.TimeoutExpired:
            chatd.kill()
            chatd.wait()
    shutil.rmtree(stage, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)

print(f"{0 if failures else 1} passed, {1 if failures else 0} failed")
sys.exit(1 if failures else 0)
