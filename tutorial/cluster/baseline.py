"""The benchmark's baseline: a bare python-socketio broadcast server on aiohttp.

No authentication, no validation, no store, no rate limit, no seq: ``join`` enters a
room, ``send`` broadcasts ``msg`` to the room (the sender included) and acks. What the
teaching server costs on top of this is what the benchmark shows.

    python -m tutorial.cluster.baseline --port 3100 [--redis redis://...] [--name base]
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import socketio
from aiohttp import web

from tutorial.cluster.procs import stop_signal


def build_app(redis_url: str | None = None, name: str = "baseline") -> web.Application:
    manager = socketio.AsyncRedisManager(redis_url) if redis_url else None
    sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=manager)
    app = web.Application()
    sio.attach(app)

    async def join(sid: str, room: str) -> dict[str, Any]:
        await sio.enter_room(sid, room)
        return {"ok": True}

    async def send(sid: str, data: dict[str, Any]) -> dict[str, Any]:
        await sio.emit("msg", data, room=data["roomId"])
        return {"ok": True}

    sio.on("join", join)
    sio.on("send", send)

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"ok": True, "name": name})

    app.router.add_get("/healthz", health)
    return app


async def serve(host: str, port: int, redis_url: str | None, name: str) -> None:
    runner = web.AppRunner(build_app(redis_url, name), handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    print(f"baseline {name} listening on http://{host}:{port}", flush=True)
    await stop_signal().wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", default=None)
    parser.add_argument("--name", default="baseline")
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, args.redis, args.name))


if __name__ == "__main__":
    main()
