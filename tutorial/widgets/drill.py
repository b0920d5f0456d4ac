"""A failover drill behind a button: a click breaks a part of a running cluster for
real, and the drill's sequence diagram is drawn from what crossed the wire.

Chapter 6 keeps its two failover stories (``kill -9`` the Redis master; stop the
PostgreSQL primary) out of *Run All*: each takes a few seconds of waiting (Sentinels
agreeing, a promotion), and they change the cluster. A learner presses the button when
the story is read:

    ClusterDrill(cluster, "redis-failover")

The click runs [run_drill][tutorial.scenarios.cluster.run_drill] in the background on
the kernel's loop; its picture replaces the box's content when it is done (a trait
change, see [tutorial.widgets.base][]). A cluster whose teardown ran is started for the
drill and stopped after it. A drill the cluster cannot run (no standby left to promote,
a server killed above) is not attempted: the widget says why, in red, and what to do.
"""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from tutorial.widgets.base import Picture, Tasks, WithFallback, error_details, error_line
from tutorial.widgets.figure import diagram_html

#: The repository's committed diagrams (present in a checkout, not in a wheel).
RECORDED = Path(__file__).resolve().parents[2] / "diagrams"

#: The button's label and what the status line promises before the first click.
DRILLS = {
    "redis-failover": (
        "kill -9 the Redis master",
        "Sentinels notice in about a second and promote a replica",
    ),
    "database-failover": (
        "stop the database primary",
        "a standby is promoted with pg_ctl promote",
    ),
}


class ClusterDrill(WithFallback):
    """One failover drill of a [Cluster][tutorial.cluster.cluster.Cluster] (started
    with ``taps=True``): a button, a status line, the drill's sequence diagram."""

    def __init__(self, cluster: Any, drill: str) -> None:
        if drill not in DRILLS:
            raise ValueError(f"no drill named {drill!r} (there are {', '.join(DRILLS)})")
        self.cluster = cluster
        self.drill = drill
        label, what = DRILLS[drill]
        self.button = widgets.Button(description=label, icon="bolt", button_style="danger")
        self.button.layout.width = "auto"
        self.status = widgets.HTML(
            f"Press <b>{html.escape(label)}</b> to run this drill on the cluster above ({what});"
            " the sequence diagram of what crossed the wire appears here."
        )
        self.picture = Picture()
        # An empty box with a run number (0) until the first click draws into it.
        self.picture.banner("empty", "the drill's sequence diagram appears here")
        self.trace: Any = None
        self.tasks = Tasks(self._failed)
        self.button.on_click(lambda _: self._schedule())
        super().__init__([self.button, self.status, self.picture])
        self.add_class("tutorial-drill")
        self.add_class(f"tutorial-drill-{drill}")

    def _schedule(self) -> None:
        if not self.tasks.busy:
            self.tasks.spawn(self.run())

    async def run(self) -> Any:
        """Run the drill (what a click does) and draw it; returns its trace."""
        from tutorial.scenarios.cluster import (
            DrillUnavailable,
            draw_drill,
            drill_blocker,
            run_drill,
        )

        label = html.escape(DRILLS[self.drill][0])
        why = drill_blocker(self.cluster, self.drill)
        if why is not None:
            self._cannot(why)
            return None
        stopped = self.cluster.nginx is None
        self.button.disabled = True
        note = (
            " The cluster's teardown ran: it starts again for the drill (about 10 s) and"
            " stops after it."
            if stopped
            else ""
        )
        self.status.value = f"running <b>{label}</b> …{note}"
        self.picture.banner("running", f"running {label} … (the picture is the last run)")
        started = time.monotonic()
        try:
            self.trace = await run_drill(self.cluster, self.drill)
            diagram = draw_drill(self.drill, self.trace)
        except DrillUnavailable as exc:  # found out once the cluster was up
            self._cannot(str(exc))
            return None
        finally:
            self.button.disabled = False
        seconds = time.monotonic() - started
        self.status.value = (
            f"✓ ran <b>{label}</b> in {seconds:.1f} s"
            f"{' (on a cluster started for it, and stopped)' if stopped else ''}."
            " Press again to run it again."
        )
        self.picture.show(diagram, caption=f"drill: {label}")
        return self.trace

    def _cannot(self, why: str) -> None:
        message = f"✗ cannot run this drill now: {html.escape(why)}"
        self.status.value = f"<span style='color:#842029'>{message}</span>"
        self.picture.banner("error", message)

    def _failed(self, exc: BaseException) -> None:
        message = f"✗ the drill failed: {error_line(exc)}"
        self.status.value = f"<span style='color:#842029'>{message}</span>{error_details(exc)}"
        self.picture.banner("error", message + " (the picture is from the previous run)")

    def html_fallback(self) -> str:
        if self.picture.svg is not None:
            return self.picture.html_fallback()
        label = html.escape(DRILLS[self.drill][0])
        text = (
            f"<p><i>In JupyterLab a button here, <b>{label}</b>, runs this drill on the"
            " chapter's cluster and draws it.</i></p>"
        )
        # A page without a kernel (the site) cannot run it: the committed picture of a
        # recorded run, named as such, if this is a checkout that has it.
        recorded = RECORDED / f"cluster-{self.drill}.svg"
        if not recorded.is_file():
            return text
        return text + diagram_html(
            recorded.read_text(), caption=f"a recorded run: diagrams/{recorded.name}"
        )
