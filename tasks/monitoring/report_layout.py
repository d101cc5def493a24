"""How the drift reports are drawn: a header on top, and distributions as shares when the sides differ in size.

Evidently 0.7.23 has no report title in its HTML (a snapshot's `name` is not rendered) and no setting for
its distribution plots' default: each draws counts, with an `abs`/`perc` toggle. Both are added through
its own extension point, a `MetricContainer` whose `render` gets the widgets of the metrics it holds: a
markdown text widget on top (written by `reports.heading`), and, when the two sides differ in size, the
`perc` view shown first and the drift table's category counts turned into shares. Imported only where a
report is built: Evidently takes seconds to import.
"""

from __future__ import annotations

from typing import Any

from evidently.core.container import MetricContainer
from evidently.legacy.renderers.html_widgets import text_widget


def _percent_first(figure: dict) -> None:
    """Show the `perc` traces of an Evidently distribution figure (plotly JSON) instead of the counts."""
    menus = (figure.get("layout") or {}).get("updatemenus") or []
    buttons = menus[0].get("buttons", []) if menus else []
    if [b.get("label") for b in buttons] != ["abs", "perc"]:
        return
    for trace in figure.get("data", []):
        trace["visible"] = not trace.get("visible", True)
    figure["layout"]["yaxis"] = {**figure["layout"].get("yaxis", {}), **buttons[1]["args"][1]["yaxis"]}


def _category_shares(row: dict) -> None:
    """The drift table's small plots: numeric ones are densities already; categories come as counts."""
    if row.get("column_type") != "cat":
        return
    for key in ("reference_distribution", "current_distribution"):
        dist = row.get(key) or {}
        total = sum(dist.get("y") or [])
        if total:
            dist["y"] = [y / total for y in dist["y"]]


def _shares(item: Any) -> None:
    """Walk a widget tree (widgets, tabs, additional graphs, plotly figures, table rows)."""
    if isinstance(item, list):
        for x in item:
            _shares(x)
        return
    if not isinstance(item, dict):
        item = getattr(item, "__dict__", None)
        if item is None:
            return
    if isinstance(item.get("layout"), dict) and "data" in item:
        _percent_first(item)
    _category_shares(item)
    for key in ("params", "widgets", "tabs", "widget", "additionalGraphs", "data", "graph"):
        if isinstance(item.get(key), list | dict) or hasattr(item.get(key), "__dict__"):
            _shares(item[key])


class Titled(MetricContainer):
    """Evidently metrics under a markdown header; `shares` draws their distributions as percent of each side."""

    title: str
    text: str
    shares: bool = False
    items: list

    def generate_metrics(self, context):
        return self.items

    def render(self, context, child_widgets=None):
        widgets = super().render(context, child_widgets)
        if self.shares:
            _shares(widgets)
        return [text_widget(title=self.title, text=self.text), *widgets]
