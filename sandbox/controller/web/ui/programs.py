"""Program jobs (program and reviewed modes): contract, code and purpose in a form, dry run, submit."""
from __future__ import annotations

import json

from flask import Blueprint, render_template, request
from flask_babel import gettext as _, lazy_gettext as _l

from sandbox.controller.web import auth
from sandbox.controller.web.ui.common import current_policy, dry_run, services, submit_and_redirect, user
from sandbox.controller.web.ui.program_examples import program_example
from sandbox.controller.web.ui.i18n import localized
from sandbox.core.errors import InvalidInput
from sandbox.core.specs.common import load_spec_text
from sandbox.core.states import OPERATOR

bp = Blueprint("programs", __name__)

PROGRAM_MODES = ("program", "reviewed")
MODE_LABELS = {"program": _l("Program (sample-and-aggregate, DP)"),
               "reviewed": _l("Reviewed (exact files, human review, not DP)")}


def _program_datasets() -> list[dict]:
    """Datasets whose applied policy allows a program or reviewed job and licenses this
    operator. Revoked or expired licences stay listed: the dry run then says why a job
    would be refused, which helps more than a dataset silently missing."""
    out = []
    for d in services().views.list_datasets():
        policy = current_policy(d["name"])
        if policy is None:
            continue
        modes = [m for m in PROGRAM_MODES if m in policy["policy"].modes]
        lic = policy["policy"].licence(user().name)
        if modes and lic is not None:
            out.append({**d, "modes": modes, "purposes": sorted(lic.purposes)})
    return out


def _program_context(dataset_name: str | None, mode: str | None) -> dict:
    eligible = _program_datasets()
    error = None
    chosen = next((d for d in eligible if d["name"] == dataset_name), None)
    if dataset_name and chosen is None:
        error = _("Dataset %(d)s does not accept program or reviewed jobs from you (its policy allows neither "
                  "mode, or you hold no licence for it).", d=dataset_name)
    elif not eligible:
        error = _("No dataset accepts program or reviewed jobs from you: the data owners' policies allow neither "
                  "mode for your licences. Use a query job, or ask a data owner.")
    ds = None
    pick = chosen or (eligible[0] if eligible else None)
    if pick is not None:
        ds = {**services().views.get_dataset(pick["name"]), "modes": pick["modes"], "purposes": pick["purposes"]}
        if mode not in ds["modes"]:
            if mode in PROGRAM_MODES and error is None:
                error = _("The policy of %(d)s does not allow %(m)s mode.", d=ds["name"], m=mode)
            mode = ds["modes"][0]
    return {"eligible": eligible, "ds": ds, "mode": mode if ds else None, "error": error,
            "mode_labels": MODE_LABELS}


def _program_submission(dataset: str, mode: str, purpose: str, spec_text: str, code: str) -> dict:
    """The API's body {"spec": ..., "code": ...} from the page's fields."""
    spec = load_spec_text(spec_text)
    if not isinstance(spec, dict):
        raise InvalidInput(_("The contract must be a JSON or YAML object (a mapping of keys to values)."), "spec")
    wanted = {"mode": mode, "dataset": dataset, "purpose": purpose.strip()}
    for key, value in wanted.items():
        if key in spec and spec[key] != value:
            # A pasted spec that disagrees with the fields: say so rather than pick one silently.
            raise InvalidInput(_("The contract says %(k)s: %(v)s, but the form says %(f)s. Remove %(k)s from the "
                                 "contract or make the two agree.", k=key, v=json.dumps(spec[key], ensure_ascii=False),
                                 f=json.dumps(value, ensure_ascii=False)), key)
    return {"spec": {**spec, **wanted}, "code": code}


def _uploaded_code() -> str | None:
    """The uploaded file's text, which replaces the text area's, or None without a file."""
    f = request.files.get("code_file")
    if f is None or not f.filename:
        return None
    data = f.read()
    if not data:
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput(_("code: the uploaded file is not UTF-8 text."), "code") from None


def _render_program(ctx: dict, status: int = 200, **kw):
    return render_template("program_new.html", **ctx, **kw), status


@bp.get("/programs/new")
@auth.login_required(OPERATOR)
def new():
    ctx = _program_context(request.args.get("dataset"), request.args.get("mode"))
    form = {"purpose": "", "spec_text": "", "code": ""}
    if ctx["ds"]:
        form["spec_text"], form["code"], purpose = program_example(ctx["ds"], ctx["mode"])
        purposes = ctx["ds"]["purposes"]
        form["purpose"] = purpose if purpose in purposes else (purposes[0] if purposes else "")
    asked = request.args.get("dataset") or request.args.get("mode")
    return _render_program(ctx, 400 if ctx["error"] and asked else 200, form=form)


@bp.post("/programs")
@auth.login_required(OPERATOR)
def submit():
    f = request.form
    ctx = _program_context(f.get("dataset"), f.get("mode"))
    # Browsers send text areas with CRLF line breaks; the code's hash should match the operator's file.
    form = {"purpose": f.get("purpose", ""), "spec_text": f.get("spec_text", "").replace("\r\n", "\n"),
            "code": f.get("code", "").replace("\r\n", "\n")}
    if ctx["error"] or not ctx["ds"]:
        return _render_program(ctx, 400, form=form)
    try:
        uploaded = _uploaded_code()
        if uploaded is not None:
            form["code"] = uploaded
        raw = _program_submission(ctx["ds"]["name"], ctx["mode"], form["purpose"], form["spec_text"], form["code"])
    except InvalidInput as e:
        return _render_program(ctx, 400, form=form, preview={"ok": False, "error": localized(e)})
    if f.get("action") == "submit":
        return submit_and_redirect(raw, lambda err: _render_program(ctx, 400, form=form,
                                                                    preview={"ok": False, "error": err}))
    preview = dry_run(raw)
    return _render_program(ctx, 200 if preview["ok"] else 400, form=form, preview=preview)
