"""Sequence diagrams from a [Trace][tutorial.trace.model.Trace] (seed diagrams 1 and 3).

Graphviz has no sequence diagrams, so we build one from a grid (PITFALLS.md,
"graphviz sequence diagrams"):

* one column per lifeline: a header box, then a chain of tiny point nodes, one per
  row, joined by dashed edges of high ``weight`` so the column stays straight;
* header boxes chained by invisible edges, so the columns keep the trace's order;
* one ``rank=same`` row per event, ``newrank=true``, ``splines=false``;
* every message edge is written left to right, with ``dir=back`` when the arrow
  points left; a message that skips columns is routed through the skipped
  lifelines' point nodes of its row, so the line stays straight, and its label sits
  on the segment next to the sender;
* a self-step (source == target) is a small note box beside its lifeline.

Which events are shown is a choice of layers: a preset name from ``PRESETS``
(``"frames"``, ``"packets"``, ``"chat"``) or any set of [Layer][tutorial.protocol.layers.Layer].
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import graphviz

from tutorial.protocol.layers import Layer
from tutorial.render import palette
from tutorial.render.palette import Style
from tutorial.trace.model import Lifeline, Trace, TraceEvent


@dataclass(frozen=True)
class LayerView:
    """A named choice of layers, with a sentence saying what it shows."""

    name: str
    layers: frozenset[Layer]
    description: str


FRAMES = LayerView(
    "frames",
    frozenset({Layer.TCP, Layer.HTTP, Layer.WS}),
    "The bytes: TCP connections, the HTTP upgrade request and response, and every "
    "WebSocket frame (text, ping, pong, close).",
)
PACKETS = LayerView(
    "packets",
    frozenset({Layer.HTTP, Layer.EIO, Layer.SIO}),
    "What the frames carry: the HTTP handshake, then Engine.IO packets (open, ping, "
    "pong, upgrade) and Socket.IO packets (CONNECT, EVENT, ACK, DISCONNECT).",
)
CHAT = LayerView(
    "chat",
    frozenset({Layer.SIO, Layer.APP}),
    "The conversation, as seed diagram 3 tells it: Socket.IO packets read as chat "
    "events (purple when they carry an event name) and the server's own steps (notes).",
)
PRESETS: dict[str, LayerView] = {v.name: v for v in (FRAMES, PACKETS, CHAT)}

SEED_HEADERS: tuple[str, ...] = (
    "Host",
    "Upgrade",
    "Connection",
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Accept",
)
"""HTTP headers shown under an HTTP event's label, as in seed diagram 1."""

KIND_CAPTIONS: dict[str, str] = {
    "client": "teaching client",
    "server": "Socket.IO server",
    "proxy": "wiretap proxy",
    "store": "message store",
    "redis": "Redis",
    "balancer": "load balancer",
    "room": "room state",
}
KIND_SHAPES: dict[str, dict[str, str]] = {
    "client": {"shape": "box", "style": "rounded,filled"},
    "server": {"shape": "box3d", "style": "filled"},
    "proxy": {"shape": "component", "style": "filled"},
    "store": {"shape": "cylinder", "style": "filled"},
    "redis": {"shape": "cylinder", "style": "filled"},
    "balancer": {"shape": "hexagon", "style": "filled"},
    "room": {"shape": "tab", "style": "filled"},
}

SEPARATOR_TEXT = "===== WebSocket Connection ====="
PING_WORDS = frozenset({"ping", "pong"})

#: A trace with more rows than this is folded (see [fold_long][tutorial.render.sequence.fold_long]).
LONG_ROWS = 40


# -- rows: what the diagram shows, before any graphviz ---------------------------------


@dataclass
class Row:
    """One horizontal row of the diagram."""

    kind: str  # "message" | "note" | "pingpong" | "separator"
    source: str = ""
    targets: tuple[str, ...] = ()
    label: str = ""
    details: tuple[str, ...] = ()
    style: Style = palette.WEBSOCKET
    step: int | None = None
    count: int = 0
    events: list[TraceEvent] = field(default_factory=list)
    seed_step: int | None = None  # a story row's seed step, in a view that renumbers


