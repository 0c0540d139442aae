#!/usr/bin/env python3
"""A throwaway PostgreSQL server for tests: initdb into a temp dir, start, stop, restart.

As a module:

    from pgtemp import TempPostgres, PostgresMissing
    pg = TempPostgres()          # raises PostgresMissing when the server binaries are absent
    pg.start()
    pg.conninfo("postgres")      # libpq conninfo of a database on it
    sql(pg.conninfo(), "CREATE SCHEMA s1")  # one statement (libpq through ctypes, or psql)
    pg.restart()                 # pg_ctl restart -m fast (connections are cut)
    pg.stop()                    # and removes the temp dir

As a command:

    pgtemp.py run [--tcp] [--fsync] -- CMD [ARGS...]
        start a server, run CMD with the environment below, stop the server; exit with CMD's
        status, or 77 (the "skipped" status of meson test) when PostgreSQL is not installed.
        --fsync: a server that flushes its commits to disk (benchmarks), not the default.
    pgtemp.py ctl DIR start|stop|restart|kill
        act on the server of a running `pgtemp.py run` (tests call it through CHAT_TEST_PG_CTL).

Environment given to CMD:
    CHAT_TEST_PG       conninfo of the "postgres" database (a superuser "chat", no password)
    CHAT_TEST_PG_CTL   command prefix: append start, stop, restart or kill

The server runs as an unprivileged user when the caller is root (initdb refuses root): the
"postgres" account the Debian package creates, else "nobody". It listens on a unix socket in
the temp dir only, or also on 127.0.0.1 at a free port with --tcp (for processes that want an
address). fsync is off: the tests stop it cleanly or not at all, and never test the disk.

The binaries come from $CHAT_PG_BINDIR, else the newest /usr/lib/postgresql/*/bin (Debian), else
PATH.
"""

import ctypes
import ctypes.util
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SUPERUSER = "chat"
SOCKET_PORT = 5432  # with a unix socket only, the port just names the socket file


class PostgresMissing(Exception):
    pass


