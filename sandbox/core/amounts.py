"""Privacy amounts as the ledger reads them: exact Fractions from each float's shortest
decimal form, and a job's charge as the sum of its parts rounded up. Apart from the ledger
(which needs the policy model and YAML) so that code in the box can share it.
"""
from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction
from typing import Iterable

ZERO = Fraction(0)


class LedgerError(ValueError):
    """The entries break a ledger invariant: a bug or a corrupted log, never user input."""


def exact(value) -> Fraction:
    """An amount as an exact Fraction. A float is read by its shortest decimal form
    (0.1 -> 1/10): that is the number the owner or operator wrote."""
    if isinstance(value, Fraction):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise LedgerError(f"amount must be a number, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise LedgerError("amount must be finite")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise LedgerError("amount must be finite")
        return Fraction(value)
    return Fraction(repr(value)) if isinstance(value, float) else Fraction(value)


def sum_rounded_up(amounts: Iterable) -> float:
    """The smallest float whose exact value, as `exact` reads it, is >= the exact sum of
    `amounts` (each read by `exact` too). A float sum rounds to nearest, so a charge could
    fall below the parts it pays for (0.1 + 0.1 + 0.7 gives 0.8999999999999999)."""
    total = sum((exact(a) for a in amounts), ZERO)
    if total < 0:
        raise LedgerError("a charge must be >= 0")
    # exact() is increasing in the float, so walk from the nearest float to the boundary.
    try:
        charge = float(total)
    except OverflowError:
        raise LedgerError("amount must be finite") from None
    while exact(charge) < total:
        charge = math.nextafter(charge, math.inf)
    while charge > 0 and exact(math.nextafter(charge, -math.inf)) >= total:
        charge = math.nextafter(charge, -math.inf)
    return charge
