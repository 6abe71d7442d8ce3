#!/usr/bin/env python3
"""Writes the seed corpora in fuzz/seeds/<target>/ from the tests' own inputs.

Frames, channel_data/user_data and TOML are the raw-string literals of the unit tests and of
tests/*.rs; handshakes, signed requests and trigger bodies are the tests' vectors written in each
target's input format. Run from anywhere: python3 fuzz/make_seeds.py
"""
import hashlib
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
SEEDS = ROOT / "fuzz" / "seeds"
RAW = re.compile(r'r#"(.*?)"#', re.S)


def literals(*globs):
    """Raw-string literals (r#"..."#) of the files, without format! templates."""
    for pattern in globs:
        for path in sorted(ROOT.glob(pattern)):
            for text in RAW.findall(path.read_text()):
                if "{{" not in text and "{}" not in text:
                    yield text


def write(target, inputs):
    folder = SEEDS / target
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    unique = {i if isinstance(i, bytes) else i.encode(): None for i in inputs}
    for data in unique:
        (folder / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)
    print(f"{target}: {len(unique)} seeds")


TESTS = ("tests/*.rs", "tests/common/*.rs")

write("client_message",
      [t for t in literals("src/protocol/client.rs", *TESTS) if '"event"' in t])

# The last two: inputs of the presence-hash fix (user_info not carried as signed); the second is
# the one the fuzzer found.
write("member_data",
      [t for t in literals("src/protocol/member.rs", *TESTS)
       if t.startswith("{") and ('"user_id"' in t or '"id"' in t)]
      + ['{"user_id":"1","user_info":{"n":1e400,"m":123456789012345678901234567890}}',
         '{"id":"5","user_info":{"$serde_json::private::RawValue" :\n " [   ]  "}}'])

toml = [t for t in literals("src/config.rs") if "=" in t]
toml += ["", "[server]\nhost = \"0.0.0.0\"\n", "[server]\nport = 7000\nactivity_timeout = \"2s\"\n",
         "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\n[[apps.webhooks]]\n"
         "url = \"http://127.0.0.1:9/hook\"\nevents = [\"channel_occupied\"]\nbatch = true\n"]
readme = (ROOT / "README.md").read_text()
toml += re.findall(r"```toml\n(.*?)```", readme, re.S)
write("config", toml)

GOOD = ("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")
write("handshake", [
    f"GET /app/app-key?protocol=7&client=js&version=8.4.0 HTTP/1.1\r\nHost: 127.0.0.1\r\n{GOOD}\r\n",
    f"GET /app/app%2Dkey HTTP/1.1\r\n{GOOD}\r\n",
    f"GET /other HTTP/1.1\r\n{GOOD}\r\n",
    f"POST /app/k HTTP/1.1\r\nContent-Length: 0\r\n{GOOD}\r\n",
    "GET /app/k HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    "GET /app/k HTTP/1.1\r\nUpgrade: h2c, WebSocket\r\nSec-WebSocket-Version: 13\r\n\r\n",
])

# METHOD\npath\nraw query\nbody: the documented vectors of src/auth/api.rs.
EVENT = '{"name":"foo","channels":["project-3"],"data":"{\\"some\\":\\"data\\"}"}'
write("api_signature", [
    "POST\n/apps/3/events\nauth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0"
    "&body_md5=ec365a775a4cd0599faeb73354201b6f&auth_signature="
    "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c\n" + EVENT,
    "GET\n/apps/3/channels\nauth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0"
    "&filter_by_prefix=presence-&info=user%5Fcount&auth_signature="
    "16819168891cb5dfd72b5c7a5d3d602605b26c6ba1930033b5e2eeeb65010291\n",
    "POST\n/apps/3/users/user-1/terminate_connections\nauth_key=278d425bdf160c739803"
    "&auth_timestamp=1353088179&auth_version=1.0&body_md5=99914b932bd37a50b983c5e7c90ae93b"
    "&auth_signature=880052344e56f2b29dd6ae66856b69f1d496d6a262d22ccd4f50f94a6d98bf6a\n{}",
    "GET\n/some/obscure/api\nauth_key=key&auth_timestamp=1000&auth_version=1.0"
    "&body_md5=d41d8cd98f00b204e9800998ecf8427e&foo=bar\n",
    "GET\n/apps/3/channels\nauth_version=2.0\n",
    "GET\n/apps/3/channels\nauth_version=1.0&auth_timestamp=99999999999999999999\n",
])

# One byte for the endpoint (0 /events, 1 /batch_events, 2 the 2011 one), then the body.
write("event_body", [
    b"\x00" + EVENT.encode(),
    b"\x00" + b'{"name":"e","channel":"cache-x","data":"d","socket_id":"1.2","info":"user_count,subscription_count"}',
    b"\x00" + b'{"name":"pusher:x","channels":["a"],"data":"d"}',
    b"\x00" + b'{"name":"e","channels":["private-encrypted-a","b"],"data":"d"}',
    b"\x00" + b'{"name":"e","channels":["a","a","#server-to-user-u1"],"data":{}}',
    b"\x01" + b'{"batch":[{"name":"e","channel":"a","data":"1"},{"name":"f","channel":"b","data":"2","info":"user_count"}]}',
    b"\x01" + b'{"batch":[{"name":"e","channels":["a"],"data":"1"}]}',
    b"\x02" + b"name=my-event&socket_id=123.456\nmy-channel\n{\"message\":\"hello\"}",
])