def find_bindir():
    env = os.environ.get("CHAT_PG_BINDIR")
    if env:
        return env if os.access(os.path.join(env, "initdb"), os.X_OK) else None

    def version(path):
        try:
            return int(path.split("/")[-3])
        except ValueError:
            return 0
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_account():
    """(uid, gid) to run the server as, or None to run as ourselves."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pw = pwd.getpwnam(name)
            return pw.pw_uid, pw.pw_gid
        except KeyError:
            continue
    raise PostgresMissing("running as root and no unprivileged account (postgres, nobody)")


_libpq = None
_conns = {}


def _load_libpq():
    """libpq through ctypes (a connection kept per conninfo: a statement costs a round trip,
    not a psql process), or None when it cannot be loaded."""
    global _libpq
    if _libpq is None:
        try:
            lib = ctypes.CDLL(ctypes.util.find_library("pq") or "libpq.so.5")
        except OSError:
            lib = False
        if lib:
            lib.PQconnectdb.restype = ctypes.c_void_p
            lib.PQconnectdb.argtypes = [ctypes.c_char_p]
            lib.PQstatus.argtypes = [ctypes.c_void_p]
            lib.PQerrorMessage.restype = ctypes.c_char_p
            lib.PQerrorMessage.argtypes = [ctypes.c_void_p]
            lib.PQfinish.argtypes = [ctypes.c_void_p]
            lib.PQexec.restype = ctypes.c_void_p
            lib.PQexec.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
            lib.PQresultStatus.argtypes = [ctypes.c_void_p]
            lib.PQresultErrorMessage.restype = ctypes.c_char_p
            lib.PQresultErrorMessage.argtypes = [ctypes.c_void_p]
            lib.PQclear.argtypes = [ctypes.c_void_p]
        _libpq = lib
    return _libpq or None


def _sql_libpq(lib, conninfo, statement):
    for attempt in range(2):  # once more on a new connection if the server restarted
        conn = _conns.get(conninfo)
        if conn is None:
            conn = lib.PQconnectdb(conninfo.encode())
            if lib.PQstatus(conn) != 0:
                msg = lib.PQerrorMessage(conn).decode(errors="replace").strip()
                lib.PQfinish(conn)
                raise RuntimeError(f"cannot connect ({conninfo}): {msg}")
            _conns[conninfo] = conn
        res = lib.PQexec(conn, statement.encode())
        status = lib.PQresultStatus(res) if res else -1
        msg = lib.PQresultErrorMessage(res).decode(errors="replace").strip() if res else ""
        lib.PQclear(res)
        if status in (1, 2):  # PGRES_COMMAND_OK, PGRES_TUPLES_OK
            return
        if lib.PQstatus(conn) == 0 or attempt:
            raise RuntimeError(f"{statement}: {msg}")
        lib.PQfinish(conn)
        del _conns[conninfo]


def sql(conninfo, statement):
    """Run one SQL statement on the server of conninfo (raises on failure): through libpq when
    it loads, else psql."""
    lib = _load_libpq()
    if lib:
        return _sql_libpq(lib, conninfo, statement)
    bindir = find_bindir()
    psql = os.path.join(bindir, "psql") if bindir else shutil.which("psql")
    if not psql or not os.access(psql, os.X_OK):
        raise PostgresMissing("neither libpq nor psql found")
    p = subprocess.run([psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-c",
                        statement], stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"psql: {statement}: {p.stderr.strip()}")


class TempPostgres:
    def __init__(self, tcp=False, base_dir=None, fsync=False):
        self.bindir = find_bindir()
        if not self.bindir:
            raise PostgresMissing("PostgreSQL server binaries (initdb, pg_ctl) not found; "
                                  "install Debian's postgresql package or set CHAT_PG_BINDIR")
        self.account = server_account()
        self.tcp = tcp
        self.fsync = fsync
        self.dir = base_dir
        self.port = None
        self.running = False

    # ---- paths and commands ----------------------------------------------------------------

    @property
    def data(self):
        return os.path.join(self.dir, "data")

    @property
    def log(self):
        return os.path.join(self.dir, "server.log")

    def _run(self, args, check=True):
        kw = {}
        if self.account:
            kw = {"user": self.account[0], "group": self.account[1], "extra_groups": []}
        env = dict(os.environ, LC_ALL="C", LANG="C")
        p = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, env=env, cwd=self.dir, **kw)
        if check and p.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({p.returncode}):\n{p.stdout}"
                               f"{self.log_tail()}")
        return p

    def _pg_ctl(self, *args, check=True):
        return self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, *args],
                         check=check)

    def options(self):
        listen = "127.0.0.1" if self.tcp else ""
        return (f"-c listen_addresses='{listen}' -p {self.port} -k {self.dir} "
                f"-c fsync={'on' if self.fsync else 'off'} "
                f"-c full_page_writes={'on' if self.fsync else 'off'} -c max_connections=60 "
                "-c shared_buffers=16MB -c log_min_messages=warning")

    def log_tail(self, lines=40):
        try:
            with open(self.log, errors="replace") as f:
                return "\n--- server log ---\n" + "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    # ---- lifecycle -------------------------------------------------------------------------

    def init(self):
        self.dir = tempfile.mkdtemp(prefix="chat-pg-")
        if self.account:
            os.chown(self.dir, *self.account)
        os.chmod(self.dir, 0o755)  # clients of any user reach the socket in it
        self.port = free_port() if self.tcp else SOCKET_PORT
        with open(os.path.join(self.dir, "port"), "w") as f:
            f.write(f"{self.port} {int(self.tcp)} {int(self.fsync)}\n")
        if self.account:
            os.chown(os.path.join(self.dir, "port"), *self.account)
        self._run([os.path.join(self.bindir, "initdb"), "-D", self.data, "-U", SUPERUSER,
                   "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"])

    def start(self):
        if not self.dir:
            self.init()
        self._pg_ctl("-w", "-t", "60", "-l", self.log, "-o", self.options(), "start")
        self.running = True
        return self

    def restart(self, mode="fast"):
        self._pg_ctl("-w", "-t", "60", "-m", mode, "-l", self.log, "-o", self.options(),
                     "restart")
        self.running = True

    def stop(self, mode="fast", remove=True):
        if self.running:
            self._pg_ctl("-w", "-t", "60", "-m", mode, "stop", check=False)
            self.running = False
        if remove and self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def kill(self):
        """SIGKILL the postmaster (its children exit once they notice)."""
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                pid = int(f.readline())
        except (OSError, ValueError):
            return
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        self.running = False

    # ---- addresses -------------------------------------------------------------------------

    def conninfo(self, dbname="postgres"):
        host = "127.0.0.1" if self.tcp else self.dir
        return f"host={host} port={self.port} user={SUPERUSER} dbname={dbname}"

    @classmethod
    def attach(cls, directory):
        """The server of a running `pgtemp.py run`, from its temp dir."""
        pg = cls(base_dir=directory)
        with open(os.path.join(directory, "port")) as f:
            port, tcp, fsync = f.read().split()
        pg.port, pg.tcp, pg.fsync, pg.running = int(port), bool(int(tcp)), bool(int(fsync)), True
        return pg


def main(argv):
    if len(argv) >= 2 and argv[0] == "run":
        opts = argv[1:argv.index("--")] if "--" in argv else []
        if "--" not in argv or argv.index("--") == len(argv) - 1:
            print("usage: pgtemp.py run [--tcp] [--fsync] -- CMD [ARGS...]", file=sys.stderr)
            return 2
        cmd = argv[argv.index("--") + 1:]
        try:
            pg = TempPostgres(tcp="--tcp" in opts, fsync="--fsync" in opts)
        except PostgresMissing as e:
            print(f"pgtemp: skipped: {e}", file=sys.stderr)
            return 77
        # meson test stops a test with SIGTERM at its timeout: stop the server then too.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        try:
            pg.start()
            env = dict(os.environ, CHAT_TEST_PG=pg.conninfo(),
                       CHAT_TEST_PG_CTL=f"{sys.executable} {os.path.abspath(__file__)} ctl "
                                        f"{pg.dir}")
            return subprocess.call(cmd, env=env)
        finally:
            pg.stop(mode="immediate")
    if len(argv) == 3 and argv[0] == "ctl":
        pg = TempPostgres.attach(argv[1])
        action = argv[2]
        if action == "start":
            pg.running = False
            pg.start()
        elif action == "stop":
            pg.stop(remove=False)
        elif action == "restart":
            pg.restart()
        elif action == "kill":
            pg.kill()
        else:
            print(f"pgtemp: unknown action {action}", file=sys.stderr)
            return 2
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
