"""``tutorial trace`` and ``tutorial diagrams``: run scenarios, write traces and pictures.

* ``tutorial trace SCENARIO --out DIR [--layers chat|packets|frames] [--deterministic]``
  writes ``DIR/SCENARIO.json`` (the trace), ``.dot`` and ``.svg`` (its diagram).
* ``tutorial diagrams [--out diagrams]`` regenerates the committed pictures: every
  scenario in deterministic mode, one JSON + DOT + SVG each, plus the extra views a
  scenario offers (``handshake-frames``, ``rooms-structure``, ...).

`tutorial.cli` registers both; this module registers nothing by being imported.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import graphviz

from tutorial.cli_errors import writable_directory
from tutorial.render.sequence import PRESETS
from tutorial.scenarios import SCENARIOS, run_scenario

if TYPE_CHECKING:
    from tutorial.scenarios.base import ScenarioResult


def write_diagram(graph: graphviz.Digraph, stem: Path) -> list[Path]:
    """``stem.dot`` and ``stem.svg``; the SVG is rendered by dot from that DOT text."""
    dot, svg = stem.with_suffix(".dot"), stem.with_suffix(".svg")
    dot.write_text(graph.source, encoding="utf-8")
    svg.write_bytes(graph.pipe(format="svg"))
    return [dot, svg]


def write_result(
    result: ScenarioResult, out: Path, layers: str | None = None, extras: bool = False
) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    stem = out / result.name
    trace_path = stem.with_suffix(".json")
    trace_path.write_text(result.trace.to_json(), encoding="utf-8")
    paths = [trace_path, *write_diagram(result.diagram(layers), stem)]
    if extras:
        for name, graph in result.extra_diagrams().items():
            paths += write_diagram(graph, out / f"{result.name}-{name}")
    return paths


def regenerate(out: Path) -> list[Path]:
    """Every scenario, deterministic, default parameters: what ``diagrams/`` holds."""
    paths: list[Path] = []
    for name in SCENARIOS:
        result = asyncio.run(run_scenario(name, deterministic=True))
        paths += write_result(result, out, extras=True)
    return paths


def trace_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenario", choices=sorted(SCENARIOS), help="which chapter's story")
    p.add_argument("--out", required=True, help="directory for SCENARIO.json, .dot and .svg")
    p.add_argument(
        "--layers",
        choices=sorted(PRESETS),
        default=None,
        help="draw the whole trace in this view (default: the scenario's own)",
    )
    p.add_argument(
        "--deterministic",
        action="store_true",
        help="sample WebSocket key, normalised sids, ids, times, masks",
    )


def run_trace(args: argparse.Namespace) -> int:
    writable_directory(Path(args.out))  # before the run, not after it
    result = asyncio.run(run_scenario(args.scenario, deterministic=args.deterministic))
    for path in write_result(result, Path(args.out), args.layers):
        print(f"wrote {path}")
    print(f"{args.scenario}: {len(result.trace)} events in {result.seconds:.2f} s")
    return 0


def diagrams_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="diagrams", help="directory (default diagrams)")


def run_diagrams(args: argparse.Namespace) -> int:
    writable_directory(Path(args.out))
    for path in regenerate(Path(args.out)):
        print(f"wrote {path}")
    return 0
