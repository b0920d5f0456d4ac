"""Seed diagram 6, whole, under fire: one cluster shared by every drill of this module.

The cluster: nginx terminating TLS (a throwaway CA) with sticky sessions, three
``tutorial serve`` processes behind wiretaps, a Redis master with two replicas and
three Sentinels (``redis+sentinel://``), a PostgreSQL primary with two streaming hot
standbys. Every drill checks what crossed the wire with
:func:`tutorial.cluster.ledger.check_delivery` (tests/test_ledger.py shows it fails on
a lost, duplicated or reordered message) and prints its figures, recovery time
included, even under ``make test``; a recovery time has a stated bound, asserted.

The drills run in file order; the last one (the primary stopped, a standby promoted)
leaves the cluster changed, which is why it is last.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from browser import CHROMIUM, CHROMIUM_ARGS, open_chat
from playwright.async_api import expect
from skips import needs

from tutorial.client.client import ChatClient, ChatError, ClientOptions
from tutorial.cluster import drills
from tutorial.cluster.cluster import Cluster, client_address
from tutorial.protocol.layers import Layer

REDIS_FAILOVER_RECOVERY_S = 20.0
"""After ``kill -9`` of the Redis master, a message crosses servers live again within
this many seconds (from the kill, on the wire): the Sentinels call the master down after
1 s and promote a replica (about 2-3 s here), then python-socketio's listener
re-subscribes after 1, 2, 4 ... s; the rest is margin for a loaded machine."""

PRIMARY_RECOVERY_S = 10.0
"""After a standby is promoted, the first write is acknowledged on the wire within this
many seconds: the store's next connection finds the new primary
(``target_session_attrs=read-write``) and the outboxes resend with a backoff capped at
1 s."""

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.postgres,
    pytest.mark.timeout(180),
    pytest.mark.asyncio(loop_scope="module"),
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster() -> AsyncIterator[Cluster]:
    started = Cluster(servers=3, postgres=True, taps=True, fail_timeout=30)
    await started.start()
    try:
        yield started
    finally:
        await started.stop()


def report(drill: drills.DrillReport, capsys: pytest.CaptureFixture[str]) -> None:
    """Print the drill's figures even when pytest captures output (make test shows them)."""
    with capsys.disabled():
        print(f"\n  {drill.line()}")


async def test_a_wss_round_trip_through_nginx_verifies_the_certificate(cluster: Cluster) -> None:
    assert cluster.url.startswith("https://")
    room = await drills.new_room(cluster, "tls")
    clients = await drills.connect(cluster, ["alice", "bob"], room)
    try:
        start = len(cluster.trace)
        ack = await clients[0].send(room, "over wss, verified")
        await clients[1].wait_until(lambda: "over wss, verified" in clients[1].received(room), 10)
        assert ack["seq"] == 1
        # Behind nginx the tap reads plain Engine.IO: the same message, in clear text.
        plain = [
            e
            for e in cluster.trace.events[start:]
            if e.layer is Layer.EIO and e.raw and b"over wss, verified" in e.raw
        ]
        assert {e.source for e in plain} >= {"alice"} and {e.target for e in plain} >= {"bob"}
        upgrades = [
            e
            for e in cluster.trace.events
            if e.layer is Layer.HTTP and e.source == "alice" and "websocket" in e.label.lower()
        ]
        headers = {k.lower(): v for k, v in upgrades[0].fields["headers"]}
        assert headers["x-forwarded-proto"] == "https"
        assert headers["x-real-ip"] == client_address(0)
    finally:
        await drills.close(clients)
    # Without the cluster's CA a client refuses the server: verification is on.
    stranger = ChatClient(cluster.url, "carol", "carol", options=ClientOptions(max_retries=0))
    with pytest.raises(ChatError):
        await stranger.connect()
    await stranger.close()
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await http.get(f"{cluster.url}/healthz")
    trusted = aiohttp.TCPConnector(ssl=cluster.ssl_context)
    async with (
        aiohttp.ClientSession(connector=trusted) as http,
        http.get(f"{cluster.url}/healthz") as response,
    ):
        assert response.status == 200


@pytest.mark.browser
@needs("chromium")
async def test_the_official_js_client_in_chromium_chats_over_wss_trusting_only_the_ca(
    cluster: Cluster,
) -> None:
    from playwright.async_api import Error as PlaywrightError
    from playwright.async_api import async_playwright

    assert cluster.ca is not None
    pinned = [*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={cluster.ca.spki_sha256()}"]
    bob = ChatClient(cluster.url, "bob", "bob", options=cluster.client_options(1))
    async with async_playwright() as pw:
        # Without the cluster's key, Chromium refuses the certificate: verification is on.
        stranger = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await (await stranger.new_context()).new_page()
            with pytest.raises(PlaywrightError, match="ERR_CERT_AUTHORITY_INVALID"):
                await page.goto(cluster.url)
        finally:
            await stranger.close()
        chromium = await pw.chromium.launch(executable_path=str(CHROMIUM), args=pinned)
        try:
            alice = await open_chat(chromium, cluster.url, "alice")
            await alice.logged_in("alice")
            await alice.join("tech-talk")
            await bob.connect()
            await bob.join("tech-talk")
            await alice.say("from Chromium, over wss")
            await bob.wait_until(lambda: "from Chromium, over wss" in bob.received("tech-talk"), 10)
            await bob.send("tech-talk", "back to the browser")
            await expect(alice.messages().last).to_contain_text("back to the browser")
            assert alice.page.url.startswith("https://")
            assert alice.console_errors == []
        finally:
            await bob.close()
            await chromium.close()


async def test_replica_lag_is_seen_and_repaired_by_the_seq(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    drill = await drills.replica_lag(cluster)
    report(drill, capsys)
    f = drill.figures
    assert f["stale_history_seqs"] == []  # bob's first history came from a lagging standby
    assert f["stale_reads_sent_to_primary"] >= 1  # atLeast sent the repair to the primary
    assert all(lag and lag > 0 for lag in f["lag_bytes"].values()), f["lag_bytes"]


async def test_a_failed_lag_drill_leaves_no_standby_paused(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def never_delivered(*args: object, **kwargs: object) -> None:
        raise TimeoutError("made to fail while the standbys are paused")

    monkeypatch.setattr(drills, "all_delivered", never_delivered)
    with pytest.raises(TimeoutError, match="made to fail"):
        await drills.replica_lag(cluster)
    for standby in cluster.standbys:
        assert standby.psql("SELECT pg_is_wal_replay_paused()").strip() == "f", standby.name


async def test_a_stopped_standby_makes_reads_fall_back(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    drill = await drills.replica_down(cluster)
    report(drill, capsys)
    assert drill.figures["fallbacks"] >= 1


async def test_redis_master_killed_under_load_loses_nothing_acked(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    drill = await drills.redis_failover(cluster)
    report(drill, capsys)
    f = drill.figures
    assert f["promoted"] != f["killed"]
    assert f["cross_server_resumed_s"] is not None
    assert f["cross_server_resumed_s"] <= REDIS_FAILOVER_RECOVERY_S, f
    assert f["gaps_repaired"] >= 0 and drill.delivery.acked == f["sent"]


async def test_primary_stopped_then_promoted_loses_nothing_acked(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    drill = await drills.primary_down(cluster)
    report(drill, capsys)
    f = drill.figures
    assert f["store_unavailable_answers"] >= 1
    assert f["writes_resumed_after_promotion_s"] is not None
    assert f["writes_resumed_after_promotion_s"] <= PRIMARY_RECOVERY_S, f
    assert drill.delivery.acked == drill.delivery.stored
