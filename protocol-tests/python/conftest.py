"""Fixtures for the Python interop tests: the PyPI `pusher` SDK and two WebSocket clients
(pysher, and websocket-client for frames pysher cannot send) against herald.

HERALD_URL points at the shared herald started by run.sh; HERALD_BIN is used to start private
instances (webhook tests). App credentials mirror config/herald-test.toml.
"""

import json
import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse

import pusher
import pysher
import pysher.channel
import pytest
import websocket

APPS = {
    "main": {"id": "1001", "key": "pt-main-key", "secret": "pt-main-secret"},
    "limits": {"id": "1005", "key": "pt-limits-key", "secret": "pt-limits-secret"},
}
MASTER_KEY_BASE64 = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc="  # 32 bytes of 0x07
TIMEOUT = 5.0

_counter = [0]


def uid(prefix):
    _counter[0] += 1
    return "%s-%d-%d-%d" % (prefix, os.getpid(), int(time.time() * 1000) % 10**8, _counter[0])


def eventually(fn, timeout=TIMEOUT, interval=0.05, what="condition"):
    deadline = time.time() + timeout
    last = None
    while True:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - reported on timeout
            last = e
        if time.time() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s; last: %r" % (timeout, what, last))
        time.sleep(interval)


def server_from_url(url):
    u = urllib.parse.urlparse(url)
    return {"host": u.hostname, "port": u.port, "url": url.rstrip("/")}


@pytest.fixture(scope="session")
def server():
    url = os.environ.get("HERALD_URL")
    if not url:
        pytest.fail("HERALD_URL is not set: run the suite through protocol-tests/run.sh")
    return server_from_url(url)


def make_sdk(server, app=APPS["main"], secret=None):
    return pusher.Pusher(
        app_id=app["id"],
        key=app["key"],
        secret=secret or app["secret"],
        host=server["host"],
        port=server["port"],
        ssl=False,
        timeout=5,
        encryption_master_key_base64=MASTER_KEY_BASE64,
    )


@pytest.fixture
def sdk(server):
    return make_sdk(server)


class RawClient:
    """websocket-client connection recording every frame (data parsed when it is JSON)."""

    def __init__(self, url):
        self.frames = []
        self.cond = threading.Condition()
        self.close_status = None
        self.ws = websocket.WebSocketApp(
            url,
            on_message=self._on_message,
            on_close=self._on_close,
        )
        self.thread = threading.Thread(target=self.ws.run_forever, daemon=True)
        self.thread.start()
        est = self.next("pusher:connection_established")
        self.socket_id = est["data"]["socket_id"]

    def _on_message(self, _ws, message):
        frame = json.loads(message)
        frame["raw_data"] = frame.get("data")
        if isinstance(frame.get("data"), str):
            try:
                frame["data"] = json.loads(frame["data"])
            except ValueError:
                pass
        with self.cond:
            self.frames.append(frame)
            self.cond.notify_all()

    def _on_close(self, _ws, status, reason):
        with self.cond:
            self.close_status = (status, reason)
            self.cond.notify_all()

    def send(self, event, data):
        self.ws.send(json.dumps({"event": event, "data": data}))

    def next(self, pred, timeout=TIMEOUT):
        if isinstance(pred, str):
            name = pred
            pred = lambda f: f.get("event") == name  # noqa: E731
        deadline = time.time() + timeout
        with self.cond:
            while True:
                for f in self.frames:
                    if pred(f):
                        return f
                left = deadline - time.time()
                if left <= 0:
                    raise AssertionError("no matching frame within %.1fs; got %r" % (timeout, [f.get("event") for f in self.frames]))
                self.cond.wait(left)

    def wait_closed(self, timeout=TIMEOUT):
        deadline = time.time() + timeout
        with self.cond:
            while self.close_status is None:
                left = deadline - time.time()
                if left <= 0:
                    raise AssertionError("connection not closed within %.1fs" % timeout)
                self.cond.wait(left)
        return self.close_status

    def close(self):
        try:
            self.ws.close()
        except Exception:  # noqa: BLE001
            pass


