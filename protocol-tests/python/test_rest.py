"""The PyPI `pusher` SDK's REST calls against herald, with pysher / raw WebSocket receivers.

The Python SDK differs from the Node one on the wire: `", "` JSON separators, `body_md5` on GET
requests, and `/users/{id}/terminate_connections` without the `/apps/{id}` prefix.
"""

import json
import time

from conftest import APPS, eventually, uid


def test_trigger_one_channel_reaches_pysher(sdk, pysher_client):
    name = uid("py-public")
    c = pysher_client()
    c.subscribe(name, events=["greeting"])
    assert sdk.trigger(name, "greeting", {"text": "hello", "n": 1}) == {}
    channel, event, data = c.next_event()
    assert (channel, event) == (name, "greeting")
    assert json.loads(data) == {"text": "hello", "n": 1}


def test_trigger_data_keeps_python_json_spacing(sdk, raw):
    name = uid("py-spacing")
    c = raw()
    c.send("pusher:subscribe", {"channel": name, "auth": ""})
    c.next("pusher_internal:subscription_succeeded")
    sdk.trigger(name, "ev", {"a": 1, "b": [1, 2]})
    frame = c.next("ev")
    assert frame["raw_data"] == '{"a": 1, "b": [1, 2]}', "data must be relayed byte-for-byte"


def test_trigger_several_channels(sdk, pysher_client):
    names = [uid("py-multi"), uid("py-multi"), uid("py-multi")]
    c = pysher_client()
    for n in names:
        c.subscribe(n, events=["fan"])
    sdk.trigger(names, "fan", {"all": True})
    got = sorted(c.next_event()[0] for _ in names)
    assert got == sorted(names)


def test_trigger_with_socket_id_excludes_that_connection(sdk, pysher_client):
    name = uid("py-exclude")
    a = pysher_client()
    b = pysher_client()
    a.subscribe(name, events=["ev"])
    b.subscribe(name, events=["ev"])
    sdk.trigger(name, "ev", "plain string", socket_id=a.socket_id)
    assert b.next_event()[2] == "plain string"
    a.no_event()


def test_trigger_batch(sdk, pysher_client):
    c1, c2 = uid("py-batch"), uid("py-batch")
    c = pysher_client()
    c.subscribe(c1, events=["b1"])
    c.subscribe(c2, events=["b2"])
    res = sdk.trigger_batch([
        {"channel": c1, "name": "b1", "data": {"n": 1}},
        {"channel": c2, "name": "b2", "data": "two"},
    ])
    assert isinstance(res, dict)
    got = {c.next_event()[1]: None for _ in range(2)}
    assert set(got) == {"b1", "b2"}


def test_send_to_user_reaches_signed_in_connection(sdk, raw):
    user = uid("py-user")
    c = raw()
    auth = sdk.authenticate_user(c.socket_id, {"id": user, "user_info": {"name": "Py"}})
    c.send("pusher:signin", auth)
    c.next("pusher:signin_success")
    assert sdk.send_to_user(user, "py-notice", {"x": 1}) == {}
    frame = c.next("py-notice")
    assert frame["channel"] == "#server-to-user-" + user
    assert frame["data"] == {"x": 1}
    time.sleep(0.3)
    assert len([f for f in c.frames if f.get("event") == "py-notice"]) == 1


def test_channels_info_with_body_md5_on_get(sdk, raw):
    pres = uid("presence-py-list")
    pub = uid("py-list")
    c = raw()
    data = {"user_id": "lister", "user_info": {"name": "L"}}
    auth = sdk.authenticate(pres, c.socket_id, data)
    c.send("pusher:subscribe", {"channel": pres, "auth": auth["auth"], "channel_data": auth["channel_data"]})
    c.send("pusher:subscribe", {"channel": pub, "auth": ""})
    c.next(lambda f: f.get("event") == "pusher_internal:subscription_succeeded" and f.get("channel") == pub)

    everything = sdk.channels_info()
    assert everything["channels"][pub] == {}
    assert everything["channels"][pres] == {}

    filtered = sdk.channels_info(prefix_filter="presence-", attributes=["user_count"])
    assert filtered["channels"][pres] == {"user_count": 1}
    assert pub not in filtered["channels"]


