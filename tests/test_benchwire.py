"""The bench's process interface (``tutorial/cluster/benchwire.py``): every message makes
the round trip through one line, and a line that is not one is ignored."""

from __future__ import annotations

import pytest

from tutorial.cluster import benchwire
from tutorial.cluster.benchwire import ClientSpec, WorkerConfig


@pytest.mark.parametrize(
    "message",
    [
        benchwire.Ready(),
        benchwire.Go(),
        benchwire.Progress(41),
        benchwire.Result(100, 12.5, 1, [1.25, 3.5]),
    ],
)
def test_each_message_is_one_line_and_comes_back_equal(message: benchwire.Message) -> None:
    line = benchwire.encode(message)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert benchwire.decode(line) == message


@pytest.mark.parametrize(
    "line",
    [b"READY\n", b"P 12\n", b'{"kind":"nope"}\n', b'{"kind":"progress"}\n', b"[1, 2]\n", b""],
)
def test_a_line_that_is_not_a_message_is_none(line: bytes) -> None:
    assert benchwire.decode(line) is None


def test_a_worker_config_survives_its_json_file() -> None:
    config = WorkerConfig(
        kind="teaching",
        url="http://127.0.0.1:1",
        clients=[
            ClientSpec("bench000", "t", "127.0.0.2", True),
            ClientSpec("b", None, None, False),
        ],
        messages=5,
        expected_per_client=10,
        timeout=60.0,
    )
    assert WorkerConfig.from_json(config.to_json()) == config