def resolve_layers(layers: str | LayerView | Iterable[Layer | str] | None) -> frozenset[Layer]:
    """``None`` (every layer), a preset name, a [LayerView][tutorial.render.sequence.LayerView] or
    a set of layers."""
    if layers is None:
        return frozenset(Layer)
    if isinstance(layers, LayerView):
        return layers.layers
    if isinstance(layers, str):
        try:
            return PRESETS[layers].layers
        except KeyError:
            raise ValueError(f"unknown preset {layers!r}; choose from {sorted(PRESETS)}") from None
    return frozenset(Layer(layer) for layer in layers)


def is_ping(event: TraceEvent) -> bool:
    """An Engine.IO ping/pong packet or a WebSocket ping/pong control frame."""
    if event.layer not in (Layer.EIO, Layer.WS) or event.is_self:
        return False
    kind = str(event.fields.get("type", "")).lower()
    if kind in PING_WORDS:
        return True
    if event.layer is Layer.EIO and event.raw in (b"2", b"3"):
        return True
    words = event.label.lower().replace("/", " ").split()
    return bool(words) and words[0] in PING_WORDS


def _has_event(event: TraceEvent) -> bool:
    return bool(event.fields.get("event"))


def style_of(event: TraceEvent) -> Style:
    return palette.event_style(
        event.layer,
        kind=event.kind,
        phase=event.phase,
        status=event.status,
        has_event=_has_event(event),
    )


def _phase_of(event: TraceEvent) -> str | None:
    if event.phase is not None:
        return event.phase
    if event.layer in (Layer.TCP, Layer.HTTP):
        return "http"
    if event.layer in (Layer.WS, Layer.EIO, Layer.SIO):
        return "ws"
    return None


def _header_lines(event: TraceEvent, wanted: Sequence[str]) -> tuple[str, ...]:
    """Selected headers of an HTTP event, from ``fields["headers"]`` or the raw text."""
    if event.layer is not Layer.HTTP or not wanted:
        return ()
    pairs: list[tuple[str, str]] = []
    headers = event.fields.get("headers")
    if isinstance(headers, Mapping):
        pairs = [(str(k), str(v)) for k, v in headers.items()]
    elif isinstance(headers, list | tuple):
        pairs = [(str(p[0]), str(p[1])) for p in headers if isinstance(p, list | tuple)]
    elif event.raw is not None:
        try:
            head = event.raw.decode("utf-8").split("\r\n\r\n", 1)[0]
        except UnicodeDecodeError:
            head = ""
        for line in head.split("\r\n")[1:]:
            name, sep, value = line.partition(":")
            if sep:
                pairs.append((name.strip(), value.strip()))
    order = {name.lower(): i for i, name in enumerate(wanted)}
    chosen = sorted(
        ((order[n.lower()], f"{n}: {v}") for n, v in pairs if n.lower() in order),
        key=lambda item: item[0],
    )
    return tuple(line for _, line in chosen)


def build_rows(
    events: Sequence[TraceEvent],
    *,
    fold_pings: bool = True,
    http_headers: Sequence[str] = SEED_HEADERS,
    clients: Iterable[str] = (),
    fold_long: bool = True,
) -> list[Row]:
    """Turn events into rows: fold pings, merge fan-outs, add separators, number steps.

    A long trace (more than ``LONG_ROWS`` rows) is
    folded so that it stays legible: Engine.IO carriers go
    ([fold_carriers][tutorial.render.sequence.fold_carriers]), and a client's run that
    repeats another client's is drawn once
    ([fold_repeats][tutorial.render.sequence.fold_repeats], needs ``clients``).
    ``fold_long=False`` keeps every row (a view that bounds its events itself).
    """
    rows = _rows(events, fold_pings=fold_pings, http_headers=http_headers)
    if fold_long and len(rows) > LONG_ROWS:
        rows = _rows(fold_carriers(events), fold_pings=fold_pings, http_headers=http_headers)
        rows = fold_repeats(rows, frozenset(clients))
    return _number(rows)