@pytest.fixture
def raw(server):
    """Factory: raw(app=APPS['main']) -> connected RawClient (protocol 7)."""
    made = []

    def factory(app=APPS["main"], srv=None):
        s = srv or server
        c = RawClient("ws://%s:%d/app/%s?protocol=7&client=py-test&version=1.0" % (s["host"], s["port"], app["key"]))
        made.append(c)
        return c

    yield factory
    for c in made:
        c.close()


class PysherClient:
    """pysher connected to herald; events land in a queue per (channel, event)."""

    def __init__(self, server, app=APPS["main"], user_data=None, secret=""):
        self.events = queue.Queue()
        self.client = pysher.Pusher(
            app["key"],
            secure=False,
            custom_host=server["host"],
            port=server["port"],
            secret=secret,
            user_data=user_data,
            reconnect_interval=1,
        )
        self.connected = threading.Event()
        self.client.connection.bind("pusher:connection_established", lambda _d: self.connected.set())
        self.client.connect()
        assert self.connected.wait(TIMEOUT), "pysher did not connect"
        self.socket_id = self.client.connection.socket_id

    def subscribe(self, channel, auth=None, events=()):
        ok = threading.Event()

        def bind_all(ch):
            ch.bind("pusher_internal:subscription_succeeded", lambda *_a: ok.set())
            for ev in events:
                ch.bind(ev, lambda data, _ev=ev: self.events.put((channel, _ev, data)))

        # pysher sends pusher:subscribe first and registers its Channel object afterwards, so
        # a fast reply can arrive while no channel is registered and be dropped. Register a
        # channel with the same callbacks before subscribing; pysher then replaces it.
        early = pysher.channel.Channel(channel, self.client.connection)
        bind_all(early)
        self.client.channels[channel] = early
        ch = self.client.subscribe(channel, auth=auth)
        bind_all(ch)
        assert ok.wait(TIMEOUT), "pysher subscription to %s not confirmed" % channel
        return ch

    def next_event(self, timeout=TIMEOUT):
        return self.events.get(timeout=timeout)

    def no_event(self, wait=0.3):
        try:
            got = self.events.get(timeout=wait)
        except queue.Empty:
            return True
        raise AssertionError("unexpected event %r" % (got,))

    def close(self):
        self.client.disconnect(timeout=2)


@pytest.fixture
def pysher_client(server):
    made = []

    def factory(**kw):
        c = PysherClient(server, **kw)
        made.append(c)
        return c

    yield factory
    for c in made:
        c.close()


class Herald:
    """A private herald from HERALD_BIN with its own config; stopped by PID."""

    def __init__(self, toml):
        binary = os.environ.get("HERALD_BIN")
        if not binary:
            pytest.fail("HERALD_BIN is not set: run the suite through protocol-tests/run.sh")
        base = os.environ.get("PT_RUN_DIR") or tempfile.gettempdir()
        os.makedirs(base, exist_ok=True)
        self.dir = tempfile.mkdtemp(prefix="private-py-", dir=base)
        cfg = os.path.join(self.dir, "herald.toml")
        with open(cfg, "w") as f:
            f.write(toml)
        env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_") or k == "HERALD_BIN"}
        # Its metrics listener on a free port: the default, 9601, would clash between heralds.
        env["HERALD_METRICS_PORT"] = "0"
        self.stderr = open(os.path.join(self.dir, "herald.err"), "wb")
        self.proc = subprocess.Popen([binary, "--config", cfg], stdout=subprocess.PIPE, stderr=self.stderr, env=env)
        port = None
        deadline = time.time() + 10
        buf = b""
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            buf += line
            m = re.search(rb"herald listening on http://127\.0\.0\.1:(\d+)", buf)
            if m:
                port = int(m.group(1))
                break
        if port is None:
            self.stop()
            pytest.fail("private herald did not start: %r" % buf)
        # keep draining stdout so herald never blocks on a full pipe
        threading.Thread(target=self._drain, daemon=True).start()
        self.server = server_from_url("http://127.0.0.1:%d" % port)

    def _drain(self):
        for _ in iter(self.proc.stdout.readline, b""):
            pass

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=8)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)
