"""What the role commands print for people: short summaries and tables (rich), built from
the same API documents `--json` prints unchanged. Every function takes a document and
returns renderables; nothing here calls the API, so tests render real documents at a fixed
width (tests/unit/test_cli_output.py checks that each fits 100 columns).

Values come from the API and may hold "[...]" (bounds, lists): they are always passed as
`Styled` (rich.text.Text), never as markup, so a value is never read as a style tag."""
from __future__ import annotations

from datetime import datetime, timezone

from rich import box
from rich.console import Group
from rich.table import Table
# Not named Text: babel extracts Text("...") calls under controller/ as translatable domain messages.
from rich.text import Text as Styled

# Operator-visible states that are final, and the ones a staff member sees in review.
FINAL = {"released", "rejected", "failed", "cancelled"}


def _table(*columns: str, title: str | None = None) -> Table:
    t = Table(*columns, box=box.SIMPLE_HEAD, title=title, title_justify="left", pad_edge=False,
              show_edge=False, header_style="bold", padding=(0, 1, 0, 0))
    for c in t.columns:
        c.overflow = "fold"   # a long value breaks onto the next line, never cut to "…"
    t.columns[0].no_wrap = True   # the key of each row (job id, name) stays whole
    return t


def _t(value) -> Styled:
    return Styled("" if value is None else str(value))


def num(x, digits: int = 4) -> str:
    """A budget or error figure, short: 4 significant digits, no "-0" (issue 17, bug 6)."""
    if x is None:
        return "-"
    if isinstance(x, (int, float)) and x == 0:
        return "0"
    if isinstance(x, float):
        if abs(x) < 1e-3:
            return f"{x:.{digits}g}"          # δ: 1e-06
        return f"{x:,.{digits}g}" if abs(x) < 10 ** digits else f"{x:,.0f}"
    return f"{x:,}" if isinstance(x, int) else str(x)


def when(iso: str | None, zone: bool = True) -> str:
    """An ISO time as "2026-12-01 03:13 UTC" (minutes are enough to read a list)."""
    if not iso:
        return "-"
    try:
        t = datetime.fromisoformat(iso).astimezone(timezone.utc)
    except ValueError:
        return iso
    return t.strftime("%Y-%m-%d %H:%M" + (" UTC" if zone else ""))


def day(iso: str | None) -> str:
    return when(iso)[:10] if iso else "-"


def duration(seconds: float) -> str:
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"


# ------------------------------------------------------------------ datasets
def datasets(docs: list[dict]):
    t = _table("name", "class", "owner", "title")
    for d in docs:
        title = Styled(str(d.get("title") or ""))
        if d.get("title_zh"):
            title.append("\n" + str(d["title_zh"]), style="dim")
        t.add_row(_t(d.get("name")), _t(d.get("classification")), _t(d.get("owner")), title)
    return Group(t, Styled(f"{len(docs)} dataset(s); `sandbox datasets NAME` shows one's columns",
                         style="dim"))


def _column_values(c: dict) -> str:
    if c.get("bounds") is not None:
        lo, hi = c["bounds"]
        return f"{num(lo)} .. {num(hi)}"
    cats = c.get("categories")
    if cats:
        shown = ", ".join(map(str, cats[:6]))
        return shown + (f" (+{len(cats) - 6} more)" if len(cats) > 6 else "")
    return ""


def dataset(d: dict):
    head = Styled()
    head.append(f"{d.get('name')}", style="bold")
    head.append(f"  {d.get('title') or ''}\n")
    if d.get("title_zh"):
        head.append(f"{d['title_zh']}\n")
    head.append(f"owner {d.get('owner')} · classification {d.get('classification')} · "
                f"privacy unit {d.get('privacy_unit')} (at most {d.get('max_rows_per_unit')} rows each) · "
                f"version {str(d.get('version') or '')[:12]}\n")
    if d.get("description"):
        head.append(str(d["description"]) + "\n")
    t = _table("column", "kind", "type", "public values", "description")
    for c in d.get("columns") or []:
        t.add_row(_t(c.get("name")), _t(c.get("kind")), _t(c.get("type")), _t(_column_values(c)),
                  _t(c.get("description")))
    return Group(head, t)


# ------------------------------------------------------------------ submit --dry-run
def reason_text(r) -> str:
    if isinstance(r, dict):
        return str(r.get("text") or r.get("message") or r.get("code") or r)
    return str(r)


