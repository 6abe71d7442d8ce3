"""validate_webhook (PyPI pusher) on webhooks a private herald really delivered."""

import http.server
import json
import os
import threading

import pytest

from conftest import Herald, PysherClient, eventually, make_sdk, uid

# In cluster mode (run.sh PT_CLUSTER=1) this module is skipped: its herald is its own, not the
# cluster behind HERALD_URL.
pytestmark = pytest.mark.skipif(
    os.environ.get("PT_CLUSTER") == "1",
    reason="single node only: runs its own herald, configured with the webhook receiver's URL",
)

APP = {"id": "4001", "key": "pywh-key", "secret": "pywh-secret"}


class Receiver:
    def __init__(self):
        self.deliveries = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                outer.deliveries.append({"headers": dict(self.headers.items()), "body": body})
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def setup():
    rec = Receiver()
    herald = Herald("""
[server]
host = "127.0.0.1"
port = 0
activity_timeout = "2s"
pong_timeout = "1s"
shutdown_timeout = "1s"

[webhooks]
vacated_delay = "500ms"
timeout = "2s"
retry_for = "5s"

[[apps]]
id = "%(id)s"
key = "%(key)s"
secret = "%(secret)s"
client_events = true

[[apps.webhooks]]
url = "http://127.0.0.1:%(port)d/pusher/webhooks"
events = ["channel_occupied", "channel_vacated", "member_added", "member_removed", "client_event", "cache_miss"]
""" % dict(APP, port=rec.port))
    yield rec, herald
    herald.stop()
    rec.close()


def validated(rec, api):
    out = []
    for d in rec.deliveries:
        h = {k.lower(): v for k, v in d["headers"].items()}
        body = api.validate_webhook(h.get("x-pusher-key", ""), h.get("x-pusher-signature", ""), d["body"].decode("utf-8"))
        out.append(body if body is not None else {"invalid": d})
    return out


def events_of(rec, api):
    evs = []
    for b in validated(rec, api):
        evs.extend(b.get("events", [b]))
    return evs


def test_validate_webhook_occupied_and_vacated(setup):
    rec, herald = setup
    api = make_sdk(herald.server, APP)
    name = uid("pywh")
    c = PysherClient(herald.server, app=APP)
    try:
        c.subscribe(name)
        occ = eventually(lambda: [e for e in events_of(rec, api) if e.get("name") == "channel_occupied" and e.get("channel") == name],
                         what="channel_occupied")
        assert len(occ) == 1
    finally:
        c.close()
    eventually(lambda: [e for e in events_of(rec, api) if e.get("name") == "channel_vacated" and e.get("channel") == name],
               what="channel_vacated")
    for body in validated(rec, api):
        assert "invalid" not in body, "validate_webhook refused a delivery: %r" % body
        assert isinstance(body["time_ms"], int)


def test_validate_webhook_member_events(setup):
    rec, herald = setup
    api = make_sdk(herald.server, APP)
    name = uid("presence-pywh")
    c = PysherClient(herald.server, app=APP, secret=APP["secret"], user_data={"user_id": "py-member"})
    try:
        c.subscribe(name)
        added = eventually(lambda: [e for e in events_of(rec, api) if e.get("name") == "member_added" and e.get("channel") == name],
                           what="member_added")
        assert added[0]["user_id"] == "py-member"
    finally:
        c.close()
    removed = eventually(lambda: [e for e in events_of(rec, api) if e.get("name") == "member_removed" and e.get("channel") == name],
                         what="member_removed")
    assert removed[0]["user_id"] == "py-member"


def test_wrong_secret_does_not_validate(setup):
    rec, herald = setup
    c = PysherClient(herald.server, app=APP)
    try:
        c.subscribe(uid("pywh-wrong"))
        eventually(lambda: rec.deliveries, what="a delivery")
    finally:
        c.close()
    wrong = make_sdk(herald.server, dict(APP, secret="other"))
    d = rec.deliveries[0]
    h = {k.lower(): v for k, v in d["headers"].items()}
    assert wrong.validate_webhook(h["x-pusher-key"], h["x-pusher-signature"], d["body"].decode()) is None
    assert json.loads(d["body"])["events"]


def test_validate_webhook_client_event_and_cache_miss(setup):
    rec, herald = setup
    api = make_sdk(herald.server, APP)
    name = uid("private-pywh")
    a = PysherClient(herald.server, app=APP, secret=APP["secret"])
    b = PysherClient(herald.server, app=APP, secret=APP["secret"])
    try:
        ach = a.subscribe(name)
        b.subscribe(name, events=["client-py"])
        ach.trigger("client-py", {"k": "v"})
        b.next_event()
        ev = eventually(lambda: [e for e in events_of(rec, api) if e.get("name") == "client_event" and e.get("channel") == name],
                        what="client_event")[0]
        assert ev["event"] == "client-py"
        assert json.loads(ev["data"]) == {"k": "v"}
        assert ev["socket_id"] == a.socket_id
        cache = uid("cache-pywh")
        a.subscribe(cache)
        eventually(lambda: [e for e in events_of(rec, api) if e.get("name") == "cache_miss" and e.get("channel") == cache],
                   what="cache_miss")
    finally:
        a.close()
        b.close()
