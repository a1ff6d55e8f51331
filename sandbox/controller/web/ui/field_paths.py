"""Field paths of refusal messages in the page's language.

The parsers name what to fix by its path in the spec, manifest or policy, as the YAML/JSON has
it: ``queries[0].epsilon``, ``columns[2].bounds``, ``licences[1].expires``. That is exact for
whoever edits the file, and stays so on English pages; a Chinese page shows it as words:
``第 1 个查询 · ε``, ``第 3 列 · 取值范围`` (positions counted from 1). A key not in the tables
below is a name the user wrote or a rare one: it is left as it is (as code in HTML).
`i18n.localized` applies this to every message parameter named ``field``.
"""
from __future__ import annotations

import re

from flask_babel import get_locale, gettext as _, lazy_gettext as _l
from markupsafe import Markup, escape

# A list in a spec, manifest or policy: its n-th item (n counted from 1), as the page says it.
ITEM_LABELS = {
    "queries": lambda n: _("query %(n)s", n=n), "columns": lambda n: _("column %(n)s", n=n),
    "tables": lambda n: _("table %(n)s", n=n), "models": lambda n: _("model %(n)s", n=n),
    "outputs": lambda n: _("output %(n)s", n=n), "where": lambda n: _("filter %(n)s", n=n),
    "aggregates": lambda n: _("aggregate %(n)s", n=n), "regressors": lambda n: _("regressor %(n)s", n=n),
    "group_by": lambda n: _("group-by column %(n)s", n=n), "bins": lambda n: _("bin edge %(n)s", n=n),
    "default": lambda n: _("default value %(n)s", n=n), "sql": lambda n: _("SQL query %(n)s", n=n),
    "licences": lambda n: _("licence %(n)s", n=n), "purposes": lambda n: _("purpose %(n)s", n=n),
    "categories": lambda n: _("category %(n)s", n=n), "modes": lambda n: _("mode %(n)s", n=n),
    "forbidden_columns": lambda n: _("forbidden column %(n)s", n=n),
}

KEY_LABELS = {
    # specs
    "mode": _l("mode"), "dataset": _l("dataset"), "purpose": _l("purpose"), "queries": _l("queries"),
    "name": _l("name"), "statistic": _l("statistic"), "column": _l("column"), "group_by": _l("group by"),
    "epsilon": "ε", "bins": _l("bins"), "q": _l("quantile q"), "where": _l("filters"),
    "op": _l("operator (comparison)"),
    "value": _l("value"), "sql": "SQL", "program": _l("program"), "entrypoint": _l("entry point"),
    "outputs": _l("outputs"), "tables": _l("tables"), "models": _l("models"),
    "timeout_seconds": _l("time limit (seconds)"),
    "aggregates": _l("aggregates"), "aggregate": _l("aggregation"), "mitigation": _l("mitigation"),
    "round_base": _l("rounding base"), "family": _l("model family"), "dependent": _l("dependent variable"),
    "regressors": _l("regressors"), "lower": _l("lower bound"), "upper": _l("upper bound"),
    "default": _l("default values"), "blocks": _l("blocks"), "block_timeout_seconds": _l("block time limit (seconds)"),
    "type": _l("file type"), "table_kind": _l("table kind"), "model_df": _l("model degrees of freedom"),
    # manifest
    "columns": _l("columns"), "bounds": _l("value range"), "categories": _l("categories"), "kind": _l("kind"),
    "access": _l("access"), "modes": _l("modes"), "classification": _l("classification"),
    "privacy_unit": _l("privacy unit"), "max_rows_per_unit": _l("rows per unit at most"),
    # policy
    "release": _l("release"), "run_approval": _l("run approval"), "licences": _l("licences"),
    "operator": _l("licensed operator"), "expires": _l("expires"), "purposes": _l("purposes"),
    "revoked": _l("revoked"), "budget": _l("budget"), "epsilon_per_period": _l("ε per period"),
    "refresh": _l("refresh"), "lifetime_epsilon": _l("lifetime ε"), "delta_per_period": _l("δ per period"),
    "lifetime_delta": _l("lifetime δ"), "min_epsilon_per_query": _l("minimum ε per query"),
    "jobs_per_period": _l("jobs per period"), "dataset_epsilon_per_period": _l("dataset-wide ε per period"),
    "dataset_lifetime_epsilon": _l("dataset-wide lifetime ε"),
    "dataset_delta_per_period": _l("dataset-wide δ per period"),
    "dataset_lifetime_delta": _l("dataset-wide lifetime δ"), "min_group_size": _l("minimum group size"),
    "forbidden_columns": _l("forbidden columns"), "limits": _l("resource limits"), "memory_mb": _l("memory (MB)"),
    "cpus": _l("CPUs"), "wall_seconds": _l("run time limit (seconds)"), "output_bytes": _l("output size (bytes)"),
    "policy_changes": _l("policy changes"),
}

_SEGMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)?((?:\[\d+\])*)")
SEPARATOR = " · "


def _parts(path: str) -> list[tuple[str, bool]] | None:
    """(words, known) per step of the path; None when it is not a path (then shown as it is)."""
    out: list[tuple[str, bool]] = []
    for segment in path.split("."):
        m = _SEGMENT.fullmatch(segment)
        if not segment or not m:
            return None
        key, indexes = m.group(1), [int(i) for i in re.findall(r"\d+", m.group(2))]
        if key and indexes and key in ITEM_LABELS:
            out.append((str(ITEM_LABELS[key](indexes[0] + 1)), True))
            indexes = indexes[1:]
        elif key:
            label = KEY_LABELS.get(key)
            out.append((str(label), True) if label is not None else (key, False))
        out += [(_("item %(n)s", n=i + 1), True) for i in indexes]
    return out


def _english_page() -> bool:
    locale = get_locale()
    return locale is not None and locale.language == "en"


def field_path(path) -> str:
    """A field path as plain text in the page's language: unchanged on English pages, as words on
    Chinese ones (unknown keys kept as written)."""
    if not isinstance(path, str) or not path or _english_page():
        return path
    parts = _parts(path)
    if parts is None or not any(known for _w, known in parts):
        return path
    return SEPARATOR.join(words for words, _known in parts)


def field_path_html(path) -> Markup:
    """field_path for a template: what the tables do not know stays code (<code>)."""
    if not isinstance(path, str) or not path:
        return Markup("")
    parts = None if _english_page() else _parts(path)
    if parts is None or not any(known for _w, known in parts):
        return Markup("<code>%s</code>") % path
    return Markup(SEPARATOR).join(escape(w) if known else Markup("<code>%s</code>") % w for w, known in parts)
