"""Types of the compiled write loop (``_fanout.c``); ``townhall.live.fanout`` documents it."""

from collections.abc import Sequence

from townhall.live.fanout import Leftover, Writer

def send_each(writers: Sequence[Writer | None], datas: Sequence[bytes], /) -> list[Leftover]: ...
