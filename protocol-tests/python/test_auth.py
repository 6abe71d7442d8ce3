"""Channel and user auth strings made by the Python SDK (and by pysher itself) are accepted by
herald; pysher as a second WebSocket client (it connects with protocol=6)."""

import json

from conftest import eventually, uid


def test_pysher_connects_with_protocol_6(pysher_client):
    c = pysher_client()
    assert c.socket_id and c.socket_id.replace(".", "").isdigit() and c.socket_id.count(".") == 1


def test_private_channel_with_python_sdk_auth(sdk, pysher_client):
    name = uid("private-py")
    c = pysher_client()
    auth = sdk.authenticate(name, c.socket_id)["auth"]
    c.subscribe(name, auth=auth, events=["secret"])
    sdk.trigger(name, "secret", {"v": 1})
    channel, event, data = c.next_event()
    assert json.loads(data) == {"v": 1}


def test_private_channel_signed_by_pysher_itself(server, sdk):
    from conftest import PysherClient

    c = PysherClient(server, secret="pt-main-secret")
    try:
        name = uid("private-pysher")
        c.subscribe(name, events=["ev"])
        sdk.trigger(name, "ev", "x")
        assert c.next_event()[2] == "x"
    finally:
        c.close()


def test_presence_channel_signed_by_pysher_itself(server, sdk):
    from conftest import PysherClient

    c = PysherClient(server, secret="pt-main-secret", user_data={"user_id": "pysher-user", "user_info": {"name": "P"}})
    try:
        name = uid("presence-pysher")
        c.subscribe(name)
        users = eventually(lambda: sdk.users_info(name)["users"], what="presence member")
        assert users == [{"id": "pysher-user"}]
    finally:
        c.close()


def test_presence_auth_with_python_json_spacing(sdk, raw):
    name = uid("presence-py-auth")
    c = raw()
    auth = sdk.authenticate(name, c.socket_id, {"user_id": "py-1", "user_info": {"name": "Py One"}})
    assert ", " in auth["channel_data"] or ": " in auth["channel_data"]
    c.send("pusher:subscribe", {"channel": name, "auth": auth["auth"], "channel_data": auth["channel_data"]})
    ok = c.next("pusher_internal:subscription_succeeded")
    presence = ok["data"]["presence"]
    assert presence["count"] == 1
    assert presence["hash"] == {"py-1": {"name": "Py One"}}


def test_presence_member_events_between_sdk_authorized_clients(sdk, raw):
    name = uid("presence-py-members")
    a = raw()
    auth = sdk.authenticate(name, a.socket_id, {"user_id": "a"})
    a.send("pusher:subscribe", {"channel": name, "auth": auth["auth"], "channel_data": auth["channel_data"]})
    a.next("pusher_internal:subscription_succeeded")
    b = raw()
    auth = sdk.authenticate(name, b.socket_id, {"user_id": "b", "user_info": {"k": "v"}})
    b.send("pusher:subscribe", {"channel": name, "auth": auth["auth"], "channel_data": auth["channel_data"]})
    b.next("pusher_internal:subscription_succeeded")
    added = a.next("pusher_internal:member_added")
    assert added["data"] == {"user_id": "b", "user_info": {"k": "v"}}
    b.close()
    removed = a.next("pusher_internal:member_removed")
    assert removed["data"] == {"user_id": "b"}


def test_encrypted_channel_auth_and_trigger(sdk, raw):
    name = uid("private-encrypted-py")
    c = raw()
    auth = sdk.authenticate(name, c.socket_id)
    assert "shared_secret" in auth
    c.send("pusher:subscribe", {"channel": name, "auth": auth["auth"]})
    c.next("pusher_internal:subscription_succeeded")
    sdk.trigger(name, "sealed", {"secret": "py-plaintext"})
    frame = c.next("sealed")
    assert "py-plaintext" not in frame["raw_data"]
    assert set(frame["data"]) == {"nonce", "ciphertext"}


def test_user_signin_with_python_sdk_auth(sdk, raw):
    user = uid("py-signin")
    c = raw()
    auth = sdk.authenticate_user(c.socket_id, {"id": user, "user_info": {"name": "Py"}, "watchlist": ["nobody"]})
    c.send("pusher:signin", auth)
    ok = c.next("pusher:signin_success")
    data = ok["data"]
    user_data = data["user_data"] if isinstance(data, dict) else json.loads(data)["user_data"]
    assert user_data == auth["user_data"], "signin_success echoes the exact user_data string"
    # pusher-js then subscribes to its server-to-user channel with an empty auth
    c.send("pusher:subscribe", {"channel": "#server-to-user-" + user, "auth": ""})
    c.next(lambda f: f.get("event") == "pusher_internal:subscription_succeeded" and f.get("channel") == "#server-to-user-" + user)


def test_user_signin_with_wrong_secret_is_refused(server, raw):
    from conftest import make_sdk

    bad = make_sdk(server, secret="wrong")
    c = raw()
    c.send("pusher:signin", bad.authenticate_user(c.socket_id, {"id": uid("py-bad")}))
    err = c.next("pusher:error")
    assert isinstance(err["data"], dict) and err["data"].get("message")
    assert not [f for f in c.frames if f.get("event") == "pusher:signin_success"]


def test_private_channel_with_wrong_secret_is_refused(server, raw):
    from conftest import make_sdk

    bad = make_sdk(server, secret="wrong")
    name = uid("private-py-bad")
    c = raw()
    c.send("pusher:subscribe", {"channel": name, "auth": bad.authenticate(name, c.socket_id)["auth"]})
    err = c.next("pusher:error")
    assert err["data"]["code"] is None
    assert err["data"]["message"].startswith("Invalid signature")
    assert c.close_status is None


def test_pysher_client_events_between_two_pysher_clients(sdk, pysher_client):
    name = uid("private-py-client")
    a = pysher_client()
    b = pysher_client()
    ach = a.subscribe(name, auth=sdk.authenticate(name, a.socket_id)["auth"], events=["client-py"])
    b.subscribe(name, auth=sdk.authenticate(name, b.socket_id)["auth"], events=["client-py"])
    ach.trigger("client-py", {"from": "pysher"})
    channel, event, data = b.next_event()
    assert (channel, event) == (name, "client-py")
    assert json.loads(data) == {"from": "pysher"} if isinstance(data, str) else data == {"from": "pysher"}
    a.no_event()
