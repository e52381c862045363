"""Types of the compiled write loop (``_fanout.c``); ``townhall.live.fanout`` documents it."""

from townhall.live.fanout import Leftover, Writer

def send_each(writers: list[Writer | None], datas: list[bytes], /) -> list[Leftover]: ...
