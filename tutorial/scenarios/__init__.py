"""One runnable scenario per chapter: the story of a seed diagram, told by real parts.

Each scenario starts a real server (port 0, a temporary SQLite file), the wiretap and
teaching clients, tells its story, stops everything and returns a
[ScenarioResult][tutorial.scenarios.base.ScenarioResult] (trace, figures, diagrams):

    result = await run_scenario("event-flow", deterministic=True, text="Hi!")
    result.diagram()            # a graphviz.Digraph: displays inline in Jupyter

| name | module | seed diagram |
|---|---|---|
| ``handshake`` | [handshake][tutorial.scenarios.handshake] | 1 |
| ``architecture`` | [architecture][tutorial.scenarios.architecture] | 2 |
| ``event-flow`` | [event_flow][tutorial.scenarios.event_flow] | 3 |
| ``rooms`` | [rooms][tutorial.scenarios.rooms] | 4 |
| ``state-machine`` | [state_machine][tutorial.scenarios.state_machine] | 5 |
| ``scaling`` | [scaling][tutorial.scenarios.scaling] | 6 |
| ``cluster`` | [cluster][tutorial.scenarios.cluster] | 6 (whole) |
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from tutorial.scenarios import (
    architecture,
    cluster,
    event_flow,
    handshake,
    rooms,
    scaling,
    state_machine,
)
from tutorial.scenarios.base import ScenarioResult

Runner = Callable[..., Awaitable[ScenarioResult]]

SCENARIOS: dict[str, Runner] = {
    "handshake": handshake.run,
    "architecture": architecture.run,
    "event-flow": event_flow.run,
    "rooms": rooms.run,
    "state-machine": state_machine.run,
    "scaling": scaling.run,
    "cluster": cluster.run,
}


async def run_scenario(name: str, deterministic: bool = False, **params: Any) -> ScenarioResult:
    """Run the scenario called ``name`` (a key of ``SCENARIOS``) with ``params``."""
    try:
        runner = SCENARIOS[name]
    except KeyError:
        raise ValueError(f"no scenario {name!r}; choose from {sorted(SCENARIOS)}") from None
    return await runner(deterministic=deterministic, **params)


__all__ = ["SCENARIOS", "ScenarioResult", "run_scenario"]