def _rows(
    events: Sequence[TraceEvent],
    *,
    fold_pings: bool,
    http_headers: Sequence[str],
) -> list[Row]:
    rows: list[Row] = []
    i = 0
    while i < len(events):
        event = events[i]
        if fold_pings and is_ping(event):
            j = i
            while j < len(events) and is_ping(events[j]):
                j += 1
            rows.extend(_fold(events[i:j]))
            i = j
            continue
        if event.is_self:
            rows.append(
                Row(
                    "note",
                    event.source,
                    (event.source,),
                    event.label,
                    style=style_of(event),
                    step=event.step,
                    events=[event],
                )
            )
            i += 1
            continue
        # A fan-out: the same message, same step, from one source to several targets.
        j = i + 1
        while (
            event.step is not None
            and j < len(events)
            and not events[j].is_self
            and (events[j].source, events[j].step, events[j].label, events[j].layer)
            == (event.source, event.step, event.label, event.layer)
            and events[j].target not in [e.target for e in events[i:j]]
        ):
            j += 1
        group = list(events[i:j])
        rows.append(
            Row(
                "message",
                event.source,
                tuple(e.target for e in group),
                event.label,
                details=_header_lines(event, http_headers),
                style=style_of(event),
                step=event.step,
                events=group,
            )
        )
        i = j
    return _separate(rows)


def _fold(run: Sequence[TraceEvent]) -> list[Row]:
    """A run of ping/pong events: one row per pair of lifelines when it repeats."""
    pairs: dict[tuple[str, str], list[TraceEvent]] = {}
    for event in run:
        key = tuple(sorted((event.source, event.target)))
        pairs.setdefault((key[0], key[1]), []).append(event)
    rows = []
    for (a, b), group in pairs.items():
        pings = sum(1 for e in group if not _is_pong(e))
        count = max(pings, len(group) - pings)
        if count < 2:
            for e in group:
                rows.append(
                    Row(
                        "message",
                        e.source,
                        (e.target,),
                        e.label,
                        style=style_of(e),
                        step=e.step,
                        events=[e],
                    )
                )
            continue
        rows.append(
            Row(
                "pingpong",
                a,
                (b,),
                f"ping/pong ×{count}",
                style=style_of(group[0]),
                step=group[0].step,
                count=count,
                events=list(group),
            )
        )
    return rows


def _is_pong(event: TraceEvent) -> bool:
    kind = str(event.fields.get("type", "")).lower()
    return kind == "pong" or event.label.lower().startswith("pong") or event.raw == b"3"


def _separate(rows: list[Row]) -> list[Row]:
    """Insert the "WebSocket Connection" row wherever the HTTP phase gives way to WS."""
    out: list[Row] = []
    phase: str | None = None
    for row in rows:
        row_phase = _phase_of(row.events[0]) if row.events else None
        if phase == "http" and row_phase == "ws":
            out.append(Row("separator", label=SEPARATOR_TEXT, style=palette.WEBSOCKET))
        if row_phase is not None:
            phase = row_phase
        out.append(row)
    return out


def _number(rows: list[Row]) -> list[Row]:
    """Give every row a number, unique in the diagram.

    A story view (every row carries a seed step) keeps the seed's numbers. A view that
    mixes story rows with others numbers all rows 1, 2, 3, ... and tags the story rows
    with their seed step, so no number appears twice.
    """
    numbered = [row for row in rows if row.kind != "separator"]
    if numbered and all(row.step is not None for row in numbered):
        return rows
    for n, row in enumerate(numbered, 1):
        if row.step is not None and row.kind != "pingpong":
            row.seed_step = row.step
        row.step = n
    return rows


def _is_carrier(event: TraceEvent, following: TraceEvent | None) -> bool:
    """An Engine.IO MESSAGE packet immediately followed by the Socket.IO packet it
    carries (same direction): the second row says what the first one does."""
    return (
        following is not None
        and event.layer is Layer.EIO
        and event.fields.get("type") == "MESSAGE"
        and following.layer is Layer.SIO
        and (following.source, following.target) == (event.source, event.target)
    )


def fold_carriers(events: Sequence[TraceEvent]) -> list[TraceEvent]:
    """Drop the Engine.IO MESSAGE rows whose Socket.IO packet is the next row."""
    return [
        e
        for i, e in enumerate(events)
        if not _is_carrier(e, events[i + 1] if i + 1 < len(events) else None)
    ]


def _signature(rows: Sequence[Row], client: str) -> tuple[tuple[str, ...], ...]:
    def norm(text: str) -> str:
        # The name and numbers (sids, ids) differ; payloads may be cut at another place.
        head = re.split(r"[\[{]", text.replace(client, "{c}"), maxsplit=1)[0]
        return re.sub(r"\d+", "#", head)

    return tuple(
        (row.kind, norm(row.source), *(norm(t) for t in row.targets), norm(row.label))
        for row in rows
    )