def test_channel_info_every_attribute(sdk, raw):
    pres = uid("presence-py-info")
    cache = uid("cache-py-info")
    users = ["p1", "p2", "p1"]
    for u in users:
        c = raw()
        data = {"user_id": u, "user_info": {"name": u}}
        auth = sdk.authenticate(pres, c.socket_id, data)
        c.send("pusher:subscribe", {"channel": pres, "auth": auth["auth"], "channel_data": auth["channel_data"]})
        c.send("pusher:subscribe", {"channel": cache, "auth": ""})
        c.next(lambda f: f.get("event") == "pusher_internal:subscription_succeeded" and f.get("channel") == cache)

    info = sdk.channel_info(pres, ["user_count", "subscription_count"])
    assert info["occupied"] is True
    assert info["user_count"] == 2
    assert info["subscription_count"] == 3

    sdk.trigger(cache, "cached", {"v": 1})
    info = sdk.channel_info(cache, ["cache"])
    assert info["occupied"] is True
    assert info["cache"]["data"] == '{"v": 1}'
    assert 0 < info["cache"]["ttl"] <= 1800

    assert sdk.channel_info(uid("py-empty"))["occupied"] is False


def test_users_info(sdk, raw):
    pres = uid("presence-py-users")
    for u in ["ua", "ub"]:
        c = raw()
        auth = sdk.authenticate(pres, c.socket_id, {"user_id": u})
        c.send("pusher:subscribe", {"channel": pres, "auth": auth["auth"], "channel_data": auth["channel_data"]})
        c.next("pusher_internal:subscription_succeeded")
    users = sdk.users_info(pres)["users"]
    assert sorted(u["id"] for u in users) == ["ua", "ub"]


def test_terminate_user_connections_short_path(sdk, raw):
    user = uid("py-term")
    c = raw()
    other = raw()
    auth = sdk.authenticate_user(c.socket_id, {"id": user})
    c.send("pusher:signin", auth)
    c.next("pusher:signin_success")
    auth2 = sdk.authenticate_user(other.socket_id, {"id": uid("py-other")})
    other.send("pusher:signin", auth2)
    other.next("pusher:signin_success")

    assert sdk.terminate_user_connections(user) == {}
    status, _reason = c.wait_closed()
    assert status is not None and 4000 <= status < 4100, "close code %r must stop clients reconnecting" % status
    time.sleep(0.3)
    assert other.close_status is None


def test_legacy_style_integer_user_id_is_a_string_in_users_api(sdk, raw):
    pres = uid("presence-py-int")
    c = raw()
    auth = sdk.authenticate(pres, c.socket_id, {"user_id": 42, "user_info": {"n": 1}})
    c.send("pusher:subscribe", {"channel": pres, "auth": auth["auth"], "channel_data": auth["channel_data"]})
    ok = c.next("pusher_internal:subscription_succeeded")
    assert ok["data"]["presence"]["count"] == 1
    users = eventually(lambda: sdk.users_info(pres)["users"], what="users")
    assert users == [{"id": "42"}]


def test_limits_app_trigger_ok(server):
    from conftest import make_sdk

    api = make_sdk(server, APPS["limits"])
    assert api.trigger([uid("a"), uid("b")], "ev", {}) == {}


def test_channel_names_with_punctuation(sdk, raw):
    name = uid("py-punct") + "-_=@,.;end"
    pres = "presence-" + uid("py-punct") + "=@,.;"
    c = raw()
    c.send("pusher:subscribe", {"channel": name, "auth": ""})
    auth = sdk.authenticate(pres, c.socket_id, {"user_id": "pp"})
    c.send("pusher:subscribe", {"channel": pres, "auth": auth["auth"], "channel_data": auth["channel_data"]})
    c.next(lambda f: f.get("event") == "pusher_internal:subscription_succeeded" and f.get("channel") == pres)
    sdk.trigger(name, "ev", {"ok": 1})
    assert c.next("ev")["data"] == {"ok": 1}
    assert sdk.channel_info(name, ["subscription_count"]) == {"occupied": True, "subscription_count": 1}
    assert sdk.users_info(pres) == {"users": [{"id": "pp"}]}


def test_terminate_user_with_punctuation_short_path(sdk, raw):
    user = uid("py-mail") + "@example.com"
    c = raw()
    c.send("pusher:signin", sdk.authenticate_user(c.socket_id, {"id": user}))
    c.next("pusher:signin_success")
    assert sdk.send_to_user(user, "hi", {"u": user}) == {}
    assert c.next("hi")["data"] == {"u": user}
    assert sdk.terminate_user_connections(user) == {}
    status, _ = c.wait_closed()
    assert 4000 <= status < 4100
