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

import importlib
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tutorial.scenarios.base import ScenarioResult

Runner = Callable[..., Awaitable["ScenarioResult"]]

#: Each scenario's name and the module whose ``run`` tells it, in chapter order.
MODULES: dict[str, str] = {
    "handshake": "handshake",
    "architecture": "architecture",
    "event-flow": "event_flow",
    "rooms": "rooms",
    "state-machine": "state_machine",
    "scaling": "scaling",
    "cluster": "cluster",
}


class Registry(Mapping[str, Runner]):
    """``SCENARIOS``: name -> ``run``. Listing the names imports nothing; looking one up
    imports its module, so ``tutorial --help`` or a mistyped option is answered without
    loading the server, the clients and their libraries."""

    def __getitem__(self, name: str) -> Runner:
        module = MODULES[name]  # KeyError for an unknown name, as a dict
        run: Runner = importlib.import_module(f"tutorial.scenarios.{module}").run
        return run

    def __contains__(self, name: object) -> bool:
        return name in MODULES  # Mapping's own would look the scenario up, importing it

    def __iter__(self) -> Iterator[str]:
        return iter(MODULES)

    def __len__(self) -> int:
        return len(MODULES)


SCENARIOS: Mapping[str, Runner] = Registry()


async def run_scenario(name: str, deterministic: bool = False, **params: Any) -> ScenarioResult:
    """Run the scenario called ``name`` (a key of ``SCENARIOS``) with ``params``."""
    try:
        runner = SCENARIOS[name]
    except KeyError:
        raise ValueError(f"no scenario {name!r}; choose from {sorted(SCENARIOS)}") from None
    return await runner(deterministic=deterministic, **params)


def __getattr__(name: str) -> Any:
    if name == "ScenarioResult":
        from tutorial.scenarios.base import ScenarioResult

        return ScenarioResult
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["SCENARIOS", "ScenarioResult", "run_scenario"]
