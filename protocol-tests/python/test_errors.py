"""Bad input the Python SDK can send, and the exception the application gets (the same one
hosted Pusher produces: PusherBadAuth for 401, PusherBadRequest for 400, PusherBadStatus for 413)."""

import time

import pytest
from pusher.errors import PusherBadAuth, PusherBadRequest, PusherBadStatus

from conftest import APPS, make_sdk, uid


def test_wrong_secret_trigger(server):
    bad = make_sdk(server, secret="wrong-secret")
    with pytest.raises(PusherBadAuth) as e:
        bad.trigger(uid("x"), "ev", {})
    assert str(e.value).startswith("Invalid signature")


def test_wrong_secret_get_with_body_md5(server):
    bad = make_sdk(server, secret="wrong-secret")
    with pytest.raises(PusherBadAuth):
        bad.channels_info()


def test_wrong_secret_terminate_short_path(server):
    bad = make_sdk(server, secret="wrong-secret")
    with pytest.raises(PusherBadAuth):
        bad.terminate_user_connections(uid("u"))


def test_expired_timestamp(server, monkeypatch):
    api = make_sdk(server)
    real = time.time
    monkeypatch.setattr("pusher.http.time.time", lambda: real() - 601)
    with pytest.raises(PusherBadAuth) as e:
        api.trigger(uid("x"), "ev", {})
    assert str(e.value).startswith("Timestamp expired")


def test_timestamp_in_the_future_expired(server, monkeypatch):
    api = make_sdk(server)
    real = time.time
    monkeypatch.setattr("pusher.http.time.time", lambda: real() + 601)
    with pytest.raises(PusherBadAuth):
        api.channels_info()


def test_oversize_data_is_413(server):
    # The SDK lets up to ~30 KB through trigger(); herald enforces 10 KB like hosted Pusher.
    api = make_sdk(server)
    with pytest.raises(PusherBadStatus) as e:
        api.trigger(uid("x"), "ev", "x" * 20000)
    assert str(e.value).startswith("413")


def test_too_many_channels_for_the_app(server):
    api = make_sdk(server, APPS["limits"])  # max_channels_per_trigger = 2
    with pytest.raises(PusherBadRequest):
        api.trigger([uid("a"), uid("b"), uid("c")], "ev", {})


def test_too_many_batch_events(server):
    api = make_sdk(server, APPS["limits"])  # max_batch_events = 2
    with pytest.raises(PusherBadRequest):
        api.trigger_batch([{"channel": uid("c"), "name": "ev", "data": str(i)} for i in range(3)])


def test_user_count_on_public_channel(server):
    api = make_sdk(server)
    with pytest.raises(PusherBadRequest):
        api.channel_info(uid("public"), ["user_count"])


def test_users_of_public_channel(server):
    api = make_sdk(server)
    with pytest.raises(PusherBadRequest):
        api.users_info(uid("public"))
