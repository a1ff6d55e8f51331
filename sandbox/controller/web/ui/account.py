"""Signing in and out, one's own password, the language switch: routes of the /ui blueprint itself."""
from __future__ import annotations

from flask import flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from sandbox.controller.web import auth
from sandbox.controller.web.ui.common import services, user
from sandbox.controller.web.ui.i18n import LANGUAGES
from sandbox.controller.web.ui.site import bp
from sandbox.core.states import COMPLIANCE, OPERATOR, OWNER

# Every role starts on its landing page (ui/landing.py), which links on to the role's main pages.
START_PAGE = {OPERATOR: "ui.landing.index", OWNER: "ui.landing.index", COMPLIANCE: "ui.landing.index"}


@bp.get("/")
def home():
    u = user()
    if u is None:
        return redirect(url_for("ui.login"))
    return redirect(url_for(START_PAGE[u.role]))


@bp.route("/login", methods=["GET", "POST"])
def login():
    error = None
    if request.method == "POST":
        u = auth.check_credentials(services(), request.form.get("name", ""), request.form.get("password", ""))
        if u is not None:
            auth.log_in(u)
            return redirect(auth.safe_next(request.form.get("next"), url_for("ui.home")))
        if auth.sign_in_blocked(request.form.get("name", "")):
            error = _("Too many wrong passwords for this name: signing in is paused for up to %(m)s minutes.",
                      m=int(auth.FAILURE_WINDOW.total_seconds() // 60))
        else:
            error = _("Wrong name or password.")
    return render_template("login.html", error=error, next=request.values.get("next", "")), (401 if error else 200)


@bp.post("/logout")
def logout():
    auth.log_out()
    flash(_("You are signed out."), "info")
    return redirect(url_for("ui.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@auth.login_required()
def password():
    error = None
    if request.method == "POST":
        f = request.form
        u = user()
        new = f.get("new_password", "")
        # The current password is checked first (and always hashed) so every refusal costs the same.
        if auth.check_credentials(services(), u.name, f.get("current_password", "")) is None:
            error = (_("Too many wrong passwords: password changes are paused for up to %(m)s minutes.",
                       m=int(auth.FAILURE_WINDOW.total_seconds() // 60))
                     if auth.sign_in_blocked(u.name) else _("The current password is wrong."))
        elif len(new) < auth.MIN_PASSWORD_CHARS:
            error = _("The new password needs at least %(n)s characters.", n=auth.MIN_PASSWORD_CHARS)
        elif new != f.get("new_password2", ""):
            error = _("The two new passwords differ.")
        elif new == f.get("current_password", ""):
            error = _("The new password is the same as the current one.")
        else:
            auth.set_password(services(), u.name, new, actor=u.name)
            # set_password ended every session of this user, this one included: start a fresh one here.
            fresh = auth.check_credentials(services(), u.name, new)
            if fresh is None:  # changed again meanwhile, or deactivated: sign in anew
                return redirect(url_for("ui.login"))
            auth.log_in(fresh)
            flash(_("Your password is changed. Sessions signed in elsewhere have ended."), "ok")
            return redirect(url_for("ui.home"))
    return render_template("password.html", error=error, min_chars=auth.MIN_PASSWORD_CHARS), (400 if error else 200)


@bp.get("/lang/<code>")
def set_language(code):
    if code in LANGUAGES:
        session["lang"] = code
    return redirect(auth.safe_next(request.args.get("next"), url_for("ui.home")))
