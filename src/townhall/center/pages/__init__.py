"""The Center's HTML portal, one module per area of the site.

Pages are rendered on the server by Jinja2 in the web shell's frame
(``townhall.web.render``) and work without JavaScript. Every rule lives in
``events`` and ``accounts``, shared with the REST API; these modules only
turn forms into their models and results into pages. Who may ask a route is
in its signature (``common``: ``SignedInUser``, ``EventPost``, ``AdminPage``
...), so no route repeats a sign-in or CSRF preamble; every form posts the
web shell's session-bound CSRF token.

Modules: ``common`` (templates, notices, the dependency aliases),
``signin`` (password sign-in and sign-out), ``catalog`` (the events list),
``scheduling`` (the event form, cancelling), ``event`` (the event page, its
tree, Join, calendar, dial-in and the personal join link),
``registrations``, ``account`` (time zone, API tokens), ``admin`` (outbox,
users). ``center.app`` hangs each area's ``router``.
"""
