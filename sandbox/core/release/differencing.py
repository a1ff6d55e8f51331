"""Differencing across releases of exact (reviewed-mode) counts. Pure domain code.

Every released aggregate is kept with its dataset version (content hash) and grouping. A new
release is checked against the earlier releases of the *same* dataset version, by any operator:
whenever one grouping's columns are a subset of the other's (equal included), the finer table
is summed onto the coarser grouping over the cells it actually released, and each coarse cell
is compared with that sum. A difference d with 0 < |d| < threshold isolates a group of |d|
units. This one comparison covers:

  (a) the same grouping released twice for different populations/filters (cell minus cell);
  (b) nested groupings: a coarse cell minus the released fine cells leaves the unreleased
      (suppressed or omitted) fine cells, recovered if they hold fewer than threshold units;
  (c) one-dimensional margins against a two-dimensional table (a margin is a coarser grouping,
      the empty grouping () is the grand total).

Not caught (see docs/disclosure-checks.md): groupings that are not nested (A x B against
B x C), chains of three or more releases that only together pin a cell (linear-programming
or interval attacks), differences across dataset versions (a new snapshot minus the old one
reveals the records that changed), groupings that differ only by a recoding of categories
(age bands 0-9 vs 0-4/5-9 under different column names), and magnitudes (sums) rather than
counts. DP query outputs need no such check: differencing is post-processing of DP releases
and is covered by the DP guarantee and the privacy budget.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from sandbox.core.errors import Text, join_texts
from sandbox.core.release.checks import FAIL, PASS, Check, fmt_key

MAX_LISTED = 10
_EPS = 1e-9   # counts are integers; tolerance only absorbs float round-trips through storage


@dataclass(frozen=True)
class ReleasedAggregate:
    """A released count table: cells maps a key (one value per grouping column) to its count.

    A cell that was suppressed is simply absent (None or NaN are treated as absent).
    `label` names the release to the reviewer (e.g. a job id); it is never used in arithmetic.
    """
    dataset_version: str
    grouping: tuple[str, ...]
    cells: dict[tuple, float]
    label: str = field(default="", compare=False)

    def __post_init__(self):
        if len(set(self.grouping)) != len(self.grouping):
            raise ValueError("grouping names a column twice")
        width = len(self.grouping)
        for key in self.cells:
            if not isinstance(key, tuple) or len(key) != width:
                raise ValueError(f"every cell key must be a tuple of {width} value(s), one per grouping column")

    def released(self) -> dict[tuple, float]:
        return {k: float(v) for k, v in self.cells.items() if v is not None and math.isfinite(float(v))}


@dataclass(frozen=True)
class Finding:
    """One cell of the coarser table whose difference with the other release is small."""
    key: tuple
    grouping: tuple[str, ...]
    gap: float
    other: str
    kind: str


def find_differences(new: ReleasedAggregate, previous: Iterable[ReleasedAggregate],
                     threshold: int) -> list[Finding]:
    """Every coarse cell where `new` and an earlier release of the same dataset version differ
    by more than 0 and less than `threshold` (see the module docstring for what that covers)."""
    findings: list[Finding] = []
    for i, old in enumerate(previous):
        if old.dataset_version != new.dataset_version:
            continue
        other = old.label or Text("earlier release #{n}", n=i + 1)
        new_cols, old_cols = set(new.grouping), set(old.grouping)
        if new_cols == old_cols:
            pairs = [(new, old, Text("same grouping"))]
        elif new_cols < old_cols:
            pairs = [(new, old, Text("finer release"))]
        elif old_cols < new_cols:
            pairs = [(old, new, Text("coarser release"))]
        else:
            continue
        for coarse, fine, kind in pairs:
            findings += _compare(coarse, fine, threshold, other, kind)
    return findings


def check_differencing(new: ReleasedAggregate, previous: list[ReleasedAggregate], threshold: int) -> Check:
    """Fail when the new release, combined with an earlier release of the same dataset
    version, isolates a group of fewer than `threshold` units; the explanation names the
    cells by their public keys and the release they combine with."""
    findings = find_differences(new, previous, threshold)
    same = sum(1 for p in previous if p.dataset_version == new.dataset_version)
    if not findings:
        return Check("differencing", PASS,
                     Text("no cell combines with the {same} earlier release(s) of this dataset version into a "
                          "group smaller than {threshold}", same=same, threshold=threshold))
    parts = [Text("{key} by ({grouping}) against {other} ({kind}): a group of {size}", key=fmt_key(f.key),
                  grouping=", ".join(f.grouping) or Text("total"), other=f.other, kind=f.kind,
                  size=_fmt_count(abs(f.gap))) for f in findings[:MAX_LISTED]]
    listed = join_texts("; ", parts)
    if len(findings) > MAX_LISTED:
        listed = Text("{listed} and {more} more", listed=listed, more=len(findings) - MAX_LISTED)
    return Check("differencing", FAIL,
                 Text("{n} cell(s), combined with earlier releases of this dataset version, isolate "
                      "groups smaller than {threshold}: {listed}. Suppress or merge these cells (so the difference "
                      "is 0 or at least the threshold), or release at a grouping already published",
                      n=len(findings), threshold=threshold, listed=listed))


def _compare(coarse: ReleasedAggregate, fine: ReleasedAggregate, threshold: int, other: str,
             kind: str) -> list[Finding]:
    # Project each released fine cell onto the coarse columns, in the coarse table's order.
    pos = [fine.grouping.index(c) for c in coarse.grouping]
    sums: dict[tuple, float] = {}
    for key, v in fine.released().items():
        sub = tuple(_norm(key[i]) for i in pos)
        sums[sub] = sums.get(sub, 0.0) + v
    out = []
    for key, v in coarse.released().items():
        sub = tuple(_norm(x) for x in key)
        if sub not in sums:
            continue  # the other release shows nothing under this cell: nothing to subtract
        gap = v - sums[sub]
        if _EPS < abs(gap) < threshold - _EPS:
            out.append(Finding(key=key, grouping=coarse.grouping, gap=gap, other=other, kind=kind))
    return out


def _norm(v) -> str:
    # Keys may come back from storage as text ("2024") or numbers (2024, 2024.0).
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


def _fmt_count(x: float) -> str:
    return str(int(round(x))) if abs(x - round(x)) < 1e-6 else f"{x:g}"
