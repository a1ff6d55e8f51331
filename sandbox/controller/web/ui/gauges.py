"""The operator's budget at a glance: per dataset, the period's and the lifetime's ε as spent,
reserved and available, and when the period refreshes, from services().views.balance (the same
numbers GET /api/v1/budget/<dataset> answers). Bars are SVG rects sized by attributes and coloured
by ui.css: the pages' CSP allows no inline style."""
from __future__ import annotations

from datetime import date

from sandbox.controller.web.ui.common import current_policy, services
from sandbox.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from sandbox.core.ledger import LedgerCorrupt

PARTS = ("spent", "reserved", "available")


def bar(b: dict, prefix: str) -> dict:
    """Amounts and the segments' x/width on a 0..100 scale for one row ("period_" or "lifetime_")."""
    amounts = {p: float(b.get(prefix + p) or 0.0) for p in PARTS}
    total = sum(max(0.0, v) for v in amounts.values())
    row, x = dict(amounts), 0.0
    for p in PARTS:
        w = round(100 * max(0.0, amounts[p]) / total, 2) if total > 0 else 0.0
        row[p + "_x"], row[p + "_w"] = round(x, 2), w
        x += w
    return row


def gauge(b: dict) -> dict:
    """What _budget_gauge.html draws, from one balance."""
    return {"dataset": b.get("dataset"), "period": bar(b, "period_"), "lifetime": bar(b, "lifetime_"),
            "refresh": b.get("period_end"), "period_start": b.get("period_start"),
            "cap_blocks": bool(b.get("dataset_cap_blocks"))}


def holds_licence(operator: str, dataset: str, today: date | None = None) -> bool:
    """A valid licence (not revoked, not expired) in the applied policy, which every role may read."""
    policy = current_policy(dataset)
    if policy is None:
        return False
    today = (today or date.today()).isoformat()
    return any(lic["operator"] == operator and not lic["revoked"] and lic["expires"] >= today
               for lic in policy["dict"].get("licences", []))


def operator_gauge(u, dataset: str) -> dict | None:
    """The signed-in operator's gauge on one dataset; None without a licence or a readable balance."""
    try:
        if not holds_licence(u.name, dataset):
            return None
        return gauge(services().views.balance(u, dataset))
    except (Forbidden, NotFound, Conflict, InvalidInput, LedgerCorrupt):
        return None


def operator_gauges(u, names) -> dict[str, dict]:
    return {n: g for n in names if (g := operator_gauge(u, n)) is not None}
