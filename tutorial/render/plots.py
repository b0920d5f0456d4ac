"""Matplotlib charts for the chapters (the diagrams themselves are graphviz)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Protocol

from matplotlib.figure import Figure

from tutorial.render.palette import HTTP_ORANGE as ORANGE
from tutorial.render.palette import WS_BLUE as BLUE


class BackoffShape(Protocol):
    """What the chart reads of a backoff (the client's ``Backoff`` has these)."""

    base: float
    factor: float
    cap: float
    jitter: float


class Chart(Figure):
    """A matplotlib figure that shows itself as inline SVG in a notebook (no pyplot)."""

    def _repr_svg_(self) -> str:
        buffer = io.StringIO()
        self.savefig(buffer, format="svg")
        return buffer.getvalue()


def backoff_chart(backoff: BackoffShape, observed: Sequence[float] = (), retries: int = 8) -> Chart:
    """The backoff envelope (no jitter) against the delays a real client waited."""
    fig = Chart(figsize=(6, 3.2), dpi=100)
    ax = fig.add_subplot()
    attempts = list(range(1, retries + 1))
    envelope = [min(backoff.cap, backoff.base * backoff.factor**i) for i in range(retries)]
    floor = [e * (1 - backoff.jitter) for e in envelope]
    ax.fill_between(attempts, floor, envelope, color=BLUE, alpha=0.15, label="jitter range")
    ax.plot(attempts, envelope, color=BLUE, marker="o", label="base × factor^attempt, capped")
    if observed:
        ax.plot(
            range(1, len(observed) + 1),
            observed,
            color=ORANGE,
            marker="s",
            linestyle="--",
            label="delays the client waited",
        )
    ax.set_xlabel("retry attempt")
    ax.set_ylabel("delay before the attempt (s)")
    ax.set_title("Exponential backoff with jitter")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
