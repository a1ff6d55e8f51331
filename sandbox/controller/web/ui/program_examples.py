"""A working starting point for a program or reviewed job: the example shipped in this package
(copies of the operators' examples in the repository's jobs/) when one fits the dataset and mode,
else a contract and program built from the public manifest."""
from __future__ import annotations

import json
import re
from importlib import resources

# dataset, mode and purpose come from the page's own fields, so the contract text holds the rest.
FORM_SPEC_KEYS = ("mode", "dataset", "purpose")
# As in the shipped example: "auto" can mean a thousand blocks (one boxed run each) on a large dataset.
EXAMPLE_BLOCKS = 100


def shipped_examples():
    """The package's examples folder (read through importlib.resources: it works installed too)."""
    return resources.files(__package__).joinpath("examples")


def program_example(ds: dict, mode: str) -> tuple[str, str, str | None]:
    """(contract text, program code, purpose or None) that pass the checks for this dataset and mode."""
    folder = shipped_examples()
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".json"):
            continue
        try:
            spec = json.loads(entry.read_text(encoding="utf-8"))
            if spec.get("mode") != mode or spec.get("dataset") != ds["name"]:
                continue
            code = folder.joinpath(spec["program"]).read_text(encoding="utf-8")
        except (OSError, ValueError, KeyError, TypeError):
            continue
        contract = {k: v for k, v in spec.items() if k not in FORM_SPEC_KEYS + ("program",)}
        return json.dumps(contract, ensure_ascii=False, indent=2), code, spec.get("purpose")
    contract, code = _from_manifest(ds, mode)
    return json.dumps(contract, ensure_ascii=False, indent=2), code, None


def _identifier(name: str) -> str:
    out = re.sub(r"[^A-Za-z0-9_]", "_", name).strip("_") or "value"
    return out if out[0].isalpha() else "v_" + out


def _from_manifest(ds: dict, mode: str) -> tuple[dict, str]:
    cols = [c for c in ds["columns"] if c["name"] != ds["privacy_unit"]]
    numeric = [c for c in cols if c["kind"] == "numeric" and c.get("bounds")]
    categorical = [c for c in cols if c["kind"] == "categorical"]
    if mode == "reviewed":
        col = (categorical or numeric or cols or ds["columns"])[0]["name"]
        out = f"rows_by_{_identifier(col)}.csv"
        contract = {"entrypoint": "analyse", "outputs": [{"name": out, "type": "csv", "table_kind": "frequency"}],
                    "timeout_seconds": 120}
        code = ("import os\n\n\ndef analyse(df, out):\n"
                "    # Only the files declared in the contract leave, each after the disclosure checks and review.\n"
                f"    counts = df.groupby({col!r}).size().reset_index(name=\"rows\")\n"
                f"    counts.to_csv(os.path.join(out, {out!r}), index=False)\n")
    elif numeric:
        col = numeric[0]
        lo, hi = col["bounds"]
        contract = {"entrypoint": "analyse",
                    "outputs": [{"name": f"mean_{_identifier(col['name'])}", "lower": lo, "upper": hi}],
                    "default": [(lo + hi) / 2], "aggregate": "mean", "blocks": EXAMPLE_BLOCKS, "epsilon": 1.0,
                    "block_timeout_seconds": 10}
        code = ("def analyse(df):\n"
                "    # One number per declared output, in order; a block that raises contributes the default.\n"
                f"    return [float(df[{col['name']!r}].mean())]\n")
    else:
        col = (categorical or cols or ds["columns"])[0]
        value = (col.get("categories") or [""])[0]
        contract = {"entrypoint": "analyse",
                    "outputs": [{"name": f"share_{_identifier(col['name'])}", "lower": 0, "upper": 1}],
                    "default": [0.5], "aggregate": "mean", "blocks": EXAMPLE_BLOCKS, "epsilon": 1.0,
                    "block_timeout_seconds": 10}
        code = ("def analyse(df):\n"
                "    # One number per declared output, in order; a block that raises contributes the default.\n"
                f"    return [float((df[{col['name']!r}] == {value!r}).mean())]\n")
    return contract, code
