"""The Center: portal, REST API, SSO behind a reverse proxy, scheduling, invitations.

Modules: ``tables`` (the Center's own tables), ``accounts`` (users, passwords,
tokens, browser sessions), ``sso`` (identity from a trusted reverse proxy),
``auth`` (who is asking, for pages and API), ``throttle`` (password sign-in
backoff), ``events`` (scheduling and registration rules), ``live`` (join
tickets, what the Controller assigns and reports, removals), ``calendar`` and
``invitations`` (iCalendar and mail bodies), ``mailer`` (the background mail
queue), ``api`` (``/api/v1``), ``pages`` (the HTML portal), ``access_routes``
(removals, letting back in, a guest's ticket by personal link), ``polls``
(polls and questions kept with the event, and their route), ``app`` (the
ASGI application). The Center owns its tables; other components reach it only
over HTTP.
"""
