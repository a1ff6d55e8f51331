"""`sandbox policy versions DATASET` (the version history: state, who, when, why) and
`sandbox policy decide DATASET VERSION approve|decline --reason` (compliance: the second
approval of a proposed change, where the policy in force asks for one), over the API."""
from __future__ import annotations

from rich.console import Group
from rich.text import Text as Styled

from sandbox.controller.cli.common import UsageError, show
from sandbox.controller.cli.render import _t, _table, when


def add_parsers(psub) -> None:
    """The two subcommands, under the `policy` group of cli/__init__.py."""
    t = psub.add_parser("versions", help="the dataset's policy versions: state, who, when, why")
    t.add_argument("dataset")
    t.add_argument("--json", action="store_true", help="print the API's JSON document instead of a table")
    t.set_defaults(func=cmd_versions)
    t = psub.add_parser("decide", help="compliance: approve or decline a proposed policy version")
    t.add_argument("dataset")
    t.add_argument("version", type=int)
    t.add_argument("decision", choices=["approve", "decline"])
    t.add_argument("--reason", help="why (required; kept with the version and in the audit log)")
    t.add_argument("--json", action="store_true", help="print the API's JSON document instead of a line")
    t.set_defaults(func=cmd_decide)


def _client(args):
    from sandbox.controller.cli.operator import _client as client
    return client(args)


def render_versions(versions: list[dict]):
    t = _table("version", "state", "by", "at (UTC)", "reason")
    for v in versions:
        state = v.get("state")
        if v.get("decided_by"):
            state = f"{state} ({v['decided_by']})"
        t.add_row(_t(f"v{v.get('version')}"), _t(state), _t(v.get("applied_by")),
                  when(v.get("applied_at"), zone=False), _t(v.get("reason") or "-"))
    return Group(t, Styled("`sandbox policy versions DATASET --json` has each version's text and diff", style="dim"))


def cmd_versions(args) -> int:
    # The API's document ({"dataset", "versions"}); the client returns the list alone.
    doc = {"dataset": args.dataset, "versions": _client(args).policy_versions(args.dataset)}
    show(args, doc, lambda d: render_versions(d["versions"]))
    return 0


def cmd_decide(args) -> int:
    if not (args.reason or "").strip():
        raise UsageError("policy decide: say why with --reason \"...\" (it is kept with the version and in the audit log)")
    doc = _client(args).decide_policy(args.dataset, args.version, args.decision, args.reason)
    show(args, doc, lambda d: Styled(f"{d['dataset']} policy v{d['version']}: {d['state']}"))
    return 0
