"""`sandbox notices`: the caller's inbox (站内信) over the API, marking read; on the server,
`sandbox notices send-mail` (the sweeper's periodic notices round, for cron) and
`sandbox user-email NAME [ADDRESS]` (where a user's notices are mailed), both admin.py's."""
from __future__ import annotations

from rich.console import Group
from rich.text import Text as Styled

from sandbox.controller.cli import admin
from sandbox.controller.cli.common import UsageError, print_json, show
from sandbox.controller.cli.render import _t, _table, when


def add_parser(sub) -> None:
    s = sub.add_parser("notices", help="your inbox: list (default) | read ID | read --all | send-mail (server)")
    s.add_argument("action", nargs="?", default="list", choices=["list", "read", "send-mail"])
    s.add_argument("notice_id", nargs="?")
    s.add_argument("--unread", action="store_true", help="list unread notices only")
    s.add_argument("--all", action="store_true", help="with read: mark every notice read")
    s.add_argument("--json", action="store_true", help="print the API's JSON document instead of a summary")
    s.set_defaults(func=cmd_notices)
    s = sub.add_parser("user-email", help="administrator: set where a user's notices are mailed (no address: "
                                          "clear it); mail goes out when SANDBOX_SMTP_URL is set")
    s.add_argument("name")
    s.add_argument("address", nargs="?")
    s.set_defaults(func=admin.cmd_user_email)


def _client(args):
    from sandbox.controller.cli.operator import _client as client
    return client(args)


def render(doc: dict):
    t = _table("notice", "when (UTC)", "", "kind", "text")
    for n in doc.get("notices", []):
        t.add_row(_t(n.get("id")), when(n.get("at"), zone=False), "" if n.get("read") else "●",
                  _t(n.get("kind")), _t(n.get("message")))
    return Group(t, Styled(f"{len(doc.get('notices', []))} notice(s), {doc.get('unread', 0)} unread; "
                           "`sandbox notices read ID` (or --all) marks read", style="dim"))


def cmd_notices(args) -> int:
    if args.action == "send-mail":
        return admin.cmd_notices_send_mail(args)   # on the server, not over the API
    client = _client(args)
    if args.action == "read":
        if args.all == bool(args.notice_id):
            raise UsageError("notices read: give one notice id, or --all")
        doc = client.read_notice(args.notice_id) if args.notice_id else {"marked_read": client.read_all_notices()}
        if args.json:
            print_json(doc)
        else:
            print(f"{doc['marked_read']} notice(s) marked read" if args.all else f"notice {doc['id']}: read")
        return 0
    show(args, client.notices(unread=args.unread), render)
    return 0
