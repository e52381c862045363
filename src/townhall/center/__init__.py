"""The Center: portal, REST API, SSO behind a reverse proxy, scheduling, invitations.

Modules: ``tables`` (the Center's own tables), ``accounts`` (users, passwords,
tokens, browser sessions), ``sso`` (identity from a trusted reverse proxy),
``auth`` (who is asking, for pages and API), ``events`` (scheduling and
registration rules), ``calendar`` and ``invitations`` (iCalendar and mail
bodies), ``mailer`` (the background mail queue), ``api`` (``/api/v1``),
``pages`` (the HTML portal), ``app`` (the ASGI application). The Center owns
its tables; other components reach it only over HTTP.
"""
