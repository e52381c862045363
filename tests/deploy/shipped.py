"""The files of ``deploy/`` as the tests use them: settings templates filled in.

``deploy/settings/*.toml`` are the example settings an installation copies to
/etc/townhall/; their site-specific values are ``string.Template`` placeholders
(``${public_url}``). ``render_settings`` fills them in, and may set a few keys
(the namespace tests' faster pace) to other values; tests/net's deployment
runs on what it returns, so the shipped files are the ones proven to work.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping
from pathlib import Path

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SETTINGS = DEPLOY / "settings"
SYSTEMD = DEPLOY / "systemd"


def placeholders(name: str) -> set[str]:
    """The placeholder names of ``deploy/settings/<name>``."""
    template = string.Template((SETTINGS / name).read_text())
    return set(template.get_identifiers())


def render_settings(
    name: str, values: Mapping[str, str], tuning: Mapping[str, float | int] | None = None
) -> str:
    """``deploy/settings/<name>`` with every placeholder filled from ``values`` (a missing
    one is a KeyError), and each key of ``tuning`` set to its value instead of the
    shipped one (each key must be written exactly once in the file)."""
    text = string.Template((SETTINGS / name).read_text()).substitute(values)
    for key, value in (tuning or {}).items():
        text, count = re.subn(
            rf"^{re.escape(key)} = .*$", f"{key} = {json.dumps(value)}", text, flags=re.M
        )
        if count != 1:
            raise ValueError(f"{name} sets {key} {count} times, not once")
    return text
