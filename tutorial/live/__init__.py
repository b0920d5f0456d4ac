"""The browser chat's live diagram: ``tutorial serve --live-trace``.

With live tracing on, the CLI plugs a [LiveView][tutorial.live.view.LiveView] into the
chat server through the server's public hooks only: a
[Front][tutorial.chat.server.Front] (the app listens on an internal port on 127.0.0.1
and a [Wiretap][tutorial.trace.wiretap.Wiretap] on the public address in front of it)
and a span hook (the server's own steps). Every byte a browser exchanges with the chat
is relayed unchanged and recorded, layer by layer, into one shared
[LiveTrace][tutorial.live.trace.LiveTrace], one lifeline per Engine.IO session (a
browser sends any request on any of its pooled HTTP/1.1 connections, so the tap names
the lifeline request by request). Each page follows its own session on the ``/trace``
namespace ([tutorial.live.view][]) and gets its diagram pushed as SVG
([tutorial.live.render][]). A click on an arrow of it asks for the trace inspector's
document of that very diagram (``inspect``), which shows the arrow's bytes field by field.

    server = ChatServer(config)
    view = attach(server, enabled=True)
    await server.start()

The chat server itself imports none of this: it draws nothing and knows no trace.
"""

from tutorial.live.render import (
    LAYERS,
    MAX_EVENTS,
    chat_label,
    panel_document,
    redact,
    render_svg,
)
from tutorial.live.trace import LiveTrace
from tutorial.live.view import (
    ASSET_PATH,
    ASSETS,
    KEEP_DRAWN,
    OFF_CODE,
    OFF_MESSAGE,
    PUSH_INTERVAL,
    TRACE_NAMESPACE,
    LiveView,
    attach,
    refuse_when_off,
)

__all__ = [
    "ASSETS",
    "ASSET_PATH",
    "KEEP_DRAWN",
    "LAYERS",
    "MAX_EVENTS",
    "OFF_CODE",
    "OFF_MESSAGE",
    "PUSH_INTERVAL",
    "TRACE_NAMESPACE",
    "LiveTrace",
    "LiveView",
    "attach",
    "chat_label",
    "panel_document",
    "redact",
    "refuse_when_off",
    "render_svg",
]