def _only_client(row: Row, clients: frozenset[str]) -> str | None:
    """The one client lifeline a row involves, if it involves exactly one."""
    if row.kind == "separator":
        return None
    touched = {row.source, *row.targets} & clients
    return next(iter(touched)) if len(touched) == 1 else None


def fold_repeats(rows: list[Row], clients: frozenset[str]) -> list[Row]:
    """Replace a client's run of rows that repeats an earlier client's run (the same
    packets with another name: a second handshake, say) by one note row."""
    segments: list[tuple[str | None, list[Row]]] = []
    for row in rows:
        owner = _only_client(row, clients)
        if row.kind == "separator" and segments and segments[-1][0] is not None:
            segments[-1][1].append(row)  # a separator belongs to the run it splits
        elif segments and owner is not None and segments[-1][0] == owner:
            segments[-1][1].append(row)
        else:
            segments.append((owner, [row]))
    seen: dict[tuple[tuple[str, ...], ...], str] = {}
    out: list[Row] = []
    for owner, seg in segments:
        if owner is None or len(seg) < 3:
            out.extend(seg)
            continue
        sig = _signature(seg, owner)
        first = seen.setdefault(sig, owner)
        if first == owner:
            out.extend(seg)
            continue
        shown = [r for r in seg if r.kind != "separator"]
        out.append(
            Row(
                "note",
                owner,
                (owner,),
                f"{owner}: the same {len(shown)} packets as {first} (folded)",
                style=palette.PROCESSING,
                events=[e for r in seg for e in r.events],
            )
        )
    return out


# -- graphviz ------------------------------------------------------------------------


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(1, limit - 1)] + "…"


def _label(texts: Sequence[str], limit: int, *, left: bool = False) -> str:
    cut = [_truncate(t, limit) for t in texts]
    return palette.lines(*cut, left=left and len(cut) > 1)


def _number_text(row: Row) -> str:
    seed = f"[seed step {row.seed_step}] " if row.seed_step is not None else ""
    return f"{row.step}. {seed}"


def _p(rank: int, col: int) -> str:
    return f"p{rank}_{col}"


def diagram_rows(
    trace: Trace,
    layers: str | LayerView | Iterable[Layer | str] | None = None,
    fold_pings: bool = True,
    *,
    http_headers: Sequence[str] = SEED_HEADERS,
    fold_long: bool = True,
) -> tuple[list[Lifeline], list[Row]]:
    """The columns and rows [sequence_diagram][tutorial.render.sequence.sequence_diagram] draws
    for these arguments.

    Row ``k`` is drawn with SVG class ``seq_row seq_row_k`` on its arrow segments,
    label and note, so that a page can find, highlight and click each arrow; its
    ``events`` are the very [TraceEvent][tutorial.trace.model.TraceEvent] objects of ``trace`` it
    shows.
    """
    wanted = resolve_layers(layers)
    events = [e for e in trace.events if e.layer in wanted]
    used = {e.source for e in events} | {e.target for e in events}
    lifelines: list[Lifeline] = [lf for lf in trace.lifelines if lf.id in used or not events]
    unknown = used - {lf.id for lf in lifelines}
    if unknown:
        raise ValueError(f"events name lifelines the trace does not have: {sorted(unknown)}")
    clients = [lf.id for lf in lifelines if lf.kind == "client"]
    rows = build_rows(
        events,
        fold_pings=fold_pings,
        http_headers=http_headers,
        clients=clients,
        fold_long=fold_long,
    )
    return lifelines, rows


def _tag(k: int, part: str) -> dict[str, str]:
    """SVG id and classes of one part of row ``k``
    (see [diagram_rows][tutorial.render.sequence.diagram_rows])."""
    return {"id": f"row{k}_{part}", "class": f"seq_row seq_row_{k}"}


