"""The Remote Controller: live servers' control links, and each event's server tree.

Modules: ``plan`` (the sans-IO core that decides assignments and states),
``link`` (the control link's frames and messages, sans-IO), ``service`` (the
asyncio Controller: TLS, tick, database), ``agent`` (the live server's end of
the link), ``identity`` (certificates and enrolment), ``tables`` and
``records`` (the Controller's own table), ``command`` (``townhall controller``
and ``townhall live``). Nothing is imported here, so that importing the
migrations stays cheap. docs/controller.md explains the whole.
"""
