"""ipywidgets views for the chapter notebooks.

Each view drives real components from the package and redraws a diagram by setting a
widget's value, so a redraw from background work (a scenario run after a click) reaches
JupyterLab 4 and Notebook 7 alike. A view is displayed once; it carries a static copy
of its picture (``text/html``) for pages without widgets, such as the website.

Diagrams sit in a readable box ([tutorial.widgets.figure][]): natural size in a
scroll container, with *100 %* and *fit*. ``%load_ext tutorial.widgets`` shows every
graphviz diagram that way.

* [ScenarioExplorer][tutorial.widgets.explorer.ScenarioExplorer]: change a scenario's
  parameters, run it again, switch layers;
* [ChatPanels][tutorial.widgets.chat.ChatPanels]: a chat window per live client (type,
  Enter or Send);
* [StateMachineView][tutorial.widgets.states.StateMachineView]: one client's state
  machine, live, with stop/start/reset;
* [RoomsExplorer][tutorial.widgets.rooms.RoomsExplorer]: join and leave rooms for real,
  see the membership;
* [ClusterDrill][tutorial.widgets.drill.ClusterDrill]: a failover drill on a running
  cluster behind a button, drawn from the wire.
"""

from __future__ import annotations

from tutorial.widgets.base import Picture
from tutorial.widgets.chat import ChatPanel, ChatPanels, chat_panels, transcript
from tutorial.widgets.drill import ClusterDrill
from tutorial.widgets.explorer import LAYER_CHOICES, ScenarioExplorer
from tutorial.widgets.figure import (
    Figure,
    diagram_html,
    load_ipython_extension,
    show,
    unload_ipython_extension,
)
from tutorial.widgets.rooms import RoomsExplorer
from tutorial.widgets.states import StateMachineView

__all__ = [
    "LAYER_CHOICES",
    "ChatPanel",
    "ChatPanels",
    "ClusterDrill",
    "Figure",
    "Picture",
    "RoomsExplorer",
    "ScenarioExplorer",
    "StateMachineView",
    "chat_panels",
    "diagram_html",
    "load_ipython_extension",
    "show",
    "transcript",
    "unload_ipython_extension",
]
