"""A Socket.IO chat system you can run, watch and break.

Every architecture diagram of the tutorial is drawn from a real run: the teaching
server (:mod:`tutorial.chat`), the teaching client (:mod:`tutorial.client`), the wire
decoders (:mod:`tutorial.protocol`), traces (:mod:`tutorial.trace`) and renderers
(:mod:`tutorial.render`), driven by one scenario per chapter (:mod:`tutorial.scenarios`).
"""

__version__ = "0.1.0"
