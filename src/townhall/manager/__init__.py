"""The Manager (the spec's Server Manager, ISM): live servers, server trees, enrolment.

It keeps the registry of live servers (address, zone, capacity), the server
trees they cascade into, which tree serves which event, and the credentials
servers get by enrolling with a one-time secret; enrolled servers pull their
configuration from it. It runs in the Center's web process under
``/manager`` but owns its tables and never reads the Center's. See
``docs/manager.md``.

Modules: ``tables`` (its tables and ``MetaData``), ``registry`` (the rules),
``api`` (``/manager/api/v1``), ``pages`` (the admin pages under ``/manager``),
``migrations`` (Alembic branch ``manager``).
"""
