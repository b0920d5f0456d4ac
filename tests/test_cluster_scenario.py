"""Seed diagrams 2 and 6, whole: every box and arrow, from a cluster's snapshot; and the
pieces of the cluster stories (the balancer's view, TLS rows, story labels).

The scenarios themselves run against a real cluster in tests/test_diagrams.py (twice,
byte for byte) and tests/test_scenarios.py; here the drawing is checked on a snapshot
of the shape :meth:`Cluster.snapshot` returns, so that a wrong one fails fast.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tutorial.protocol.layers import Layer
from tutorial.render.architecture import architecture_diagram
from tutorial.scenarios.clusterviews import (
    chat_label,
    collapse_tls,
    plain_label,
    relabel,
    through_balancer,
    topology,
)
from tutorial.trace.model import Trace, TraceEvent

EDGE = re.compile(r'^\s*"?([^"\s]+)"? -> "?([^"\s]+)"? \[(.*)\]$')


def snapshot(*, master: int = 1, standby_down: bool = False) -> dict[str, Any]:
    """What Cluster.snapshot() gives for TLS nginx, 3 servers, Redis HA, PostgreSQL."""
    ports = {1: 36001, 2: 36002, 3: 36003}
    return {
        "balancer": {"tls": True, "sticky": True, "port": 443, "active": 4, "requests": 9},
        "servers": [
            {
                "name": f"server-{i}",
                "port": 40000 + i,
                "alive": True,
                "connections": i,
                "users": [],
                "reads": {"reads": {"replica-1": 2, "replica-2": 1}},
            }
            for i in (1, 2, 3)
        ],
        "redis": {
            "mode": "sentinel",
            "nodes": [
                {
                    "name": f"redis-{i}",
                    "port": ports[i],
                    "alive": True,
                    "messages": 10,
                    "role": "master" if i == master else "replica",
                    "lag_bytes": 0,
                }
                for i in (1, 2, 3)
            ],
            "sentinels": [
                {
                    "name": f"sentinel-{i}",
                    "port": 50000 + i,
                    "master_port": ports[master],
                    "epoch": 0,
                }
                for i in (1, 2, 3)
            ],
        },
        "database": {
            "kind": "postgres",
            "nodes": [
                {"name": "primary", "port": 5432, "alive": True, "role": "primary", "rows": 7},
                {
                    "name": "replica-1",
                    "port": 5433,
                    "alive": True,
                    "role": "replica",
                    "rows": 7,
                    "lag_bytes": 0,
                },
                {
                    "name": "replica-2",
                    "port": 5434,
                    "alive": not standby_down,
                    "role": "down" if standby_down else "replica",
                    "rows": 7,
                    "lag_bytes": 0,
                },
            ],
        },
    }


def edges(source: str) -> dict[tuple[str, str], str]:
    found = {}
    for line in source.splitlines():
        m = EDGE.match(line)
        if m and "invis" not in m.group(3):
            found[(m.group(1), m.group(2))] = m.group(3)
    return found


def test_every_box_of_seed_diagram_6_is_drawn_with_live_lines() -> None:
    source = architecture_diagram(topology(snapshot())).source
    for text in [
        "Internet",
        "Load balancer",
        "TLS termination",
        "sticky sessions: hash $remote_addr",
        "Server 1 (Python)",
        "Server 3 (Python)",
        "port 40002",
        "Redis cluster",
        "Redis node 1\\n(Master)",
        "Redis node 2\\n(Replica)",
        "Redis node 3\\n(Replica)",
        "10 adapter messages",
        "Sentinel 1\\n(Sentinel)",
        "Database cluster",
        "Primary DB\\n(Write)",
        "Secondary DB 1\\n(Read)",
        "Secondary DB 2\\n(Read)",
        "7 rows",
        "replay lag 0 B",
        "3 history reads",
    ]:
        assert text in source, text


def test_every_arrow_of_seed_diagram_6_is_drawn_with_its_count() -> None:
    drawn = edges(architecture_diagram(topology(snapshot())).source)
    assert "wss:// (TLS)" in drawn[("internet", "balancer")]
    for i in (1, 2, 3):
        assert f"{i} connection" in drawn[("balancer", f"server-{i}")]
        assert (f"server-{i}", "redis-node-1") in drawn  # publish/subscribe
        assert (f"server-{i}", "db-primary") in drawn  # writes
    assert "replicates" in drawn[("redis-node-1", "redis-node-2")]
    assert "WAL stream" in drawn[("db-primary", "db-replica-1")]
    for i in (1, 2, 3):  # each Sentinel watches the master (drawn from it, arrow back)
        assert "dir=back" in drawn[("redis-node-1", f"sentinel-{i}")]


def test_a_failover_moves_the_master_box_and_a_stopped_standby_is_drawn_down() -> None:
    source = architecture_diagram(topology(snapshot(master=3, standby_down=True))).source
    assert "Redis node 3\\n(Master)" in source and "Redis node 1\\n(Replica)" in source
    assert "master: Redis node 3" in source
    assert "Secondary DB 2\\n(down)" in source
    assert ("redis-node-3", "redis-node-1") in edges(source)


def test_seed_diagram_2_has_the_clients_and_one_redis_and_one_database() -> None:
    snap = snapshot()
    snap["redis"] = {
        "mode": "single",
        "nodes": [{"name": "redis", "messages": 12}],
        "sentinels": [],
    }
    snap["database"] = {"kind": "sqlite", "nodes": [{"name": "sqlite", "rows": 3, "alive": True}]}
    shown = topology(snap, clients=[("alice", "browser"), ("bob", "mobile"), ("eve", "desktop")])
    source = architecture_diagram(shown, title="WebSocket Chat System").source
    for text in [
        "(Browser)",
        "(Mobile)",
        "(Desktop)",
        "Load balancer",
        "Redis adapter",
        "cross-server messaging",
        "12 adapter messages",
        "user data &amp; message history",
        "3 rows",
    ]:
        assert text in source, text
    drawn = edges(source)
    assert ("alice", "balancer") in drawn and ("server-2", "redis") in drawn
    assert ("server-3", "database") in drawn
    assert "Internet" not in source


def test_write_arrows_go_round_the_redis_cluster_in_straight_segments_only_in_diagram_6() -> None:
    # Between the servers and the database sits the Redis cluster: curved splines
    # drew the three write arrows as wide loops around it.
    assert "splines=polyline" in architecture_diagram(topology(snapshot())).source
    snap = snapshot()
    snap["redis"] = {"mode": "single", "nodes": [{"name": "redis", "messages": 1}]}
    snap["database"] = {"kind": "sqlite", "nodes": [{"name": "sqlite", "rows": 1}]}
    assert "splines" not in architecture_diagram(topology(snap)).source


def test_deterministic_pictures_leave_the_ports_out() -> None:
    source = architecture_diagram(topology(snapshot(), deterministic=True)).source
    assert "port" not in source


# -- the stories' pieces ----------------------------------------------------------------


def sio(source: str, target: str, **fields: Any) -> TraceEvent:
    return TraceEvent(0.0, source, target, Layer.SIO, "sio", fields={"namespace": "/", **fields})


def tls(source: str, target: str, kind: str, length: int) -> TraceEvent:
    fields = {"type": kind, "length": length, "encrypted": kind == "application data"}
    return TraceEvent(0.0, source, target, Layer.TLS, f"TLS {kind}", fields=fields, raw=b"x")


def test_story_labels_say_what_matters() -> None:
    send = sio(
        "alice",
        "server-1",
        type="EVENT",
        event="send-message",
        id=3,
        args=[{"roomId": "general", "text": "hi", "clientMsgId": "alice-1"}],
    )
    assert chat_label(send) == 'send-message "hi"'
    repair = sio(
        "bob",
        "server-2",
        type="EVENT",
        event="join-room",
        id=2,
        args=[{"roomId": "general", "since": 1, "atLeast": 3}],
    )
    assert chat_label(repair) == "join-room general (since 1, atLeast 3)"
    refused = sio(
        "server-1",
        "alice",
        type="ACK",
        id=3,
        data=[{"ok": False, "error": {"code": "store_unavailable"}}],
    )
    assert chat_label(refused) == "ack: refused (store_unavailable)"


def test_relabel_marks_a_gap_a_resend_and_a_refusal() -> None:
    def msg(seq: int) -> dict[str, Any]:
        return {"roomId": "general", "seq": seq, "text": f"m{seq}", "clientMsgId": f"a-{seq}"}

    trace = Trace()
    for lid in ("alice", "server-1", "bob"):
        trace.add_lifeline(lid, lid, "client" if lid != "server-1" else "server")
    before = Trace(
        trace.lifelines, [sio("server-1", "bob", type="EVENT", event="new-message", args=[msg(1)])]
    )
    send = sio(
        "alice",
        "server-1",
        type="EVENT",
        event="send-message",
        id=1,
        args=[{"roomId": "general", "text": "m2", "clientMsgId": "a-2"}],
    )
    refused = sio(
        "server-1", "alice", type="ACK", id=1, data=[{"ok": False, "error": {"code": "x"}}]
    )
    story = Trace(
        trace.lifelines,
        [
            send,
            refused,
            send,
            sio("server-1", "bob", type="EVENT", event="new-message", args=[msg(3)]),
        ],
    )
    labels = [(e.label, e.kind) for e in relabel(story, before=before).events]
    assert labels == [
        ('send-message "m2"', "message"),
        ("ack: refused (x)", "error"),
        ('send-message "m2" again (outbox)', "message"),
        ('new-message seq 3 "m3", seq 2 missing: a gap', "message"),
    ]


def test_consecutive_tls_records_become_one_row_without_sizes_in_deterministic_mode() -> None:
    events = [
        tls("nginx", "alice", "application data", 120),
        tls("nginx", "alice", "application data", 51),
        sio("server-1", "bob", type="EVENT", event="new-message", args=[{}]),
        tls("nginx", "bob", "application data", 99),
    ]
    rows = collapse_tls(events, sizes=False)
    assert [e.label for e in rows] == [
        "TLS: application data (encrypted)",
        "sio",
        "TLS: application data (encrypted)",
    ]
    assert rows[0].raw is None
    sized = collapse_tls(events, sizes=True)
    assert sized[0].label == "TLS: application data (encrypted), 2 record(s), 171 bytes"


def test_behind_the_balancer_a_client_s_packets_run_between_nginx_and_its_server() -> None:
    trace = Trace()
    trace.add_lifeline("alice", "alice", "client")
    trace.add_lifeline("server-1", "Server 1", "server")
    trace.add_lifeline("nginx", "nginx", "balancer")
    raw = b'42["send-message",{"roomId":"general","text":"Hello","clientMsgId":"alice-1"}]'
    plain = TraceEvent(0.0, "alice", "server-1", Layer.EIO, "eio MESSAGE", raw=raw)
    cipher = tls("alice", "nginx", "application data", 100)
    view = through_balancer(Trace(trace.lifelines, [cipher, plain]))
    assert [lf.id for lf in view.lifelines] == ["alice", "nginx", "server-1"]
    assert [(e.source, e.target) for e in view.events] == [
        ("alice", "nginx"),
        ("nginx", "server-1"),
    ]
    assert view.events[1].label == 'alice: 42["send-message",{…"text":"Hello"…}]'
    assert plain_label(plain, "alice").endswith('"text":"Hello"…}]')


@pytest.mark.parametrize("name", ["cluster", "architecture"])
def test_the_committed_pictures_hold_the_seed_boxes(name: str) -> None:
    from pathlib import Path

    dot = (Path(__file__).resolve().parent.parent / "diagrams" / f"{name}.dot").read_text()
    wanted = {
        "cluster": [
            "Internet",
            "Load balancer",
            "TLS termination",
            "Server 3 (Python)",
            "(Master)",
            "(Replica)",
            "(Sentinel)",
            "Primary DB",
            "Secondary DB 2",
        ],
        "architecture": [
            "(Browser)",
            "(Mobile)",
            "(Desktop)",
            "Load balancer",
            "Server 3",
            "Redis adapter",
            "Database",
        ],
    }[name]
    for text in wanted:
        assert text in dot, text


def test_an_answer_nginx_cut_into_two_records_is_one_row_whatever_the_timing() -> None:
    from tutorial.scenarios.clusterviews import by_hop

    kinds = {"alice": "client", "nginx": "balancer", "server-1": "server"}
    ask = tls("alice", "nginx", "application data", 90)
    forwarded = TraceEvent(0.0, "alice", "server-1", Layer.EIO, "send", raw=b"42[]")
    echo = TraceEvent(0.0, "server-1", "alice", Layer.EIO, "echo", raw=b"42[]")
    ack = TraceEvent(0.0, "server-1", "alice", Layer.EIO, "ack", raw=b"43[]")
    first, second = (tls("nginx", "alice", "application data", n) for n in (120, 60))
    early = [ask, forwarded, echo, first, ack, second]  # nginx answered the echo at once
    late = [ask, forwarded, echo, ack, first, second]  # ... or after the ack came
    rows = [[e.label for e in collapse_tls(by_hop(x, kinds), sizes=False)] for x in (early, late)]
    assert (
        rows[0]
        == rows[1]
        == [
            "TLS: application data (encrypted)",
            "send",
            "echo",
            "ack",
            "TLS: application data (encrypted)",
        ]
    )
