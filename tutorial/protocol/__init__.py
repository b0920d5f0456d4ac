"""Sans-I/O protocol code: bytes in, small frozen events out.

The event catalog (:mod:`tutorial.protocol.catalog`) is the chat contract; the decoders
read HTTP/1.1 (:mod:`.http`, with h11), RFC 6455 frames (:mod:`.websocket`), Engine.IO v4
(:mod:`.engineio`) and Socket.IO v5 (:mod:`.socketio`), and :mod:`.stream` chains them
for one TCP connection. None of them does I/O.
"""
