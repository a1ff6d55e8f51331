"""What a data owner's policy says, as plain data: who may use a dataset (licences with
expiry and purposes, 授权场景), how (job modes), how much (a per-operator privacy budget per
period plus a lifetime cap, optional dataset-wide caps over all operators, a floor on each
query's epsilon and a job quota), and what a result must pass before release.

`sandbox.core.policy.file.parse_policy` builds a Policy from an owner's YAML file.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import date

import yaml

from sandbox.core.errors import InvalidInput, Text

MODES = ("query", "program", "reviewed")
DP_MODES = frozenset({"query", "program"})
RELEASE_RULES = ("auto", "one_reviewer", "two_reviewers")
RUN_APPROVALS = ("auto", "owner")
REFRESH_RULES = ("none", "daily", "monthly", "quarterly", "yearly")
# How a change to the policy itself takes effect: at once, or after a second person approves it.
POLICY_CHANGES = ("none", "second_approval")

# What a classification level implies (team decision): (allowed modes, allowed release rules).
# L3/L4 hold personal or sensitive data, so only DP modes; L3 needs a human before
# release, L4 two independent humans.
LEVEL_RULES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "L1": (frozenset(MODES), frozenset(RELEASE_RULES)),
    "L2": (frozenset(MODES), frozenset(RELEASE_RULES)),
    "L3": (DP_MODES, frozenset({"one_reviewer", "two_reviewers"})),
    "L4": (DP_MODES, frozenset({"two_reviewers"})),
}

# key: (default, minimum, maximum, integer?). The caps keep one job from starving
# the machine whatever an owner writes.
LIMITS: dict[str, tuple] = {
    "memory_mb": (2048, 64, 65536, True),
    "cpus": (1.0, 0.1, 32.0, False),
    "wall_seconds": (600, 1, 86400, True),
    "output_bytes": (10 * 1024 * 1024, 1, 1024 * 1024 * 1024, True),
}


@dataclass(frozen=True)
class Licence:
    """An operator's licence (授权) to use one dataset for named purposes."""
    operator: str
    expires: date            # last day the licence is valid
    purposes: frozenset[str]
    revoked: bool = False

    def to_dict(self) -> dict:
        return {"operator": self.operator, "expires": self.expires.isoformat(),
                "purposes": sorted(self.purposes), "revoked": self.revoked}


@dataclass(frozen=True, kw_only=True)
class Budget:
    """Per-operator privacy budget: a per-period allowance that refreshes, and a lifetime
    cap that never does (refreshing alone lets repeated queries average noise away).
    Keyword-only so an epsilon can never land in a delta slot by position.

    Optional, on the same calendar: dataset-wide caps over every operator together (a
    person's total loss is the sum over all operators; None = no such cap), a floor on the
    epsilon of one query (so near-free queries cannot be run by the thousand), and a quota
    of jobs per operator and period (None = no quota)."""
    epsilon_per_period: float
    refresh: str
    lifetime_epsilon: float
    delta_per_period: float = 0.0
    lifetime_delta: float = 0.0
    min_epsilon_per_query: float = 0.0
    jobs_per_period: int | None = None
    dataset_epsilon_per_period: float | None = None
    dataset_lifetime_epsilon: float | None = None
    dataset_delta_per_period: float | None = None
    dataset_lifetime_delta: float | None = None

    def __post_init__(self):
        # parse_policy reports these with line numbers first; this guards direct construction.
        if self.refresh not in REFRESH_RULES:
            raise InvalidInput(Text("refresh must be one of {allowed}", allowed=", ".join(REFRESH_RULES)),
                               "budget.refresh")
        for name in ("epsilon_per_period", "lifetime_epsilon", "delta_per_period", "lifetime_delta",
                     "min_epsilon_per_query", *DATASET_CAPS):
            v = getattr(self, name)
            if v is None and name in DATASET_CAPS:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise InvalidInput(Text("{name} must be a finite number >= 0", name=name), f"budget.{name}")
        if self.epsilon_per_period <= 0:
            raise InvalidInput(Text("epsilon_per_period must be > 0"), "budget.epsilon_per_period")
        if self.lifetime_epsilon < self.epsilon_per_period:
            raise InvalidInput(Text("lifetime_epsilon must be >= epsilon_per_period"), "budget.lifetime_epsilon")
        if self.lifetime_delta < self.delta_per_period or self.lifetime_delta >= 1:
            raise InvalidInput(Text("lifetime_delta must be >= delta_per_period and < 1"), "budget.lifetime_delta")
        q = self.jobs_per_period
        if q is not None and (isinstance(q, bool) or not isinstance(q, int) or q < 1):
            raise InvalidInput(Text("{name} must be a whole number >= 1", name="jobs_per_period"),
                               "budget.jobs_per_period")
        for name, other in BUDGET_ORDER:
            v, limit = getattr(self, name), getattr(self, other)
            if v is None or limit is None:
                continue
            if (name == "min_epsilon_per_query" and v > limit) or (name != "min_epsilon_per_query" and v < limit):
                op = "<=" if name == "min_epsilon_per_query" else ">="
                raise InvalidInput(Text("{name} must be {op} {other}", name=name, op=op, other=other),
                                   f"budget.{name}")
        for name in ("dataset_epsilon_per_period", "dataset_lifetime_epsilon"):
            if getattr(self, name) == 0:
                raise InvalidInput(Text("{name} must be > 0", name=name), f"budget.{name}")
        for name in ("dataset_delta_per_period", "dataset_lifetime_delta"):
            if (getattr(self, name) or 0) >= 1:
                raise InvalidInput(Text("{name} must be < 1", name=name), f"budget.{name}")

    @property
    def dataset_capped(self) -> bool:
        return any(getattr(self, name) is not None for name in DATASET_CAPS)

    def to_dict(self) -> dict:
        out = {"epsilon_per_period": self.epsilon_per_period, "delta_per_period": self.delta_per_period,
               "refresh": self.refresh, "lifetime_epsilon": self.lifetime_epsilon,
               "lifetime_delta": self.lifetime_delta}
        # Optional keys only when set, so a policy without them keeps its text and hash.
        if self.min_epsilon_per_query:
            out["min_epsilon_per_query"] = self.min_epsilon_per_query
        for name in ("jobs_per_period", *DATASET_CAPS):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out


