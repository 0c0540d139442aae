"""A throwaway nats-server for tests and the local cluster: 127.0.0.1, an ephemeral port (found
in its ports file) or a given one, its log in its directory.

    from natstemp import NatsServer, find_nats_server
    n = NatsServer(workdir).start()   # raises RuntimeError when it does not come up
    n.url()                           # nats://127.0.0.1:PORT
    n.stop(); n.start(n.port)         # a restart on the same port (clients reconnect)

The binary comes from $NATS_SERVER, else PATH, else /usr/sbin (Debian's nats-server package).
"""

import glob
import os
import shutil
import signal
import socket
import subprocess
import time


def find_nats_server():
    env = os.environ.get("NATS_SERVER")
    if env:
        return env if os.access(env, os.X_OK) else None
    found = shutil.which("nats-server")
    if found:
        return found
    for d in ("/usr/sbin", "/usr/local/sbin"):
        p = os.path.join(d, "nats-server")
        if os.access(p, os.X_OK):
            return p
    return None


class NatsServer:
    def __init__(self, workdir, binary=None):
        self.dir = str(workdir)
        self.binary = binary or find_nats_server()
        self.proc = None
        self.port = None

    def start(self, port=None, timeout=10):
        if not self.binary:
            raise RuntimeError("nats-server not found (apt-get install nats-server, or set "
                               "NATS_SERVER)")
        os.makedirs(self.dir, exist_ok=True)
        for f in glob.glob(os.path.join(self.dir, "*.ports")):
            os.unlink(f)
        self.port = None
        self.proc = subprocess.Popen(
            [self.binary, "-a", "127.0.0.1", "-p", str(port or -1),
             "--ports_file_dir", self.dir, "-l", self.log],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)  # a Ctrl-C in a terminal reaches the launcher, not it
        deadline = time.time() + timeout
        while time.time() < deadline and not self._ready(port):
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        if not self.port:
            self.stop()
            raise RuntimeError(f"nats-server did not come up (see {self.log})")
        return self

    @property
    def log(self):
        return os.path.join(self.dir, "nats.log")

    def _ready(self, port):
        if port is None:
            files = glob.glob(os.path.join(self.dir, "*.ports"))
            if not files:
                return False
            with open(files[0]) as f:
                text = f.read()
            if "127.0.0.1:" not in text:
                return False
            port = int(text.split("127.0.0.1:")[1].split('"')[0])
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        except OSError:
            return False
        self.port = port
        return True

    def url(self):
        return f"nats://127.0.0.1:{self.port}"

    def stop(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
