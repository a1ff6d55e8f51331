"""Example program-mode job (sample-and-aggregate) for health_visits.

The sandbox calls analyse() once per block, on a pandas DataFrame holding roughly 1/k of
the people (all rows of each). Return one number per output declared in
program_mean_cost.json, in that order; each is clamped to its declared range and the
sandbox releases a differentially private mean over the blocks. Develop against the mock
data (sandbox mock health_visits): on the real data you see only the released numbers.
"""
import numpy as np


def analyse(df):
    cost = df["cost"].to_numpy(dtype=float)
    age = df["age"].to_numpy(dtype=float)
    if len(cost) < 3 or np.ptp(age) == 0:
        # Too little data for a slope: raise, and this block contributes the default.
        raise ValueError("block too small")
    # Ordinary least squares slope of cost on age (yuan per year of age).
    slope, _intercept = np.polyfit(age, cost, 1)
    return [
        float(cost.mean()),
        float(slope),
        float((cost > 1000).mean()),
    ]
