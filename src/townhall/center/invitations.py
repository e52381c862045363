"""The invitation, update and cancellation mails that one invitee receives.

``invitation_message`` builds a whole ``EmailMessage``: multipart/alternative
with a text/plain body, a text/html body (every user-supplied text escaped by
Jinja2's autoescape) and an inline ``text/calendar; method=REQUEST|CANCEL``
part, the shape in which Outlook, Gmail and Thunderbird recognise an
invitation (RFC 6047 §2.4). The iCalendar itself comes from ``calendar``.
This module builds messages only: queueing and sending them is ``mailer``'s.
"""

from __future__ import annotations

import email.policy
import email.utils
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2

from townhall.center.calendar import event_ics
from townhall.center.tables import Event
from townhall.store.conventions import utc

Purpose = Literal["invite", "update", "cancel"]

_SUBJECT_PREFIX = {"invite": "Invitation", "update": "Updated", "cancel": "Cancelled"}
# Fixed English names: strftime's %a and %b follow the process locale.
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)

_TEXT = """\
{greeting}

{lead}

{title}
{rule}
When:      {when_local}
           {when_utc}
Duration:  {duration}
Kind:      {kind}
Organizer: {organizer}
{links}{description}
--
Sent by Townhall on behalf of {organizer}.
"""

_HTML = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string(
    """\
<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{{ subject }}</title></head>
<body style="font-family: sans-serif; line-height: 1.4;">
<p>{{ greeting }}</p>
<p>{{ lead }}</p>
<h2 style="margin-bottom: 0.3em;">{{ title }}</h2>
<table role="presentation" cellpadding="2" style="border-collapse: collapse;">
<tr><th align="left" valign="top">When</th>
<td>{{ when_local }}<br><span style="color: #555;">{{ when_utc }}</span></td></tr>
<tr><th align="left">Duration</th><td>{{ duration }}</td></tr>
<tr><th align="left">Kind</th><td>{{ kind }}</td></tr>
<tr><th align="left">Organizer</th><td>{{ organizer }}</td></tr>
</table>
{% if join_url %}
<p><a href="{{ join_url }}" style="font-weight: bold;">Join the event</a>
(this link is personal: do not forward it)<br>
<span style="color: #555;">{{ join_url }}</span></p>
{% endif %}
{% if event_url %}<p>Event page: <a href="{{ event_url }}">{{ event_url }}</a></p>{% endif %}
{% if description %}
<p>{% for line in description.splitlines() %}{{ line }}<br>{% endfor %}</p>
{% endif %}
<hr>
<p style="color: #555; font-size: smaller;">Sent by Townhall on behalf of {{ organizer }}.</p>
</body>
</html>
"""
)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _when(moment: datetime) -> str:
    """``Sunday 4 May 2031, 16:00 CEST``, independent of the process locale."""
    return (
        f"{_DAYS[moment.weekday()]} {moment.day} {_MONTHS[moment.month - 1]} {moment.year}, "
        f"{moment:%H:%M} {moment.tzname()}"
    )


def _short_when(moment: datetime) -> str:
    return (
        f"{_DAYS[moment.weekday()][:3]} {moment.day} {_MONTHS[moment.month - 1][:3]} "
        f"{moment.year} {moment:%H:%M} {moment.tzname()}"
    )


def _duration(minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    if not hours:
        return f"{rest} min"
    return f"{hours} h {rest} min" if rest else f"{hours} h"


def _cte(text: str) -> str:
    # RFC 5322 §2.1.1: 998 octets a line at most; 7bit keeps plain ASCII readable raw.
    if text.isascii() and all(len(line) <= 900 for line in text.splitlines()):
        return "7bit"
    return "quoted-printable"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def invitation_message(
    *,
    event: Event,
    recipient_email: str,
    recipient_name: str,
    purpose: Purpose,
    join_url: str,
    event_url: str,
    sender: str,
    organizer_email: str,
    organizer_name: str,
    timezone: str,
) -> EmailMessage:
    """The mail telling ``recipient_email`` of an invitation, a change or a cancellation.

    ``timezone`` (a zoneinfo name; UTC if unknown) is the one the body shows
    the start in, beside UTC. ``join_url`` is the recipient's personal link;
    a cancellation leaves it out. Without an organizer address the calendar
    names the sender as organizer, since REQUEST and CANCEL need one.
    """
    if purpose not in _SUBJECT_PREFIX:
        raise ValueError(f"unknown invitation purpose {purpose!r}")
    start = utc(event.starts_at)
    local = start.astimezone(_zone(timezone))
    title = _one_line(event.title)
    organizer = _one_line(organizer_name) or organizer_email or "the organizer"
    subject = f"{_SUBJECT_PREFIX[purpose]}: {title} ({_short_when(local)})"
    name = _one_line(recipient_name)
    greeting = f"Hello {name}," if name else "Hello,"
    if purpose == "invite":
        lead = f"{organizer} invites you to this event."
    elif purpose == "update":
        lead = f"{organizer} changed this event; your calendar entry is updated with it."
    elif event.status == "cancelled":
        lead = f"{organizer} cancelled this event."
    else:
        lead = f"You are no longer invited to this event by {organizer}."
    cancel = purpose == "cancel"
    fields = {
        "subject": subject,
        "greeting": greeting,
        "lead": lead,
        "title": title,
        "when_local": _when(local),
        "when_utc": _when(start),
        "duration": _duration(event.duration_minutes),
        "kind": event.kind.capitalize(),
        "organizer": organizer,
        "join_url": "" if cancel else join_url,
        "event_url": "" if cancel else event_url,
        "description": event.description.strip(),
    }
    links = ""
    if fields["join_url"]:
        links += f"\nJoin (your personal link, do not forward it):\n{join_url}\n"
    if fields["event_url"]:
        links += f"\nEvent page: {event_url}\n"
    text = _TEXT.format(
        **fields | {"description": f"\n{fields['description']}\n" if fields["description"] else ""},
        rule="-" * min(len(title), 72),
        links=links,
    )

    method: Literal["REQUEST", "CANCEL"] = "CANCEL" if cancel else "REQUEST"
    sender_name, sender_address = email.utils.parseaddr(sender)
    ics = event_ics(
        event,
        method=method,
        organizer_email=organizer_email or sender_address,
        organizer_name=organizer_name if organizer_email else (organizer_name or sender_name),
        attendees=[(recipient_email, recipient_name)],
        url=event_url if cancel else join_url,
    ).decode("utf-8")

    message = EmailMessage(policy=email.policy.SMTP)
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = recipient_email
    if organizer_email:
        message["Reply-To"] = Address(display_name=organizer, addr_spec=organizer_email)
    message["Date"] = email.utils.format_datetime(datetime.now(UTC))
    domain = sender_address.rpartition("@")[2] or "townhall.invalid"
    message["Message-ID"] = email.utils.make_msgid("townhall", domain=domain)
    html = _HTML.render(**fields)
    message.set_content(text, cte=_cte(text))
    message.add_alternative(html, subtype="html", cte=_cte(html))
    # RFC 6047 §2.4: the iTIP method is repeated as a Content-Type parameter.
    message.add_alternative(
        ics,
        subtype="calendar",
        cte="7bit" if ics.isascii() else "base64",
        params={"method": method},
    )
    return message