def submitted(doc: dict):
    job = doc.get("job") or {}
    if not doc.get("admitted"):
        out = Styled(f"Job {job.get('id')} was refused at admission:\n", style="red")
        for r in doc.get("reasons") or []:
            out.append(f"  - {reason_text(r)}\n", style="default")
        return out
    return Styled(f"Submitted job {job.get('id')} ({job.get('state')}): ε {num(job.get('epsilon'))} reserved "
                f"on {job.get('dataset')}.\nFollow it with `sandbox status {job.get('id')} --wait`.")


# ------------------------------------------------------------------ jobs and status
def status_line(job: dict, now: datetime | None = None) -> str:
    """The one line `--wait` keeps up to date, from the fields of the caller's own view:
    for an operator the coarse state and the outcome time fixed before the run; a job still
    "in progress" once that time has passed is with compliance (what the API already shows)."""
    now = now or datetime.now(timezone.utc)
    state = job.get("state")
    after = job.get("outcome_visible_after")
    if state == "awaiting_review":
        return "waiting for review"
    if state == "awaiting_approval":
        return "waiting for the data owner to approve the run"
    if state in ("submitted", "queued"):
        return f"{state}: waiting for a worker"
    if state == "in_progress" and after:
        left = (datetime.fromisoformat(after) - now).total_seconds()
        if left > 0:
            return f"in progress: the outcome may be visible in {duration(left)}"
        return "waiting for review"
    if state in FINAL:
        return state
    return str(state)


def jobs(docs: list[dict]):
    t = _table("job", "dataset", "mode", "state", "ε", "created (UTC)", "purpose")
    for j in docs:
        t.add_row(_t(j.get("id")), _t(j.get("dataset")), _t(j.get("mode")), _t(j.get("state")),
                  num(j.get("epsilon")), when(j.get("created_at"), zone=False), _t(j.get("purpose")))
    return Group(t, Styled(f"{len(docs)} job(s); `sandbox status JOB` shows one", style="dim"))


def job(j: dict, now: datetime | None = None):
    t = Table(box=None, show_header=False, pad_edge=False)
    t.add_column(style="bold", no_wrap=True)
    t.add_column()
    rows = [("job", j.get("id")), ("state", j.get("state")),
            ("dataset", j.get("dataset")), ("mode", j.get("mode")), ("purpose", j.get("purpose")),
            ("operator", j.get("operator")),
            ("cost", f"ε {num(j.get('epsilon'))}, δ {num(j.get('delta'))}"),
            ("created", when(j.get("created_at")))]
    if j.get("outcome_visible_after"):
        rows.append(("outcome visible", when(j["outcome_visible_after"])))
    for key in ("updated_at",):
        if j.get(key):
            rows.append(("updated", when(j[key])))
    for key in ("attempts", "backend", "reviewers_required"):
        if j.get(key) is not None:
            rows.append((key.replace("_", " "), j[key]))
    if j.get("state") not in FINAL:
        rows.append(("now", status_line(j, now)))
    elif j.get("state") == "released":
        rows.append(("next", f"sandbox download {j.get('id')} -o DIR"))
    if j.get("message"):
        rows.append(("message", j["message"]))
    for k, v in rows:
        t.add_row(k, _t(v))
    return t


# ------------------------------------------------------------------ budget
def _budget_table(b: dict, title: str):
    # The same fields as the web UI's budget gauge, the period's refresh date included.
    t = _table("", "spent", "reserved", "available", "refreshes", title=title)

    def row(label, prefix):
        available = b.get(f"{prefix}available")
        refresh = day(b.get("period_end")) if prefix.startswith("period") and b.get("period_end") else "never"
        t.add_row(label, num(b.get(f"{prefix}spent")), num(b.get(f"{prefix}reserved")),
                  "no cap" if available is None else num(available), refresh)
    row("ε this period", "period_")
    row("ε lifetime", "lifetime_")
    # δ only where the policy grants some (pure-ε policies would show rows of zeros).
    if any(b.get(k) for k in ("period_delta_spent", "period_delta_reserved", "period_delta_available")):
        row("δ this period", "period_delta_")
        row("δ lifetime", "lifetime_delta_")
    return t


