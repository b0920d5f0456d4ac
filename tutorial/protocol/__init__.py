"""Sans-I/O protocol code: bytes in, small frozen events out.

The event catalog ([tutorial.protocol.catalog][tutorial.protocol.catalog]) is the chat contract;
the decoders
read HTTP/1.1 ([http][tutorial.protocol.http], with h11), RFC 6455 frames
([websocket][tutorial.protocol.websocket]), Engine.IO v4
([engineio][tutorial.protocol.engineio]) and Socket.IO v5
([socketio][tutorial.protocol.socketio]), and [stream][tutorial.protocol.stream] chains them
for one TCP connection. None of them does I/O.
"""
