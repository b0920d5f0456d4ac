"""A Socket.IO chat system you can run, watch and break.

Every architecture diagram of the tutorial is drawn from a real run: the teaching
server ([tutorial.chat][tutorial.chat]), the teaching client ([tutorial.client][tutorial.client]),
the wire
decoders ([tutorial.protocol][tutorial.protocol]), traces ([tutorial.trace][tutorial.trace]) and
renderers
([tutorial.render][tutorial.render]), driven by one scenario per chapter
([tutorial.scenarios][tutorial.scenarios]).
"""

__version__ = "0.1.0"
