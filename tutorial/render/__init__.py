"""Graphviz pictures of the chat system, drawn from live data with one palette.

Each function returns a ``graphviz.Digraph`` (it displays inline in Jupyter) whose
DOT source is deterministic: equal input gives byte-identical DOT and SVG.
"""

from __future__ import annotations

from tutorial.render import palette
from tutorial.render.architecture import (
    BackendNode,
    ClientNode,
    ServerNode,
    Topology,
    architecture_diagram,
)
from tutorial.render.rooms import RoomsSnapshot, rooms_diagram
from tutorial.render.sequence import PRESETS, LayerView, sequence_diagram
from tutorial.render.states import state_diagram

__all__ = [
    "PRESETS",
    "BackendNode",
    "ClientNode",
    "LayerView",
    "RoomsSnapshot",
    "ServerNode",
    "Topology",
    "architecture_diagram",
    "palette",
    "rooms_diagram",
    "sequence_diagram",
    "state_diagram",
]