def budget(b: dict):
    parts = [_budget_table(b, f"Privacy budget of {b.get('operator')} on {b.get('dataset')}")]
    line = Styled(f"Available now: ε {num(b.get('epsilon_available'))}, δ {num(b.get('delta_available'))}. "
                f"Period {day(b.get('period_start'))} to {day(b.get('period_end'))}; "
                f"refreshes {day(b.get('period_end'))}.")
    if b.get("period_jobs") is not None:
        left = b.get("period_jobs_available")
        line.append(f" Jobs this period: {b['period_jobs']}" + (f" ({left} more allowed)." if left is not None
                                                                else "."))
    parts.append(line)
    if b.get("dataset_cap_blocks"):
        parts.append(Styled("The dataset-wide cap blocks new jobs until it refreshes.", style="yellow"))
    wide = b.get("dataset_wide")
    if wide:
        parts.append(_budget_table(wide, "Dataset-wide (every operator; owner and compliance only)"))
    return Group(*parts)


# ------------------------------------------------------------------ review
def review_list(docs: list[dict], now: datetime | None = None):
    now = now or datetime.now(timezone.utc)
    t = _table("job", "dataset", "mode", "operator", "ε", "waiting", "votes", "purpose")
    for j in docs:
        try:
            waited = duration((now - datetime.fromisoformat(j["created_at"])).total_seconds())
        except (KeyError, TypeError, ValueError):
            waited = "-"
        t.add_row(_t(j.get("id")), _t(j.get("dataset")), _t(j.get("mode")), _t(j.get("operator")),
                  num(j.get("epsilon")), waited, _t(j.get("reviewers_required")), _t(j.get("purpose")))
    return Group(t, Styled(f"{len(docs)} job(s) waiting; `sandbox review show JOB` shows outputs and findings",
                         style="dim"))


def review_show(d: dict):
    parts = [job(d)]
    if d.get("spec_diff"):
        parts.append(Styled(f"Spec compared with the operator's last job: {str(d['spec_diff'])[:300]}"))
    out_t = _table("output", "size", "checks")
    for o in d.get("outputs") or []:
        checks = o.get("checks") or []
        summary = f"{sum(c.get('status') == 'pass' for c in checks)} of {len(checks)} pass" if checks else "no checks"
        for status in ("fail", "needs_review"):
            names = [str(c.get("name") or "?") for c in checks if c.get("status") == status]
            summary += f"; {status.replace('_', ' ')}: {', '.join(names)}" if names else ""
        size = o.get("size") if o.get("size") is not None else len(o.get("content") or "")
        out_t.add_row(_t(o.get("name")), _t(size), _t(summary))
    parts.append(out_t)
    findings = d.get("findings") or []
    if findings:
        f_t = _table("output", "finding to sign off", "detail")
        for f in findings:
            f_t.add_row(_t(f.get("output")), _t(f.get("check")), _t(f.get("message") or f.get("detail") or ""))
        parts.append(f_t)
    else:
        parts.append(Styled("No findings need a sign-off."))
    votes = d.get("reviews") or []
    # While a vote is open, reviewers see only how many votes there are (blind voting).
    count = votes[0]["count"] if len(votes) == 1 and "count" in votes[0] else len(votes)
    parts.append(Styled(f"Votes so far: {count} of {d.get('reviewers_required')} required. "
                      "`--json` prints the outputs' contents and the spec.", style="dim"))
    return Group(*parts)


def reasons(docs: list[dict]):
    t = _table("code", "what the operator reads")
    for r in docs:
        t.add_row(_t(r.get("code")), _t(r.get("text")))
    return t


def outcome(j: dict):
    """After a decision or a cancel: the job's new state in one line."""
    line = Styled(f"Job {j.get('id')}: {j.get('state')}")
    if j.get("message"):
        line.append(f" ({j['message']})")
    return line


# ------------------------------------------------------------------ owners
def consumption(d: dict):
    t = _table("period", "operator", "jobs", "ε charged", "ε reserved", "ε returned",
               title=f"Budget consumption on {d.get('dataset')}")
    for p in d.get("periods") or []:
        t.add_row(day(p.get("period_start")), _t(p.get("operator")), _t(p.get("jobs")),
                  num(p.get("epsilon_charged")), num(p.get("epsilon_reserved")), num(p.get("epsilon_released")))
    parts = [t]
    if d.get("dataset_wide"):
        parts.append(_budget_table(d["dataset_wide"], "Dataset-wide"))
    return Group(*parts)

