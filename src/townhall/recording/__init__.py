"""Recording an event from its server tree, without a browser and without re-encoding video.

A recorder (``townhall record``) joins the event's tree as one more listener,
with a recorder ticket the Center gives the event's organizers. It mixes the
relayed Opus streams into one audio track (``mixer``), copies the relayed VP8
or H.264 frames as they are into one video track, writes both into a WebM
(VP8) or fragmented MP4 (H.264) file in pieces of about a second that reach
the disk as they close (``container``), and the public chat into a WebVTT
file beside it (``chat``). ``recorder`` is the asyncio shell around a
``townhall.client.Participant``. Everything goes
into ``<data>/recordings/<event id>/``, where the Center plays it on demand.
docs/recording.md says why the recorder is a listener and not the main server.
"""