DATASET_CAPS = ("dataset_epsilon_per_period", "dataset_lifetime_epsilon", "dataset_delta_per_period",
                "dataset_lifetime_delta")
# (key, other): key must be >= other (a dataset-wide cap below one operator's allowance
# would make that allowance unreachable), except the floor, which must be <= the period's
# allowance (a larger floor would refuse every job).
BUDGET_ORDER = (
    ("min_epsilon_per_query", "epsilon_per_period"),
    ("dataset_epsilon_per_period", "epsilon_per_period"),
    ("dataset_lifetime_epsilon", "lifetime_epsilon"),
    ("dataset_lifetime_epsilon", "dataset_epsilon_per_period"),
    ("dataset_delta_per_period", "delta_per_period"),
    ("dataset_lifetime_delta", "lifetime_delta"),
    ("dataset_lifetime_delta", "dataset_delta_per_period"),
)


@dataclass(frozen=True)
class ResourceLimits:
    memory_mb: int = LIMITS["memory_mb"][0]
    cpus: float = LIMITS["cpus"][0]
    wall_seconds: int = LIMITS["wall_seconds"][0]
    output_bytes: int = LIMITS["output_bytes"][0]

    def to_dict(self) -> dict:
        return {"memory_mb": self.memory_mb, "cpus": self.cpus,
                "wall_seconds": self.wall_seconds, "output_bytes": self.output_bytes}


@dataclass(frozen=True)
class Policy:
    dataset: str
    classification: str
    modes: frozenset[str]
    licences: tuple[Licence, ...]
    budget: Budget
    release: str
    run_approval: str = "auto"
    min_group_size: int = 10
    forbidden_columns: frozenset[str] = frozenset()
    limits: ResourceLimits = ResourceLimits()
    policy_changes: str = "none"
    # The canonical text as applied; content_hash is over these bytes. parse_policy sets
    # it to the file's text; a Policy built in code (or via dataclasses.replace) gets a
    # dump of its own content, so a changed policy never keeps an old text and hash.
    text: str = field(default="", init=False, compare=False, repr=False)

    def __post_init__(self):
        dumped = yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)
        object.__setattr__(self, "text", canonical_text(dumped))

    @property
    def content_hash(self) -> str:
        """sha256 (hex) of the canonical text bytes as applied; comments count, since the
        file an owner reviewed is the thing pinned."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @property
    def reviewers_required(self) -> int:
        """Reviewers for a query-mode job: 0 (auto), 1 or 2. See reviewers_for(mode)."""
        return self.reviewers_for("query")

    def reviewers_for(self, mode: str) -> int:
        # "auto" release applies to query mode only: program output is DP too but the
        # analyst's code chose what to compute, and reviewed mode is not DP at all.
        if self.release == "two_reviewers":
            return 2
        if self.release == "one_reviewer":
            return 1
        return 0 if mode == "query" else 1

    def licence(self, operator: str) -> Licence | None:
        for lic in self.licences:
            if lic.operator == operator:
                return lic
        return None

    def to_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            "classification": self.classification,
            "modes": sorted(self.modes),
            "release": self.release,
            "run_approval": self.run_approval,
            "licences": [lic.to_dict() for lic in self.licences],
            "budget": self.budget.to_dict(),
            "min_group_size": self.min_group_size,
            "forbidden_columns": sorted(self.forbidden_columns),
            "limits": self.limits.to_dict(),
            # Only when set, so a policy without the key keeps its dumped text and hash.
            **({"policy_changes": self.policy_changes} if self.policy_changes != "none" else {}),
        }

    @property
    def needs_second_approval(self) -> bool:
        """A change to this policy waits for a second person before it is in force."""
        return self.policy_changes == "second_approval"


def canonical_text(text: str) -> str:
    """The bytes that get hashed: BOM dropped, LF line endings, one final newline, so an
    editor's line-ending choice does not change a policy's identity."""
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    return text.rstrip("\n") + "\n"
