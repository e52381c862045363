"""Database plumbing shared by the components: engine, sessions, migrations.

It knows no component's tables: each component declares its tables on its own
``MetaData`` and ships its own Alembic version folder, which ``migrate``
applies. SQLite (the embedded default) and PostgreSQL are both supported.

Modules: ``engine`` (engines and session factories), ``migrate`` (Alembic),
``conventions`` (the naming convention every component's tables share, UTC times).
"""

from townhall.store.engine import (
    WriteOnLoop,
    make_engine,
    make_loop_read_session_factory,
    make_read_session_factory,
    make_session_factory,
    refused_on_loop,
    will_write,
)
from townhall.store.migrate import upgrade

__all__ = [
    "WriteOnLoop",
    "make_engine",
    "make_loop_read_session_factory",
    "make_read_session_factory",
    "make_session_factory",
    "refused_on_loop",
    "upgrade",
    "will_write",
]
