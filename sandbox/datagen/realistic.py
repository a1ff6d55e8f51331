"""Realistic generators for the two demo datasets, health_visits and enterprise_registry:
public statistics of Gansu (population, GDP, age pyramid, diagnosis mix, enterprise types)
shape the draws. A column a generator does not know falls back to a generic draw.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pyarrow as pa

from sandbox.core.manifest import Column, Manifest
from sandbox.datagen.columns import (category_array, day_bounds, draw, num_bounds, probs, split_units,
    unit_column)


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
    age_lo, age_hi = (int(b) for b in num_bounds(manifest.column("age"), (0, 100))) \
        if manifest.has_column("age") else (0, 100)
    date_col = manifest.column("visit_date") if manifest.has_column("visit_date") else Column(
        "visit_date", "date", "date", bounds=("2023-01-01", "2024-12-31"))
    day_lo, day_hi = day_bounds(date_col)

    # Persons: age from the pyramid; the elderly and infants visit more often.
    ages: list[np.ndarray] = []

    def person_counts(rows: int) -> np.ndarray:
        m = int(rows / 1.8) + 1
        band = draw(rng, _AGE_BANDS / _AGE_BANDS.sum(), m)
        age = band * 5 + rng.integers(0, np.where(band == 19, 6, 5))
        ratio = np.select([age < 5, age < 45, age < 65], [0.55, 0.35, 0.5], 0.7)
        # P(j visits) proportional to ratio**(j-1) for j = 1..k, drawn by inversion.
        j = np.arange(k)
        cdf = np.cumsum(ratio[:, None] ** j, axis=1)
        counts = (rng.random(m)[:, None] * cdf[:, -1:] > cdf).sum(axis=1) + 1
        ages.append(age)
        return counts

    counts = split_units(rng, n, person_counts)
    persons = len(counts)
    age0 = np.concatenate(ages)[:persons]
    female_p = np.select([age0 < 15, age0 < 80], [0.48, 0.52], 0.57)
    female = rng.random(persons) < female_p
    district = manifest.column("district").categories if manifest.has_column("district") else ()
    birthday = rng.integers(0, 365, persons)

    row_person = np.repeat(np.arange(persons), counts)
    day = day_lo + draw(rng, _visit_day_probs(day_lo, day_hi), n)
    day = day[np.lexsort((day, row_person))]  # each person's visits in date order
    age = np.clip(age0[row_person] + (day - day_lo + birthday[row_person]) // 365, age_lo, age_hi)
    is_f = female[row_person]

    cols = {manifest.privacy_unit: unit_column(manifest, counts, unit_start, scrambled=True)}
    cols["visit_date"] = pa.array(day.astype("datetime64[D]"))
    cols["age"] = age.astype(np.int64)
    if manifest.has_column("sex"):
        sex = manifest.column("sex").categories
        f_idx = sex.index("F") if "F" in sex else 0
        m_idx = sex.index("M") if "M" in sex else min(1, len(sex) - 1)
        cols["sex"] = category_array(sex, np.where(is_f, f_idx, m_idx), pa.string())
    if district:
        cols["district"] = category_array(
            district, draw(rng, probs(district, _VISIT_DISTRICT), persons)[row_person], pa.string())

    if manifest.has_column("diagnosis_group"):
        diag_cats = manifest.column("diagnosis_group").categories
        base = probs(diag_cats, _DIAG_WEIGHT)
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
            diag[rows] = draw(rng, p / p.sum(), len(rows))
        cols["diagnosis_group"] = category_array(diag_cats, diag, pa.string())

        if manifest.has_column("cost"):
            c_lo, c_hi = num_bounds(manifest.column("cost"), (0, 10000))
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
    etype = draw(rng, probs(types, _ENTITY_TYPE), n)
    counts = np.ones(n, dtype=np.int64)  # one row per enterprise (max_rows_per_unit 1)
    cols = {manifest.privacy_unit: unit_column(manifest, counts, unit_start, scrambled=True)}
    if manifest.has_column("entity_type"):
        cols["entity_type"] = category_array(types, etype, pa.string())
    if manifest.has_column("district"):
        district = manifest.column("district").categories
        cols["district"] = category_array(district, draw(rng, probs(district, _ENTERPRISE_DISTRICT), n),
                                           pa.string())

    reg_col = manifest.column("registration_date") if manifest.has_column("registration_date") else Column(
        "registration_date", "date", "date", bounds=("1990-01-01", "2024-12-31"))
    d_lo, d_hi = day_bounds(reg_col)
    day_p = _registration_day_probs(d_lo, d_hi)
    day = d_lo + draw(rng, day_p, n)
    # Farmers' cooperatives exist only since the 2007 cooperatives law.
    coop_start = int(np.datetime64("2007-07-01", "D").astype(np.int64))
    is_coop = np.array([t == "农民专业合作社" for t in types])[etype]
    if is_coop.any() and d_lo < coop_start <= d_hi:
        late = day_p.copy()
        late[: coop_start - d_lo] = 0
        day[is_coop] = d_lo + draw(rng, late, int(is_coop.sum()))
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
        p_ind = probs(ind_cats, by_type, default=0.2) if by_type else probs(ind_cats, _INDUSTRY)
        industry[rows] = draw(rng, p_ind, len(rows))
        cmed, csig, emed, esig = _TYPE_SIZE.get(t, (50, 1.5, 5, 1.1))
        cap[rows] = np.exp(np.log(cmed) + csig * z[rows])
        emp[rows] = np.exp(np.log(emed) + esig * (0.6 * z[rows] + 0.8 * z2[rows]))
    if manifest.has_column("industry"):
        cols["industry"] = category_array(ind_cats, industry, pa.string())

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
        cols["status"] = category_array(status_cats, codes, pa.string())

    if manifest.has_column("registered_capital"):
        lo, hi = num_bounds(manifest.column("registered_capital"), (0, 100000))
        cols["registered_capital"] = np.clip(np.round(cap, 2), lo, hi)
    if manifest.has_column("employees"):
        lo, hi = num_bounds(manifest.column("employees"), (0, 5000))
        # A live enterprise has at least its owner; closed ones report nobody.
        emp = np.where(closed, 0, np.maximum(1, np.floor(emp)))
        cols["employees"] = np.clip(emp, lo, hi).astype(np.int64)
    return cols, n


# Realistic generators by manifest name; anything else gets the generic one.
GENERATORS: dict[str, Callable] = {
    "health_visits": _health_chunk,
    "enterprise_registry": _enterprise_chunk,
}

