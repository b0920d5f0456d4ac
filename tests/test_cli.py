"""The ``tutorial`` command: every subcommand registered in one list, none by import."""

from __future__ import annotations

from tutorial import cli, compat


def test_every_subcommand_is_in_the_one_list() -> None:
    names = [name for name, _, _ in compat.argparse_subcommands(cli.build_parser())]
    assert names == [c.name for c in cli.COMMANDS]
    assert names == ["serve", "user-add", "docs", "bench", "cluster", "diagrams", "trace"]


def test_each_subcommand_parses_its_own_arguments() -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["trace", "handshake", "--out", "x", "--deterministic"])
    assert args.run is cli.scenarios_cli.run_trace and args.deterministic
    args = parser.parse_args(["cluster", "up", "--servers", "2"])
    assert args.run is cli.cluster_cli.run_cluster and args.servers == 2
    args = parser.parse_args(["serve", "--demo", "--live-trace", "--port", "0"])
    assert args.live_trace and args.demo and args.port == 0