def sequence_diagram(
    trace: Trace,
    layers: str | LayerView | Iterable[Layer | str] | None = None,
    title: str | None = None,
    fold_pings: bool = True,
    max_label: int = 60,
    *,
    http_headers: Sequence[str] = SEED_HEADERS,
    show_legend: bool = True,
    captions: Mapping[str, str] | None = None,
    fold_long: bool = True,
) -> graphviz.Digraph:
    """Draw a trace as a sequence diagram; the DOT source is deterministic.

    ``layers``: ``None`` for every layer, a preset name (``PRESETS``), a
    [LayerView][tutorial.render.sequence.LayerView], or a set of layers. ``max_label`` cuts long
    labels with "…".
    ``http_headers`` names the headers shown under an HTTP event (seed diagram 1).
    Lifelines with no event in the chosen layers are left out. ``captions`` replaces
    the caption under a kind of lifeline's name (default: ``KIND_CAPTIONS``).
    ``fold_long``: fold a long trace (see
    [build_rows][tutorial.render.sequence.build_rows]); off for a view that shows a
    bounded window of events itself, such as the browser's live panel.
    """
    lifelines, rows = diagram_rows(
        trace, layers, fold_pings, http_headers=http_headers, fold_long=fold_long
    )
    column = {lf.id: i for i, lf in enumerate(lifelines)}
    n_cols = len(lifelines)

    g = graphviz.Digraph(name="sequence")
    g.attr(
        newrank="true",
        splines="false",
        rankdir="TB",
        nodesep="0.2",
        ranksep="0.07",
        fontname=palette.FONT,
        fontsize="12",
        fontcolor=palette.INK,
        outputorder="edgesfirst",
    )
    if title:
        g.attr(label=_label([title], 200), labelloc="t")
    g.attr(
        "node",
        fontname=palette.FONT,
        fontsize=palette.FONT_SIZE,
        color=palette.INK,
        fontcolor=palette.INK,
    )
    g.attr("edge", fontname=palette.FONT, fontsize=palette.FONT_SIZE, arrowsize="0.7")

    # Each row takes one rank, or two for a message: its label sits in a rank of its
    # own just above the arrow, as a node, so dot reserves room for it.
    ranks = 1
    for row in rows:
        ranks += 2 if row.kind in ("message", "pingpong") else 1
    last = ranks  # an empty rank closes the lifelines
    footer = len(rows) >= 15

    kind_captions = {**KIND_CAPTIONS, **(captions or {})}
    _headers(g, lifelines, "h", max_label, kind_captions)
    if footer:
        _headers(g, lifelines, "f", max_label, kind_captions)
    lifeline_edge = {
        "style": "dashed",
        "arrowhead": "none",
        "weight": "100",
        "color": palette.LIFELINE_GREY,
    }
    for c in range(n_cols):
        g.edge(f"h{c}", _p(1, c), **lifeline_edge)
        for r in range(1, last):
            g.edge(_p(r, c), _p(r + 1, c), **lifeline_edge)
        if footer:
            g.edge(_p(last, c), f"f{c}", **lifeline_edge)

    r = 1
    for k, row in enumerate(rows):
        if row.kind in ("message", "pingpong"):
            with _rank(g, r, n_cols) as s:
                _message_label(s, r, row, column, n_cols, max_label, k)
            r += 1
            with _rank(g, r, n_cols) as s:
                _message(s, r, row, column, k)
        else:
            with _rank(g, r, n_cols) as s:
                if row.kind == "note":
                    _note(s, r, row, column[row.source], n_cols, max_label, k)
                else:
                    _separator(s, r, row, n_cols)
        r += 1
    with _rank(g, last, n_cols):
        pass

    if show_legend:
        wanted = resolve_layers(layers)
        tls = Layer.TLS in wanted and any(e.layer is Layer.TLS for e in trace.events)
        entries = palette.LEGEND_ENTRIES + ((palette.CIPHER_ENTRY,) if tls else ())
        g.subgraph(palette.legend(entries=entries))
        g.edge("f0" if footer else _p(last, 0), palette.legend_anchor(), style="invis")
    return g


@contextmanager
def _rank(g: graphviz.Digraph, r: int, n_cols: int) -> Iterator[graphviz.Digraph]:
    """One row of the grid: a point node per lifeline, all in one rank."""
    with g.subgraph() as s:
        s.attr(rank="same")
        for c in range(n_cols):
            s.node(_p(r, c), label="", shape="point", width="0.01", color=palette.LIFELINE_GREY)
        yield s


