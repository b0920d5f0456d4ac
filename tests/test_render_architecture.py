"""The architecture picture: tiers top to bottom, live counts on the edges."""

from __future__ import annotations

import re
import subprocess

import pytest
from hashseeds import assert_same_across_hash_seeds

from tutorial.render import ClientNode, ServerNode, Topology, architecture_diagram, palette

EDGE = re.compile(r"^\s*(\S+) -> (\S+) \[(.*)\]$")


def scaled() -> Topology:
    """Seed diagrams 2 and 6: three clients, nginx, three servers, Redis, a database."""
    return Topology(
        clients=[
            ClientNode("c1", "Client 1", "browser"),
            ClientNode("c2", "Client 2", "mobile"),
            ClientNode("c3", "Client 3", "desktop"),
        ],
        balancer="nginx (sticky sessions)",
        servers=[ServerNode(f"s{i}", f"Server {i}", 3000 + i) for i in (1, 2, 3)],
        redis="redis-server (cross-server messaging)",
        database="PostgreSQL (users & message history)",
        edges={
            ("s1", "redis"): "12 messages",
            ("balancer", "s2"): 7,
            ("s2", "database"): "30 rows",
        },
    )


def edges(source: str) -> dict[tuple[str, str], str]:
    found = {}
    for line in source.splitlines():
        m = EDGE.match(line)
        if m and "invis" not in m.group(3):
            found[(m.group(1), m.group(2))] = m.group(3)
    return found


def test_every_tier_is_drawn_with_its_labels():
    source = architecture_diagram(scaled()).source
    for text in [
        "Client 1",
        "(Browser)",
        "(Mobile)",
        "(Desktop)",
        "Load balancer",
        "nginx (sticky sessions)",
        "Server 2",
        "port 3003",
        "Redis adapter",
        "users &amp; message history",
    ]:
        assert text in source


def test_tiers_are_ranked_top_to_bottom_in_the_seeds_order():
    source = architecture_diagram(scaled()).source
    ranks = re.findall(r"\{\s*rank=same\s+(\S+)", source)
    assert ranks == ["c1", "balancer", "s1", "redis", "database"]


def test_counts_label_their_edges_and_structure_is_drawn_anyway():
    found = edges(architecture_diagram(scaled()).source)
    assert 'label="12 messages"' in found[("s1", "redis")]
    assert "label=7" in found[("balancer", "s2")] or 'label="7"' in found[("balancer", "s2")]
    assert 'label="30 rows"' in found[("s2", "database")]
    assert "label" not in found[("c3", "balancer")]
    assert {("c1", "balancer"), ("balancer", "s1"), ("s3", "redis"), ("s3", "database")} <= set(
        found
    )


def test_client_links_are_websocket_blue_and_server_links_data_purple():
    found = edges(architecture_diagram(scaled()).source)
    assert palette.WS_BLUE in found[("c1", "balancer")]
    assert palette.WS_BLUE in found[("balancer", "s2")]
    assert palette.DATA_PURPLE in found[("s1", "redis")]


def test_absent_tiers_are_left_out_and_their_neighbours_joined():
    small = Topology(
        clients=[ClientNode("c1", "Client", "browser")],
        servers=[ServerNode("s1", "Server", 8080)],
        database="SQLite",
        edges={("c1", "s1"): "5 events"},
    )
    source = architecture_diagram(small).source
    assert "balancer" not in source and "redis" not in source.lower()
    found = edges(source)
    assert set(found) == {("c1", "s1"), ("s1", "database")}
    assert 'label="5 events"' in found[("c1", "s1")]


def test_an_edge_to_an_unknown_node_is_refused():
    with pytest.raises(ValueError, match="no node 'redis'"):
        architecture_diagram(Topology(servers=[ServerNode("s1", "S")], edges={("s1", "redis"): 1}))


def test_client_kind_must_be_known():
    with pytest.raises(ValueError, match="client kind"):
        ClientNode("c", "C", "fridge")


def dot_and_svg() -> str:
    graph = architecture_diagram(scaled())
    return graph.source + graph.pipe(format="svg").decode()


def test_same_topology_gives_identical_dot_and_svg_under_any_hash_seed():
    assert "<svg" in assert_same_across_hash_seeds("test_render_architecture", "dot_and_svg")


def test_dot_renders_it_without_warnings():
    source = architecture_diagram(scaled()).source
    done = subprocess.run(["dot", "-Tsvg"], input=source.encode(), capture_output=True, check=True)
    assert done.stderr == b""
