"""Synthetic demo data and analyst mock data, both driven by public manifests.

Two different products live here:

* ``generate`` writes the *demo "real" dataset* that stands in for an owner's
  data inside the domain: realistic, streamed to Parquet chunk by chunk so that
  tens of millions of rows never sit in memory, seeded and deterministic.
* ``generate_mock`` builds *mock data for analysts* from the manifest alone
  (uniform draws within public bounds and categories). It never reads data.

Generated directories hold ``part-NNNNN.parquet`` files and a ``_SUCCESS``
marker; a directory without the marker is not a dataset (see ``is_ready``).
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import yaml

from sandbox.core.manifest import Column, Manifest, parse_manifest

# Bump when any generator's output changes for the same (manifest, rows, seed),
# so markers written by an older generator are not taken as up to date.
GENERATOR_VERSION = 1
MARKER = "_SUCCESS"
COMPRESSION = "zstd"

_ARROW_TYPES = {
    "int64": pa.int64(),
    "float64": pa.float64(),
    "string": pa.string(),
    "date": pa.date32(),
    "bool": pa.bool_(),
}
# Used only when a manifest's date column carries no public bounds.
_DEFAULT_DATE_BOUNDS = ("2000-01-01", "2024-12-31")

# Pseudonymous ids: an odd multiplier is a bijection modulo 2**40, so distinct
# counters give distinct, non-sequential ids (up to ~1.1e12 units).
_ID_MULT = 0x9E3779B97F4B
_ID_MOD = 1 << 40


@dataclass(frozen=True)
class GeneratedInfo:
    name: str
    path: Path
    rows: int
    seed: int
    files: tuple[str, ...]
    bytes: int
    seconds: float
    skipped: bool = False

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


# --------------------------------------------------------------------------- manifests

def load_manifest(path: str | Path) -> Manifest:
    """Read and validate one manifest YAML file."""
    with open(path, encoding="utf-8") as fh:
        return parse_manifest(yaml.safe_load(fh))


def arrow_schema(manifest: Manifest) -> pa.Schema:
    """The Arrow schema a dataset described by ``manifest`` must have."""
    return pa.schema([pa.field(c.name, _ARROW_TYPES[c.type]) for c in manifest.columns])


def _manifest_fingerprint(manifest: Manifest) -> str:
    blob = json.dumps(manifest.to_dict(), sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()


def _name_key(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def _rng(manifest: Manifest, seed: int, stream: str, index: int) -> np.random.Generator:
    # One independent stream per (dataset, purpose, chunk): chunks never share draws,
    # and mock data never shares draws with the demo dataset.
    return np.random.default_rng(np.random.SeedSequence(
        [seed & 0xFFFFFFFF, seed >> 32 & 0xFFFFFFFF, _name_key(manifest.name), _name_key(stream), index]))


# --------------------------------------------------------------------------- draw helpers

def _probs(categories: tuple, weights: dict, default: float | None = None) -> np.ndarray:
    """Probabilities for the manifest's categories; labels the table does not know
    get ``default`` (the mean known weight if None), so an edited manifest still works."""
    known = [weights[c] for c in categories if c in weights]
    if default is None:
        default = float(np.mean(known)) if known else 1.0
    w = np.array([float(weights.get(c, default)) for c in categories])
    return w / w.sum()


def _draw(rng: np.random.Generator, p: np.ndarray, n: int) -> np.ndarray:
    cdf = np.cumsum(p)
    cdf /= cdf[-1]
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(p) - 1)


def _day_bounds(col: Column) -> tuple[int, int]:
    lo, hi = col.bounds if col.bounds is not None else _DEFAULT_DATE_BOUNDS
    return int(np.datetime64(str(lo), "D").astype(np.int64)), int(np.datetime64(str(hi), "D").astype(np.int64))


def _num_bounds(col: Column, default=(0, 100)) -> tuple:
    return col.bounds if col.bounds is not None else default


def _scrambled_ids(start: int, count: int) -> np.ndarray:
    counters = np.arange(start + 1, start + count + 1, dtype=np.uint64)
    return ((counters * np.uint64(_ID_MULT)) % np.uint64(_ID_MOD)).astype(np.int64)


def _split_units(rng: np.random.Generator, n: int, unit_probs: Callable[[int], np.ndarray]) -> np.ndarray:
    """Rows per unit for exactly ``n`` rows: draw counts until they cover ``n``,
    then cut the last unit (it keeps at least one row)."""
    chunks, total = [], 0
    while total < n:
        c = unit_probs(max(16, n - total))
        chunks.append(c)
        total += int(c.sum())
    counts = np.concatenate(chunks)
    cum = np.cumsum(counts)
    last = int(np.searchsorted(cum, n))
    counts = counts[: last + 1].copy()
    counts[-1] -= int(cum[last]) - n
    return counts


def _category_array(categories: tuple, idx: np.ndarray, typ: pa.DataType) -> pa.Array:
    return pa.array(list(categories), type=typ).take(pa.array(idx.astype(np.int32)))


# --------------------------------------------------------------------------- generic columns

def _generic_column(col: Column, rng: np.random.Generator, n: int, row_start: int) -> pa.Array:
    """Uniform draws within public bounds/categories; uses nothing but ``col``."""
    typ = _ARROW_TYPES[col.type]
    if col.categories:
        return _category_array(col.categories, rng.integers(0, len(col.categories), n), typ)
    if col.kind == "identifier" or col.kind == "text":
        seq = np.arange(row_start + 1, row_start + n + 1, dtype=np.int64)
        if col.type == "int64":
            return pa.array(seq)
        if col.type == "float64":
            return pa.array(seq.astype(np.float64))
        return pa.array([f"{col.name}-{i}" for i in seq], type=typ)
    if col.type == "date" or col.kind == "date":
        lo, hi = _day_bounds(col)
        return pa.array(rng.integers(lo, hi + 1, n).astype("datetime64[D]"))
    if col.type == "bool":
        return pa.array(rng.random(n) < 0.5)
    lo, hi = _num_bounds(col)
    if col.type == "int64":
        return pa.array(rng.integers(math.ceil(lo), math.floor(hi) + 1, n, dtype=np.int64))
    if col.type == "float64":
        return pa.array(np.round(rng.uniform(lo, hi, n), 2).clip(lo, hi))
    return pa.array([str(v) for v in rng.integers(math.ceil(lo), math.floor(hi) + 1, n)], type=typ)


def _unit_column(manifest: Manifest, counts: np.ndarray, unit_start: int, scrambled: bool) -> pa.Array:
    col = manifest.column(manifest.privacy_unit)
    ids = _scrambled_ids(unit_start, len(counts)) if scrambled else np.arange(
        unit_start + 1, unit_start + len(counts) + 1, dtype=np.int64)
    ids = np.repeat(ids, counts)
    if col.type == "int64":
        return pa.array(ids)
    if col.type == "float64":
        return pa.array(ids.astype(np.float64))
    return pa.array([f"u{i:013d}" for i in ids], type=_ARROW_TYPES[col.type])


def _uniform_counts(rng: np.random.Generator, k: int) -> Callable[[int], np.ndarray]:
    # Mean (k+1)/2 rows per unit; ask for enough units to cover the remaining rows.
    return lambda rows: rng.integers(1, k + 1, int(rows / ((k + 1) / 2) * 1.1) + 1)


def _generic_chunk(manifest: Manifest, rng: np.random.Generator, n: int, unit_start: int,
                   row_start: int, *, scrambled: bool = False) -> tuple[dict, int]:
    counts = _split_units(rng, n, _uniform_counts(rng, manifest.max_rows_per_unit))
    cols = {manifest.privacy_unit: _unit_column(manifest, counts, unit_start, scrambled)}
    for col in manifest.columns:
        if col.name != manifest.privacy_unit:
            cols[col.name] = _generic_column(col, rng, n, row_start)
    return cols, len(counts)


def _to_table(manifest: Manifest, cols: dict, rng: np.random.Generator, n: int, row_start: int) -> pa.Table:
    """Assemble exactly the manifest's columns with the manifest's types. Columns a
    realistic generator did not produce (an edited manifest) fall back to generic draws."""
    schema = arrow_schema(manifest)
    arrays = []
    for col, field in zip(manifest.columns, schema):
        arr = cols.get(col.name)
        if arr is None:
            arr = _generic_column(col, rng, n, row_start)
        elif not isinstance(arr, pa.Array):
            arr = pa.array(arr)
        if arr.type != field.type:
            arr = arr.cast(field.type)
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, schema=schema)


# --------------------------------------------------------------------------- health_visits

# 2020 census resident population (10k people); Lanzhou also receives referrals.
_GANSU_POPULATION = {
    "兰州市": 435.9, "嘉峪关市": 31.3, "金昌市": 43.8, "白银市": 151.2, "天水市": 298.5,
    "武威市": 146.5, "张掖市": 113.1, "平凉市": 184.9, "酒泉市": 105.7, "庆阳市": 217.9,
    "定西市": 252.4, "陇南市": 240.7, "临夏回族自治州": 210.9, "甘南藏族自治州": 69.1,
}
_VISIT_DISTRICT = dict(_GANSU_POPULATION, 兰州市=435.9 * 1.3)

# Approximate population pyramid by 5-year band (0-4 ... 95-100), in percent.
_AGE_BANDS = np.array([5.6, 6.4, 6.2, 5.5, 5.3, 6.5, 8.0, 6.9, 6.6, 8.2,
                       8.4, 6.6, 5.0, 5.2, 3.6, 2.3, 1.4, 0.6, 0.2, 0.05])

# Share of outpatient/inpatient visits by ICD-10 chapter (respiratory and
# circulatory lead), with median outpatient cost in yuan.
_DIAG_WEIGHT = {
    "A00-B99": 2.5, "C00-D48": 3.0, "D50-D89": 0.8, "E00-E90": 5.0, "F00-F99": 1.5,
    "G00-G99": 3.0, "H00-H59": 3.0, "H60-H95": 1.2, "I00-I99": 14.0, "J00-J99": 20.0,
    "K00-K93": 11.0, "L00-L99": 3.5, "M00-M99": 8.0, "N00-N99": 5.0, "O00-O99": 4.0,
    "P00-P96": 0.5, "Q00-Q99": 0.3, "R00-R99": 6.0, "S00-T98": 6.0, "Z00-Z99": 6.0,
}
_DIAG_COST = {
    "A00-B99": 260, "C00-D48": 1800, "D50-D89": 300, "E00-E90": 260, "F00-F99": 280,
    "G00-G99": 300, "H00-H59": 200, "H60-H95": 180, "I00-I99": 320, "J00-J99": 180,
    "K00-K93": 240, "L00-L99": 150, "M00-M99": 220, "N00-N99": 260, "O00-O99": 900,
    "P00-P96": 1500, "Q00-Q99": 700, "R00-R99": 160, "S00-T98": 420, "Z00-Z99": 120,
}
_DIAG_INPATIENT = {"C00-D48": 3.0, "O00-O99": 4.0, "P00-P96": 4.0, "I00-I99": 1.8, "S00-T98": 1.5}
# Age bands for diagnosis mix: 0, 1-4, 5-14, 15-44, 45-64, 65+.
_AGE_CUTS = np.array([1, 5, 15, 45, 65])
_DIAG_AGE_MULT = {
    "I00-I99": (0.02, 0.02, 0.05, 0.4, 1.5, 2.6), "J00-J99": (2.0, 2.6, 2.0, 0.9, 0.7, 0.9),
    "C00-D48": (0.1, 0.2, 0.2, 0.5, 1.5, 2.0), "E00-E90": (0.2, 0.2, 0.3, 0.6, 1.6, 1.7),
    "M00-M99": (0.05, 0.1, 0.3, 0.9, 1.5, 1.6), "P00-P96": (40, 0.5, 0, 0, 0, 0),
    "Q00-Q99": (8, 4, 2, 0.7, 0.3, 0.2), "A00-B99": (2, 2.5, 1.6, 0.9, 0.7, 0.8),
    "S00-T98": (0.6, 1.3, 1.8, 1.3, 0.8, 0.8), "Z00-Z99": (3, 1.5, 1.2, 1.0, 0.9, 0.8),
    "O00-O99": (0, 0, 0, 1, 0, 0), "H00-H59": (0.5, 0.8, 1.5, 0.8, 1.1, 1.6),
}


def _visit_day_probs(lo: int, hi: int) -> np.ndarray:
    days = np.arange(lo, hi + 1)
    doy = (days.astype("datetime64[D]") - days.astype("datetime64[D]").astype("datetime64[Y]")).astype(np.int64)
    winter = 1 + 0.18 * np.cos(2 * np.pi * (doy - 15) / 365.25)
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    return winter * np.where(weekday >= 5, 0.6, 1.0)


def _health_chunk(manifest: Manifest, rng: np.random.Generator, n: int, unit_start: int,
                  row_start: int) -> tuple[dict, int]:
    k = manifest.max_rows_per_unit
    age_lo, age_hi = (int(b) for b in _num_bounds(manifest.column("age"), (0, 100))) \
        if manifest.has_column("age") else (0, 100)
    date_col = manifest.column("visit_date") if manifest.has_column("visit_date") else Column(
        "visit_date", "date", "date", bounds=("2023-01-01", "2024-12-31"))
    day_lo, day_hi = _day_bounds(date_col)

    # Persons: age from the pyramid; the elderly and infants visit more often.
    ages: list[np.ndarray] = []

    def person_counts(rows: int) -> np.ndarray:
        m = int(rows / 1.8) + 1
        band = _draw(rng, _AGE_BANDS / _AGE_BANDS.sum(), m)
        age = band * 5 + rng.integers(0, np.where(band == 19, 6, 5))
        ratio = np.select([age < 5, age < 45, age < 65], [0.55, 0.35, 0.5], 0.7)
        # P(j visits) proportional to ratio**(j-1) for j = 1..k, drawn by inversion.
        j = np.arange(k)
        cdf = np.cumsum(ratio[:, None] ** j, axis=1)
        counts = (rng.random(m)[:, None] * cdf[:, -1:] > cdf).sum(axis=1) + 1
        ages.append(age)
        return counts

    counts = _split_units(rng, n, person_counts)
    persons = len(counts)
    age0 = np.concatenate(ages)[:persons]
    female_p = np.select([age0 < 15, age0 < 80], [0.48, 0.52], 0.57)
    female = rng.random(persons) < female_p
    district = manifest.column("district").categories if manifest.has_column("district") else ()
    birthday = rng.integers(0, 365, persons)

    row_person = np.repeat(np.arange(persons), counts)
    day = day_lo + _draw(rng, _visit_day_probs(day_lo, day_hi), n)
    day = day[np.lexsort((day, row_person))]  # each person's visits in date order
    age = np.clip(age0[row_person] + (day - day_lo + birthday[row_person]) // 365, age_lo, age_hi)
    is_f = female[row_person]

    cols = {manifest.privacy_unit: _unit_column(manifest, counts, unit_start, scrambled=True)}
    cols["visit_date"] = pa.array(day.astype("datetime64[D]"))
    cols["age"] = age.astype(np.int64)
    if manifest.has_column("sex"):
        sex = manifest.column("sex").categories
        f_idx = sex.index("F") if "F" in sex else 0
        m_idx = sex.index("M") if "M" in sex else min(1, len(sex) - 1)
        cols["sex"] = _category_array(sex, np.where(is_f, f_idx, m_idx), pa.string())
    if district:
        cols["district"] = _category_array(
            district, _draw(rng, _probs(district, _VISIT_DISTRICT), persons)[row_person], pa.string())

    if manifest.has_column("diagnosis_group"):
        diag_cats = manifest.column("diagnosis_group").categories
        base = _probs(diag_cats, _DIAG_WEIGHT)
        month = (day.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)) % 12
        winter = (month <= 2) | (month >= 10)
        age_band = np.searchsorted(_AGE_CUTS, age, side="right")
        fertile = is_f & (age >= 15) & (age <= 49)
        group = age_band * 4 + winter * 2 + fertile
        diag = np.empty(n, dtype=np.int64)
        for g in np.unique(group):
            rows = np.flatnonzero(group == g)
            band, w, fert = g // 4, (g // 2) % 2, g % 2
            p = base.copy()
            for i, c in enumerate(diag_cats):
                p[i] *= _DIAG_AGE_MULT.get(c, (1,) * 6)[band]
                if c == "J00-J99" and w:
                    p[i] *= 1.6
                if c == "O00-O99" and not fert:
                    p[i] = 0.0
            if p.sum() == 0:
                p = base
            diag[rows] = _draw(rng, p / p.sum(), len(rows))
        cols["diagnosis_group"] = _category_array(diag_cats, diag, pa.string())

        if manifest.has_column("cost"):
            c_lo, c_hi = _num_bounds(manifest.column("cost"), (0, 10000))
            med = np.array([_DIAG_COST.get(c, 250) for c in diag_cats], dtype=np.float64)[diag]
            inp_mult = np.array([_DIAG_INPATIENT.get(c, 1.0) for c in diag_cats])[diag]
            p_inpatient = np.minimum(0.5, (0.05 + 0.002 * np.maximum(age - 50, 0)) * inp_mult)
            inpatient = rng.random(n) < p_inpatient
            log_med = np.log(np.where(inpatient, 6500 * np.sqrt(med / 250), med)) + 0.008 * (age - 40)
            sigma = np.where(inpatient, 0.6, 0.9)
            # Costs above the public bound are clamped to it, as the owner's system does.
            cost = np.exp(log_med + sigma * rng.standard_normal(n))
            cols["cost"] = np.clip(np.round(cost, 2), c_lo, c_hi)
    return cols, persons


# --------------------------------------------------------------------------- enterprise_registry

# Enterprises concentrate in the provincial capital and the richer prefectures:
# a blend of 2020 population and ~2023 GDP (100M yuan).
_GANSU_GDP = {
    "兰州市": 3487, "嘉峪关市": 360, "金昌市": 520, "白银市": 730, "天水市": 870,
    "武威市": 700, "张掖市": 620, "平凉市": 560, "酒泉市": 900, "庆阳市": 1100,
    "定西市": 600, "陇南市": 580, "临夏回族自治州": 380, "甘南藏族自治州": 250,
}
_ENTERPRISE_DISTRICT = {d: 0.5 * _GANSU_POPULATION[d] / 2501.9 + 0.5 * _GANSU_GDP[d] / 11657
                        for d in _GANSU_GDP}
_ENTITY_TYPE = {"个体工商户": 66, "有限责任公司": 24, "农民专业合作社": 5.5, "个人独资企业": 2.5,
                "合伙企业": 1.2, "股份有限公司": 0.5}
# GB/T 4754 sections: A agriculture ... F wholesale/retail ... S public administration.
_INDUSTRY = {"A": 6, "B": 0.6, "C": 7, "D": 0.6, "E": 6, "F": 36, "G": 5, "H": 11, "I": 3,
             "J": 0.6, "K": 2, "L": 6, "M": 3, "N": 0.8, "O": 9, "P": 1.2, "Q": 1, "R": 2, "S": 0.2}
_INDUSTRY_BY_TYPE = {
    "个体工商户": {"F": 50, "H": 18, "O": 15, "A": 3, "C": 3, "G": 4, "E": 2, "I": 1, "L": 2, "R": 2},
    "农民专业合作社": {"A": 92, "F": 3, "C": 3, "O": 1, "L": 1},
}
# (median registered capital in 10k yuan, sigma, median employees, sigma)
_TYPE_SIZE = {
    "个体工商户": (3, 1.2, 1.5, 0.6), "有限责任公司": (100, 1.6, 6, 1.3),
    "股份有限公司": (3000, 1.4, 120, 1.2), "个人独资企业": (30, 1.2, 3, 0.8),
    "合伙企业": (200, 1.6, 5, 1.0), "农民专业合作社": (60, 1.2, 5, 0.9),
}
_NICE = np.array([1, 2, 3, 5, 8, 10])
_STATUS = ("注销", "吊销", "存续", "在业")


def _registration_day_probs(lo: int, hi: int) -> np.ndarray:
    days = np.arange(lo, hi + 1)
    year = days.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970
    # Registrations grow ~11%/year, jump after the 2014 registered-capital reform, dip in 2020.
    w = np.exp(0.11 * (year - 1990)) * np.where(year >= 2014, 1.5, 1.0) * np.where(year == 2020, 0.8, 1.0)
    return w


def _enterprise_chunk(manifest: Manifest, rng: np.random.Generator, n: int, unit_start: int,
                      row_start: int) -> tuple[dict, int]:
    types = manifest.column("entity_type").categories if manifest.has_column("entity_type") else tuple(_ENTITY_TYPE)
    etype = _draw(rng, _probs(types, _ENTITY_TYPE), n)
    counts = np.ones(n, dtype=np.int64)  # one row per enterprise (max_rows_per_unit 1)
    cols = {manifest.privacy_unit: _unit_column(manifest, counts, unit_start, scrambled=True)}
    if manifest.has_column("entity_type"):
        cols["entity_type"] = _category_array(types, etype, pa.string())
    if manifest.has_column("district"):
        district = manifest.column("district").categories
        cols["district"] = _category_array(district, _draw(rng, _probs(district, _ENTERPRISE_DISTRICT), n),
                                           pa.string())

    reg_col = manifest.column("registration_date") if manifest.has_column("registration_date") else Column(
        "registration_date", "date", "date", bounds=("1990-01-01", "2024-12-31"))
    d_lo, d_hi = _day_bounds(reg_col)
    day_p = _registration_day_probs(d_lo, d_hi)
    day = d_lo + _draw(rng, day_p, n)
    # Farmers' cooperatives exist only since the 2007 cooperatives law.
    coop_start = int(np.datetime64("2007-07-01", "D").astype(np.int64))
    is_coop = np.array([t == "农民专业合作社" for t in types])[etype]
    if is_coop.any() and d_lo < coop_start <= d_hi:
        late = day_p.copy()
        late[: coop_start - d_lo] = 0
        day[is_coop] = d_lo + _draw(rng, late, int(is_coop.sum()))
    cols["registration_date"] = pa.array(day.astype("datetime64[D]"))
    years_old = (d_hi - day) / 365.25

    industry = np.empty(n, dtype=np.int64)
    cap = np.empty(n)
    emp = np.empty(n)
    z = rng.standard_normal(n)  # shared latent size: capital and headcount correlate
    z2 = rng.standard_normal(n)
    ind_cats = manifest.column("industry").categories if manifest.has_column("industry") else tuple(_INDUSTRY)
    for t_idx, t in enumerate(types):
        rows = np.flatnonzero(etype == t_idx)
        if not len(rows):
            continue
        by_type = _INDUSTRY_BY_TYPE.get(t)
        p_ind = _probs(ind_cats, by_type, default=0.2) if by_type else _probs(ind_cats, _INDUSTRY)
        industry[rows] = _draw(rng, p_ind, len(rows))
        cmed, csig, emed, esig = _TYPE_SIZE.get(t, (50, 1.5, 5, 1.1))
        cap[rows] = np.exp(np.log(cmed) + csig * z[rows])
        emp[rows] = np.exp(np.log(emed) + esig * (0.6 * z[rows] + 0.8 * z2[rows]))
    if manifest.has_column("industry"):
        cols["industry"] = _category_array(ind_cats, industry, pa.string())

    # Most owners register round amounts (10, 50, 100, 500 ... 万元).
    mag = 10.0 ** np.floor(np.log10(cap))
    nice = _NICE[np.abs(cap[:, None] / mag[:, None] - _NICE).argmin(axis=1)] * mag
    cap = np.where(rng.random(n) < 0.65, nice, cap)

    status_cats = manifest.column("status").categories if manifest.has_column("status") else ()
    closed = np.zeros(n, dtype=bool)
    if status_cats:
        # Older registrations are more often deregistered (注销) or revoked (吊销).
        p_cancel = np.minimum(0.5, 0.06 + 0.013 * years_old)
        p_revoke = np.minimum(0.2, 0.01 + 0.006 * years_old)
        u = rng.random(n)
        # Codes into _STATUS: 0 注销, 1 吊销, 2 存续, 3 在业.
        code = np.where(u < p_cancel, 0, np.where(u < p_cancel + p_revoke, 1,
                        np.where(rng.random(n) < 0.7, 2, 3)))
        to_manifest = np.array([status_cats.index(s) if s in status_cats else -1 for s in _STATUS])
        codes = to_manifest[code]
        codes = np.where(codes < 0, rng.integers(0, len(status_cats), n), codes)
        closed = code <= 1
        cols["status"] = _category_array(status_cats, codes, pa.string())

    if manifest.has_column("registered_capital"):
        lo, hi = _num_bounds(manifest.column("registered_capital"), (0, 100000))
        cols["registered_capital"] = np.clip(np.round(cap, 2), lo, hi)
    if manifest.has_column("employees"):
        lo, hi = _num_bounds(manifest.column("employees"), (0, 5000))
        # A live enterprise has at least its owner; closed ones report nobody.
        emp = np.where(closed, 0, np.maximum(1, np.floor(emp)))
        cols["employees"] = np.clip(emp, lo, hi).astype(np.int64)
    return cols, n


# Realistic generators by manifest name; anything else gets the generic one.
GENERATORS: dict[str, Callable] = {
    "health_visits": _health_chunk,
    "enterprise_registry": _enterprise_chunk,
}


# --------------------------------------------------------------------------- demo dataset

def read_marker(out_dir: str | Path) -> dict | None:
    """The completion marker's content, or None when the dataset is not complete."""
    try:
        return json.loads((Path(out_dir) / MARKER).read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
        return None


def is_ready(out_dir: str | Path) -> bool:
    """True only for a fully written dataset directory (its marker is present)."""
    return read_marker(out_dir) is not None


def _dir_bytes(path: Path, files) -> int:
    return sum((path / f).stat().st_size for f in files)


def publish_dir(tmp: Path, out_dir: Path) -> None:
    """Move a fully written ``tmp`` directory to ``out_dir``, replacing any old one."""
    # A directory cannot be renamed onto a non-empty one: move the old one aside
    # first, so readers see either the old complete dataset or the new one.
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}-{time.monotonic_ns()}")
        out_dir.rename(old)
    tmp.rename(out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def generate(manifest: Manifest, rows: int, out_dir: str | Path, *, seed: int = 0,
             chunk_rows: int = 1_000_000, force: bool = False) -> GeneratedInfo:
    """Write ``rows`` synthetic rows for ``manifest`` as Parquet parts into ``out_dir``.

    Streams one chunk (= one part file, one row group) at a time, so memory does not
    grow with ``rows``. Deterministic for (manifest, rows, seed, chunk_rows). A unit's
    rows always sit in one chunk. Parts are written to a temporary sibling directory,
    the ``_SUCCESS`` marker last, and the directory is then renamed into place.
    Skips the work when a marker for the same parameters exists, unless ``force``.
    """
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
        raise ValueError("rows must be a non-negative integer")
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be positive")
    out_dir = Path(out_dir)
    params = {
        "manifest": manifest.name, "manifest_sha256": _manifest_fingerprint(manifest),
        "rows": rows, "seed": seed, "chunk_rows": chunk_rows, "generator_version": GENERATOR_VERSION,
    }
    marker = read_marker(out_dir)
    if marker is not None and not force and all(marker.get(k) == v for k, v in params.items()):
        files = tuple(marker["files"])
        return GeneratedInfo(manifest.name, out_dir, rows, seed, files, _dir_bytes(out_dir, files), 0.0, True)

    started = time.perf_counter()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    chunk_fn = GENERATORS.get(manifest.name)
    schema = arrow_schema(manifest)
    files: list[str] = []
    try:
        # Writing (encode + compress) releases the GIL, so part i is written while
        # chunk i+1 is generated; at most two chunks are alive at once.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = None
            unit_start = row_start = 0
            for index, start in enumerate(range(0, rows, chunk_rows)):
                n = min(chunk_rows, rows - start)
                rng = _rng(manifest, seed, "demo", index)
                if chunk_fn is None:
                    cols, units = _generic_chunk(manifest, rng, n, unit_start, row_start, scrambled=True)
                else:
                    cols, units = chunk_fn(manifest, rng, n, unit_start, row_start)
                table = _to_table(manifest, cols, rng, n, row_start)
                del cols
                unit_start += units
                row_start += n
                name = f"part-{index:05d}.parquet"
                if pending is not None:
                    pending.result()
                pending = pool.submit(pq.write_table, table, tmp / name, row_group_size=chunk_rows,
                                      compression=COMPRESSION)
                files.append(name)
                del table
            if pending is not None:
                pending.result()
        if not files:  # zero rows: still a valid, empty dataset with the right schema
            pq.write_table(schema.empty_table(), tmp / "part-00000.parquet", compression=COMPRESSION)
            files.append("part-00000.parquet")
        seconds = time.perf_counter() - started
        (tmp / MARKER).write_text(json.dumps(dict(params, files=files), indent=1), encoding="utf-8")
        publish_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return GeneratedInfo(manifest.name, out_dir, rows, seed, tuple(files), _dir_bytes(out_dir, files), seconds)


def generate_all(manifests_dir: str | Path, datasets_dir: str | Path, rows: dict | None = None,
                 seed: int = 0, *, force: bool = False) -> dict[str, GeneratedInfo]:
    """Generate every manifest's dataset into ``datasets_dir/<name>/``, with the
    manifest's ``default_rows`` unless ``rows`` overrides it by dataset name."""
    rows = rows or {}
    out: dict[str, GeneratedInfo] = {}
    paths = sorted(p for pattern in ("*.yaml", "*.yml") for p in Path(manifests_dir).glob(pattern))
    for path in paths:
        manifest = load_manifest(path)
        n = int(rows.get(manifest.name, manifest.default_rows))
        out[manifest.name] = generate(manifest, n, Path(datasets_dir) / manifest.name, seed=seed, force=force)
    return out


# --------------------------------------------------------------------------- analyst mock data

def generate_mock(manifest: Manifest, rows: int = 1000, *, seed: int = 0) -> pa.Table:
    """Mock data for analysts, built from the public manifest ALONE.

    Never reads real data, files, settings or the environment: the output is a pure
    function of (manifest, rows, seed). Values are uniform draws within the public
    bounds and categories; each privacy unit has 1..max_rows_per_unit rows and ids
    are sequential (1, 2, ...), so mock rows are plainly not real ones.
    """
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
        raise ValueError("rows must be a non-negative integer")
    if rows == 0:
        return arrow_schema(manifest).empty_table()
    rng = _rng(manifest, seed, "mock", 0)
    cols, _ = _generic_chunk(manifest, rng, rows, 0, 0)
    return _to_table(manifest, cols, rng, rows, 0)


def write_mock_parquet(manifest: Manifest, path: str | Path, rows: int = 1000, seed: int = 0) -> Path:
    """Write ``generate_mock`` output to one Parquet file (manifest-only, see there)."""
    path = Path(path)
    pq.write_table(generate_mock(manifest, rows, seed=seed), path, compression=COMPRESSION)
    return path


def mock_csv_bytes(manifest: Manifest, rows: int = 1000, seed: int = 0) -> bytes:
    """``generate_mock`` output as UTF-8 CSV with a header (manifest-only, see there)."""
    buf = io.BytesIO()
    pacsv.write_csv(generate_mock(manifest, rows, seed=seed), buf)
    return buf.getvalue()
