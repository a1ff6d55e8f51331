"""Web UI for the three roles under /ui: server-rendered pages, htmx for live parts.

Views parse the form, call one service method with the signed-in user, render a
template. Operator pages show only what the services' operator views return, so
nothing derived from data appears before release. The only other reads are public
ones (policy text, which the API also serves to every role) and pure domain calls
(policy validation and diff, DP error arithmetic).

One blueprint per URL area, each nested in the /ui blueprint of site.py, whose hooks (CSRF,
security headers) and HTML error handlers therefore cover every area. Endpoints read
`ui.<area>.<view>`; the sign-in pages are the /ui blueprint's own (`ui.login`, `ui.home`).
"""
from __future__ import annotations

from sandbox.controller.web.ui import account  # noqa: F401 - adds the sign-in pages to bp itself
from sandbox.controller.web.ui import (approvals, audit, builder, catalog, jobs, landing, owner_data, policies,
                                       programs, releases, reviews, usage)
from sandbox.controller.web.ui import notices
from sandbox.controller.web.ui.i18n import init_babel
from sandbox.controller.web.ui.site import bp

AREAS = (catalog.bp, builder.bp, programs.bp, jobs.bp, releases.bp, approvals.bp, policies.bp, usage.bp,
         reviews.bp, audit.bp, owner_data.bp, landing.bp, notices.bp)
# Nesting is declared once, here, as routes are by their decorators: Flask refuses to add
# to a blueprint after its first registration on an app, and tests create many apps.
for _area in AREAS:
    bp.register_blueprint(_area)

__all__ = ["bp", "init_app"]


def init_app(app) -> None:
    """Babel (locale per session, Chinese by default) and the /ui blueprint with its areas."""
    init_babel(app)
    app.register_blueprint(bp)