def _headers(
    g: graphviz.Digraph,
    lifelines: Sequence[Lifeline],
    prefix: str,
    limit: int,
    captions: Mapping[str, str],
) -> None:
    with g.subgraph() as s:
        s.attr(rank="same")
        for c, lf in enumerate(lifelines):
            caption = captions.get(lf.kind, lf.kind)
            s.node(
                f"{prefix}{c}",
                label=_label([lf.label, f"({caption})"], limit),
                fillcolor=palette.HEADER_FILL,
                margin="0.12,0.05",
                **KIND_SHAPES.get(lf.kind, KIND_SHAPES["client"]),
            )
        for c in range(1, len(lifelines)):
            s.edge(f"{prefix}{c - 1}", f"{prefix}{c}", style="invis")


def _note(s: graphviz.Digraph, r: int, row: Row, c: int, n_cols: int, limit: int, k: int) -> None:
    style = row.style
    name = f"n{r}"
    s.node(
        name,
        label=_label([f"{_number_text(row)}{style.marker}{row.label}"], limit),
        shape="note",
        style="dashed,filled",
        fillcolor=palette.NOTE_FILL,
        color=style.color,
        fontcolor=palette.INK if style is palette.PROCESSING else style.color,
        fontsize=palette.SMALL_FONT_SIZE,
        margin="0.08,0.03",
        height="0.25",
        **_tag(k, "note"),
    )
    # A short dashed tie (heavy, so the note hugs its lifeline) to the note box.
    s.edge(
        _p(r, c),
        name,
        style="dashed",
        color=style.color,
        arrowhead="none",
        weight="50",
        **_tag(k, "tie"),
    )
    if c + 1 < n_cols:
        s.edge(name, _p(r, c + 1), style="invis", weight="0")


def _separator(s: graphviz.Digraph, r: int, row: Row, n_cols: int) -> None:
    """A bold blue line across all lifelines, broken by its text in the middle."""
    name = f"n{r}"
    s.node(
        name,
        label=_label([row.label], 80),
        shape="plaintext",
        fontcolor=palette.WS_BLUE,
        height="0.25",
        margin="0.04,0.02",
    )
    line = {"color": palette.WS_BLUE, "penwidth": "3", "arrowhead": "none"}
    if n_cols < 2:
        s.edge(_p(r, 0), name, style="invis")
        return
    middle = (n_cols - 2) // 2
    for c in range(n_cols - 1):
        if c == middle:
            s.edge(_p(r, c), name, **line)
            s.edge(name, _p(r, c + 1), **line)
        else:
            s.edge(_p(r, c), _p(r, c + 1), **line)


def _segment(row: Row, column: Mapping[str, int]) -> int:
    """The column left of the gap where the label goes: next to the sender."""
    src = column[row.source]
    if any(column[t] > src for t in row.targets):
        return src
    return src - 1


def _message_label(
    s: graphviz.Digraph,
    r: int,
    row: Row,
    column: Mapping[str, int],
    n_cols: int,
    limit: int,
    k: int,
) -> None:
    text = f"{_number_text(row)}{row.style.marker}{row.label}"
    name = f"l{r}"
    s.node(
        name,
        label=_label([text, *row.details], limit, left=bool(row.details)),
        shape="plaintext",
        fontcolor=row.style.color,
        height="0.15",
        margin="0.02,0.0",
        **_tag(k, "label"),
    )
    c = _segment(row, column)
    s.edge(_p(r, c), name, style="invis")
    s.edge(name, _p(r, c + 1), style="invis")


def _message(s: graphviz.Digraph, r: int, row: Row, column: Mapping[str, int], k: int) -> None:
    src = column[row.source]
    targets = {column[t] for t in row.targets}
    base = row.style.edge_attrs()
    right = [t for t in targets if t > src]
    left = [t for t in targets if t < src]
    if right:
        for c in range(src, max(right)):
            attrs = dict(base)
            if row.kind == "pingpong":
                attrs |= {"dir": "both", "arrowtail": "normal", "arrowhead": "normal"}
            elif c + 1 not in targets:
                attrs["arrowhead"] = "none"
            s.edge(_p(r, c), _p(r, c + 1), **attrs, **_tag(k, f"r{c}"))
    if left:
        for c in range(min(left), src):
            attrs = dict(base)
            if row.kind == "pingpong":
                attrs |= {"dir": "both", "arrowtail": "normal", "arrowhead": "normal"}
            elif c in targets:
                attrs |= {"dir": "back", "arrowtail": "normal"}
            else:
                attrs["dir"] = "none"
            s.edge(_p(r, c), _p(r, c + 1), **attrs, **_tag(k, f"l{c}"))
