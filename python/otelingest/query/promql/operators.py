"""Binary operators between vectors and scalars: arithmetic, comparisons, set operators, and the
label matching (on/ignoring, group_left/right) that pairs their series."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..errors import Unprocessable
from .values import Labels, Vector, drop_name, keep_nan, label_key, present, scalar_values


def matching(mod: Any) -> tuple[bool, list[str]]:
    if mod is None or mod.matching is None:
        return False, []
    text = str(mod.matching)
    return text.strip().startswith("on"), list(mod.matching.labels)


def signature(lab: Labels, on: bool, names: list[str]) -> Labels:
    if on:
        return {k: lab[k] for k in names if k in lab}
    return {k: v for k, v in lab.items() if k not in names and k != "__name__"}


def group_binary(op: str, lhs: Vector, rhs: Vector, on: bool, names: list[str], include: list[str],
                  right_many: bool, return_bool: bool) -> Vector:
    """group_left (many on the left) / group_right: each series of the "many" side matches one of
    the "one" side per step; the result keeps the many side's labels (no __name__ for arithmetic
    and bool) plus the ``include`` labels taken from the one side (Prometheus' VectorBinop)."""
    many, one = (rhs, lhs) if right_many else (lhs, rhs)
    ones: dict[tuple[tuple[str, str], ...], list[tuple[Labels, np.ndarray]]] = {}
    for lab, vals in one.series:
        ones.setdefault(label_key(signature(lab, on, names)), []).append((lab, vals))
    for members in ones.values():
        if len(members) > 1 and (np.sum([~np.isnan(v) for _, v in members], axis=0) > 1).any():
            raise Unprocessable("many-to-many matching not allowed: matching labels must be unique on one side")
    filtering = op in CMP and not return_bool
    out: dict[tuple[tuple[str, str], ...], tuple[Labels, np.ndarray]] = {}
    for lab, vals in many.series:
        for olab, ovals in ones.get(label_key(signature(lab, on, names)), []):
            lv, rv = (ovals, vals) if right_many else (vals, ovals)
            res = apply_op(op, lv, rv, return_bool)
            if filtering:
                res = np.where(res == 1.0, lv, np.nan)
            result = dict(lab) if filtering else drop_name(lab)
            for ln in include:
                if olab.get(ln):
                    result[ln] = olab[ln]
                else:
                    result.pop(ln, None)
            k = label_key(result)
            if k in out:
                prev = out[k][1]
                if (~np.isnan(prev) & ~np.isnan(res)).any():
                    raise Unprocessable("multiple matches for labels: grouping labels must ensure unique matches")
                res = np.where(np.isnan(prev), res, prev)
            out[k] = (result, res)
    return Vector(list(out.values()))


def set_op(op: str, lhs: Vector, rhs: Vector, matching: tuple[bool, list[str]]) -> Vector:
    on, names = matching
    n = len(lhs.series[0][1]) if lhs.series else (len(rhs.series[0][1]) if rhs.series else 0)
    rpresent: dict[tuple[tuple[str, str], ...], np.ndarray] = {}
    for lab, vals in rhs.series:
        sig = label_key(signature(lab, on, names))
        rpresent[sig] = rpresent.get(sig, np.zeros(n, dtype=bool)) | present(vals)
    out = []
    lpresent: dict[tuple[tuple[str, str], ...], np.ndarray] = {}
    for lab, vals in lhs.series:
        sig = label_key(signature(lab, on, names))
        lpresent[sig] = lpresent.get(sig, np.zeros(n, dtype=bool)) | present(vals)
        r = rpresent.get(sig, np.zeros(n, dtype=bool))
        if op == "and":
            out.append((lab, np.where(r, vals, np.nan)))
        elif op == "unless":
            out.append((lab, np.where(r, np.nan, vals)))
        else:
            out.append((lab, vals))
    if op == "or":
        for lab, vals in rhs.series:
            sig = label_key(signature(lab, on, names))
            lp = lpresent.get(sig, np.zeros(n, dtype=bool))
            out.append((lab, np.where(lp, np.nan, vals)))
    return Vector(out)


ARITH: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "%": np.fmod, "^": np.power,
}
CMP: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "==": np.equal, "!=": np.not_equal, ">": np.greater, "<": np.less, ">=": np.greater_equal, "<=": np.less_equal,
}


def apply_op(op: str, a: np.ndarray, b: np.ndarray, cmp_as_bool: bool) -> np.ndarray:
    both = present(a) & present(b)
    with np.errstate(all="ignore"):
        if op in ARITH:
            return keep_nan(ARITH[op](a, b), both)
        res = CMP[op](a, b).astype(np.float64)
        return np.where(both, res, np.nan)


def vector_scalar(op: str, lab: Labels, vals: np.ndarray, scalar: np.ndarray, return_bool: bool, *, left: bool
        ) -> tuple[Labels, np.ndarray]:
    scalar = scalar_values(scalar)
    a, b = (vals, scalar) if left else (scalar, vals)
    res = apply_op(op, a, b, return_bool)
    if op in CMP and not return_bool:
        return lab, np.where(res == 1.0, vals, np.nan)
    return drop_name(lab), res
