"""Normalized pointwise mutual information of two trace sets, exactly as MLflow computes it."""

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Npmi:
    npmi: float  # NaN when undefined
    npmi_smoothed: float


def npmi(joint: int, count1: int, count2: int, total: int) -> Npmi:
    """2x2 table n11 = joint, n10 = c1 - joint, n01 = c2 - joint, n00 = rest; natural log.

    Edge cases in MLflow's order: total <= 0, an empty side or a negative cell → NaN; both sides
    covering everything → 1.0; joint = 0 → raw -1.0 (the smoothed value is still computed).
    """
    nan = Npmi(math.nan, math.nan)
    if total <= 0 or count1 == 0 or count2 == 0:
        return nan
    n11, n10, n01 = joint, count1 - joint, count2 - joint
    n00 = total - count1 - count2 + joint
    if min(n11, n10, n01, n00) < 0:
        return nan
    if n10 == n01 == n00 == 0:
        return Npmi(1.0, 1.0)
    smoothed = _npmi(n11 + 0.5, n10 + 0.5, n01 + 0.5, n00 + 0.5)
    raw = -1.0 if n11 == 0 else _npmi(n11, n10, n01, n00)
    return Npmi(raw, smoothed)


def _npmi(n11: float, n10: float, n01: float, n00: float) -> float:
    total = n11 + n10 + n01 + n00
    p11 = n11 / total
    p1 = (n11 + n10) / total
    p2 = (n11 + n01) / total
    if p11 >= 1.0:
        return 1.0
    value = math.log(p11 / (p1 * p2)) / -math.log(p11)
    return max(-1.0, min(1.0, value))


def strength(value: float) -> str:
    """MLflow's insights labels."""
    magnitude = abs(value)
    if magnitude > 0.7:
        return "Strong"
    if magnitude > 0.4:
        return "Moderate"
    if magnitude > 0.1:
        return "Weak"
    return "Negligible"
