"""deploy/grafana/townhall.json: it loads, and every metric it draws is one Townhall exports.

A renamed metric would leave a panel silently empty; here it fails instead.
The names exported are each component's ``METRIC_NAMES``, which the
components' own tests check against what a scrape really returns.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from townhall.center.metrics import METRIC_NAMES as CENTER
from townhall.controller.metrics import METRIC_NAMES as CONTROLLER
from townhall.live.metrics import METRIC_NAMES as LIVE
from townhall.web.metrics import METRIC_NAMES as WEB

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "townhall.json"
HISTOGRAM_SERIES = ("_bucket", "_count", "_sum")


def exprs(panels: list[dict[str, Any]]) -> list[str]:
    found = []
    for panel in panels:
        found += [target["expr"] for target in panel.get("targets", [])]
        found += exprs(panel.get("panels", []))
    return found


def test_the_dashboard_draws_only_metrics_the_code_exports_and_all_of_them() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = exprs(dashboard["panels"]) + [
        variable["definition"]
        for variable in dashboard["templating"]["list"]
        if variable["type"] == "query"
    ]
    assert queries
    exported = set(WEB) | set(CENTER) | set(CONTROLLER) | set(LIVE)
    drawn = set()
    for query in queries:
        for name in re.findall(r"\btownhall_[a-z_]+", query):
            for suffix in HISTOGRAM_SERIES:  # the series of a histogram or a summary
                if name.endswith(suffix) and name.removesuffix(suffix) in exported:
                    name = name.removesuffix(suffix)
            drawn.add(name)
    assert drawn - exported == set()
    assert exported - drawn == set()  # each metric is on some panel
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
