"""Webhooks reach public destinations only (switchboard.egress): loopback, private, link-local and
multicast addresses are refused when the subscription is made and again on every send (after DNS
resolution), unless ``webhook_allowed_destinations`` names them; redirects are never followed; a
delivery's status is in our words, never the target's. Real HTTP and TCP servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select

from routing.webhooks import (
    DeliveryState,
    WebhookDelivery,
    WebhookDispatcher,
    WebhookSubscription,
    enqueue_webhook_deliveries,
    subscription_cache,
)
from switchboard.auth.models import Role
from switchboard.db import Database
from switchboard.egress import DestinationRefused, EgressPolicy

REFUSED = [
    "http://127.0.0.1:8000/hook",
    "http://127.9.9.9/hook",
    "http://[::1]/hook",
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://[fe80::1]/hook",
    "http://10.1.2.3/hook",
    "http://172.16.0.1/hook",
    "http://192.168.1.1/hook",
    "http://100.64.0.1/hook",  # carrier-grade NAT
    "http://224.0.0.1/hook",
    "http://239.1.2.3/hook",
    "http://0.0.0.0/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:a9fe:a9fe]/hook",  # 169.254.169.254 written as IPv6
    "http://2130706433/hook",  # 127.0.0.1 as one decimal number: the resolver reads it
    "http://0x7f.1/hook",
    "http://localhost:8000/hook",  # a name: refused after resolution
    # IPv4 embedded in IPv6 by translation and tunnelling (a NAT64 gateway forwards to the embedded
    # address: the metadata service, a private network).
    "http://[64:ff9b::a9fe:a9fe]/hook",  # NAT64 (RFC 6052) of 169.254.169.254
    "http://[64:ff9b::a01:203]/hook",  # NAT64 of 10.1.2.3
    "http://[64:ff9b:1::a01:203]/hook",  # local-use NAT64 prefix (RFC 8215)
    "http://[2002:7f00:1::]/hook",  # 6to4 of 127.0.0.1
    "http://[::127.0.0.1]/hook",  # IPv4-compatible (deprecated) form
]


@pytest.mark.parametrize("url", REFUSED)
async def test_refused_destinations(url):
    with pytest.raises(DestinationRefused):
        await EgressPolicy().resolve(url)


async def test_allow_list_names_addresses_networks_and_hosts():
    assert (await EgressPolicy.from_entries(["127.0.0.1"]).resolve("http://127.0.0.1:81/x")).url == (
        "http://127.0.0.1:81/x"
    )
    assert await EgressPolicy.from_entries(["10.0.0.0/8"]).resolve("http://10.9.8.7/x")
    pinned = await EgressPolicy.from_entries(["localhost"]).resolve("http://localhost:81/x?a=1")
    assert pinned.host_header == "localhost:81" and pinned.server_name == "localhost"
    assert pinned.url.endswith(":81/x?a=1") and "localhost" not in pinned.url  # connects to the address
    with pytest.raises(DestinationRefused):
        await EgressPolicy.from_entries(["10.0.0.0/8"]).resolve("http://192.168.0.1/x")
    with pytest.raises(ValueError):
        EgressPolicy.from_entries(["not a host"])


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000/hook", "http://169.254.169.254/", "http://localhost/x"]
)
async def test_api_refuses_internal_destinations_naming_the_url(client, make_user, url):
    _, headers = await make_user(Role.SUPERVISOR)
    created = await client.post("/api/routing/webhooks", json={"url": url}, headers=headers)
    assert created.status_code == 422, created.text
    assert [e["field"] for e in created.json()["errors"]] == ["body.url"]
    assert "refused" in created.json()["detail"]
    listed = await client.get("/api/routing/webhooks", headers=headers)
    assert listed.json() == []

    ok = await client.post("/api/routing/webhooks", json={"url": "https://hooks.example/x"}, headers=headers)
    assert ok.status_code == 201
    moved = await client.patch(f"/api/routing/webhooks/{ok.json()['id']}", json={"url": url}, headers=headers)
    assert moved.status_code == 422 and moved.json()["errors"][0]["field"] == "body.url"


# ---------------------------------------------------------------------- delivery


class Server:
    """An HTTP server on 127.0.0.1 that records what it receives and answers ``reply``."""

    def __init__(self, reply: tuple[int, dict[str, str]] = (200, {})) -> None:
        self.received: list[dict[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.received.append({k.lower(): v for k, v in self.headers.items()})
                status, headers = reply
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "22")
                self.end_headers()
                self.wfile.write(b"internal secret answer")

            do_GET = do_POST  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.port = self.server.server_address[1]

    def url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/hooks"


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for s in started:
        s.server.shutdown()
        s.server.server_close()


async def _subscribe_unchecked(db: Database, url: str) -> None:
    """A row as an older version (or a changed DNS answer) could have left it: unchecked."""
    async with db.sessionmaker() as s:
        s.add(WebhookSubscription(url=url, event_types=[], secret="s" * 32, active=True))
        await s.commit()
    subscription_cache.invalidate()
    async with db.sessionmaker() as s:
        await enqueue_webhook_deliveries(s, event_type="queued", payload={"type": "queued"})
        await s.commit()


async def _only_delivery(db: Database) -> WebhookDelivery:
    async with db.sessionmaker() as s:
        (row,) = (await s.scalars(select(WebhookDelivery))).all()
        return row


async def test_send_refuses_an_internal_destination_without_connecting(db, servers):
    inside = Server()
    servers.append(inside)
    await _subscribe_unchecked(db, inside.url())
    assert await WebhookDispatcher(db).dispatch_due() == 1
    row = await _only_delivery(db)
    assert inside.received == []
    assert row.state is DeliveryState.PENDING and row.last_status is None
    assert row.last_error is not None and row.last_error.startswith("destination refused: ")


async def test_allow_listed_local_receiver_gets_it_with_its_host_name(db, servers):
    receiver = Server()
    servers.append(receiver)
    await _subscribe_unchecked(db, receiver.url("localhost"))
    egress = EgressPolicy.from_entries(["localhost"])
    assert await WebhookDispatcher(db, egress=egress).dispatch_due() == 1
    assert (await _only_delivery(db)).state is DeliveryState.DELIVERED
    assert receiver.received[0]["host"] == f"localhost:{receiver.port}"


async def test_a_redirect_is_recorded_never_followed(db, servers):
    target = Server()
    bouncer = Server((307, {"Location": target.url()}))
    servers.extend([target, bouncer])
    await _subscribe_unchecked(db, bouncer.url())
    assert await WebhookDispatcher(db, egress=EgressPolicy.from_entries(["127.0.0.1"])).dispatch_due() == 1
    row = await _only_delivery(db)
    assert (row.last_status, row.last_error) == (307, "HTTP 307")
    assert len(bouncer.received) == 1 and target.received == []


@pytest.fixture
def banner_port() -> Iterator[int]:
    """A TCP service that is not HTTP: it greets with a banner and hangs up."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(b"SSH-2.0-OpenSSH_9.6 banner-of-the-inside-host\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(2)
    listener.close()


async def test_the_status_never_echoes_what_the_target_said(db, banner_port, app, client, make_user):
    # Every app process runs a dispatcher; the app's own (refusing 127.0.0.1) would race this
    # test's for the delivery and push it out of reach, so it is stopped before the row exists.
    await app.state.webhook_dispatcher.stop()
    (app_dispatcher,) = [t for t in asyncio.all_tasks() if t.get_name() == "webhooks"]
    await asyncio.wait_for(app_dispatcher, timeout=10)
    await _subscribe_unchecked(db, f"http://127.0.0.1:{banner_port}/hooks")
    assert await WebhookDispatcher(db, egress=EgressPolicy.from_entries(["127.0.0.1"])).dispatch_due() == 1
    row = await _only_delivery(db)
    assert row.last_error == "no valid HTTP answer"
    _, headers = await make_user(Role.SUPERVISOR)
    detail = await client.get(f"/api/routing/webhooks/{row.subscription_id}", headers=headers)
    assert "banner" not in detail.text and "SSH" not in detail.text
