"""The webhook channel against a real local HTTP receiver (http.server in a thread).

Signatures, status classification, timeouts, refused connections, and that the
secret never shows in a log line, an error or a repr.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tower.notify.channels import (
    LogChannel,
    Message,
    Permanent,
    Retryable,
    WebhookChannel,
    signature,
    verify_signature,
)

SECRET = b"s3cret-for-tests-0xC0FFEE"


@dataclass(frozen=True)
class Received:
    """One request as the receiver got it."""

    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def event_id(self) -> str:
        return self.headers["X-Tower-Event-Id"]

    @property
    def document(self) -> dict[str, object]:
        doc: dict[str, object] = json.loads(self.body)
        return doc


class Receiver:
    """A real HTTP server on 127.0.0.1 that records every POST and answers by plan.

    ``plan[event_id]`` is a list of statuses answered in turn (then 200);
    ``default`` answers every other request; ``delay_s`` is slept before answering.
    """

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.plan: dict[str, list[int]] = {}
        self.default = 200
        self.headers: dict[str, str] = {}
        self.delay_s = 0.0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                got = Received(self.path, dict(self.headers.items()), body)
                with receiver.lock:
                    receiver.requests.append(got)
                    queue = receiver.plan.get(got.event_id, [])
                    status = queue.pop(0) if queue else receiver.default
                    delay = receiver.delay_s
                if delay:
                    time.sleep(delay)
                payload = b'{"ok": true}' if status < 300 else b"nope"
                try:
                    self.send_response(status)
                    for name, value in receiver.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up (timeout test)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/hooks/tower"

    def start(self) -> Receiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def event_ids(self) -> list[str]:
        with self.lock:
            return [r.event_id for r in self.requests]

    def counts(self) -> Counter[str]:
        return Counter(self.event_ids())


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def _message(event_id: str = "e-1", attempt: int = 1) -> Message:
    return Message(event_id=event_id, topic="exception.opened",
                   created_at=datetime(2026, 11, 11, 8, 0, tzinfo=UTC),
                   payload={"exception_id": "X-1", "title": "hub dwell over 24 h"}, attempt=attempt)


def _channel(url: str, timeout_s: float = 5.0) -> WebhookChannel:
    return WebhookChannel("hook", url, SECRET, timeout_s=timeout_s)


def test_signed_post_reaches_the_receiver(receiver: Receiver) -> None:
    _channel(receiver.url).send(_message())
    [got] = receiver.requests
    assert got.path == "/hooks/tower"
    assert got.document == {"event_id": "e-1", "topic": "exception.opened",
                            "created_at": "2026-11-11T08:00:00+00:00",
                            "payload": {"exception_id": "X-1", "title": "hub dwell over 24 h"}}
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["X-Tower-Event-Id"] == "e-1"
    assert got.headers["X-Tower-Topic"] == "exception.opened"
    assert got.headers["X-Tower-Attempt"] == "1"
    stamp, sig = got.headers["X-Tower-Timestamp"], got.headers["X-Tower-Signature"]
    assert abs(int(stamp) - time.time()) < 60
    assert sig.startswith("sha256=") and len(sig) == len("sha256=") + 64
    assert verify_signature(SECRET, body=got.body, timestamp=stamp, header=sig)
    # What a receiver must refuse: another key, a changed body, a changed or old stamp.
    assert not verify_signature(b"other", body=got.body, timestamp=stamp, header=sig)
    assert not verify_signature(SECRET, body=got.body.replace(b"X-1", b"X-2"), timestamp=stamp, header=sig)
    assert not verify_signature(SECRET, body=got.body, timestamp=str(int(stamp) + 1), header=sig)
    assert not verify_signature(SECRET, body=got.body, timestamp=stamp, header=sig, now=int(stamp) + 301)
    assert not verify_signature(SECRET, body=got.body, timestamp="yesterday", header=sig)


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    expected = hmac.new(SECRET, b"1700000000." + b'{"a":1}', hashlib.sha256).hexdigest()
    assert signature(SECRET, "1700000000", b'{"a":1}') == f"sha256={expected}"


def test_same_message_same_body_on_every_attempt(receiver: Receiver) -> None:
    receiver.plan["e-1"] = [503]
    channel = _channel(receiver.url)
    with pytest.raises(Retryable):
        channel.send(_message(attempt=1))
    channel.send(_message(attempt=2))
    first, second = receiver.requests
    assert first.body == second.body and first.event_id == second.event_id == "e-1"
    assert [first.headers["X-Tower-Attempt"], second.headers["X-Tower-Attempt"]] == ["1", "2"]


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_2xx_is_sent(receiver: Receiver, status: int) -> None:
    receiver.default = status
    _channel(receiver.url).send(_message())
    assert receiver.event_ids() == ["e-1"]


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_408_429_and_5xx_are_retried(receiver: Receiver, status: int) -> None:
    receiver.default = status
    with pytest.raises(Retryable, match=f"HTTP {status}"):
        _channel(receiver.url).send(_message())


@pytest.mark.parametrize("status", [301, 400, 401, 403, 404, 410, 413, 422])
def test_other_statuses_are_permanent(receiver: Receiver, status: int) -> None:
    receiver.default = status
    with pytest.raises(Permanent, match=f"HTTP {status}"):
        _channel(receiver.url).send(_message())


def test_retry_after_is_read(receiver: Receiver) -> None:
    receiver.default = 429
    receiver.headers = {"Retry-After": "7"}
    with pytest.raises(Retryable) as err:
        _channel(receiver.url).send(_message())
    assert err.value.after_s == 7.0


def test_timeout_is_retried(receiver: Receiver) -> None:
    receiver.delay_s = 1.0
    started = time.monotonic()
    with pytest.raises(Retryable, match="timed out"):
        _channel(receiver.url, timeout_s=0.2).send(_message())
    assert time.monotonic() - started < 0.9


def test_refused_connection_is_retried() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(Retryable):
        _channel(f"http://127.0.0.1:{port}/x", timeout_s=1.0).send(_message())


def test_secret_never_in_repr_errors_or_log(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    channel = _channel(receiver.url)
    receiver.default = 500
    with pytest.raises(Retryable) as err:
        channel.send(_message())
    text = SECRET.decode()
    assert text not in repr(channel) and text not in str(err.value)
    assert text not in caplog.text


def test_log_channel_writes_one_structured_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tower.notify.log")
    LogChannel("log").send(_message())
    [record] = [r for r in caplog.records if r.name == "tower.notify.log"]
    line = record.getMessage().removeprefix("notification ")
    assert json.loads(line) == {"channel": "log", "event_id": "e-1", "topic": "exception.opened",
                                "created_at": "2026-11-11T08:00:00+00:00", "attempt": 1,
                                "payload": {"exception_id": "X-1", "title": "hub dwell over 24 h"}}
