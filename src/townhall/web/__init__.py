"""The web shell: what every component's pages and API share, and the app that hangs them.

The Center and the Manager (and later components) depend on this package and
never on each other. Modules: ``shell`` (the ``WebShell`` on the application:
database, the identify function, cookie rules; ``Viewer``, ``Person``),
``errors`` (the one HTTP error family ``WebError``, its handler, sign-in
redirects), ``csrf`` (form tokens bound to the sign-in, ``__Host-`` cookies
over HTTPS), ``deps`` (request dependencies: ``DB``, ``Who``, ``SignedIn``,
``ApiViewer``, ``ItemId``), ``render`` (``Pages``: Jinja2 in the site's frame,
the error page), ``app`` (``Component`` and ``create_app``: limits, security
headers, ``/static``, ``/healthz``). It imports no component; the
composition root (``townhall.webprocess``) chooses which ones run together.
See docs/architecture.md, "Web shell".
"""
