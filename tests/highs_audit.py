#!/usr/bin/env python3
"""Independent audit of a table as `dars suppress` publishes it, with HiGHS.

Given the published CSV (dimension columns, margins labelled `Total`, the
count column holding numbers or `*`) and the published rule, this builds
the integer programme of a reader who knows the rule and solves it with
HiGHS (highspy): one whole-number variable per cell, every margin the sum
of the interior cells it covers, and each cell's published value as the set
of true values it can stand for:

- a number r below the national level: every true count the rule would
  publish as r (the nearest multiple of the rounding base, halves up; never
  0 unless the count is 0, never a number inside the mask: such counts go
  to the next multiple out), as the hull of that set;
- `*`: a count the rule masks (0 too when zeros are suppressed), or, with
  secondary suppression, any count from 1 up;
- the national total: exactly as published when the rule exempts it.

For every cell but an exempt national total it prints the smallest and the
largest whole value, as JSON: a list of {"key": [...], "released": "...",
"min": n, "max": n or null} (null: unbounded). Counts of records only.

It knows nothing of how dars audits: only what a reader is told.

  python3 tests/highs_audit.py TABLE.csv --mask 1 7 --round-to 5 \
      --zeros show --exempt-national yes --secondary no --out result.json
"""

import argparse
import csv
import json
import sys

import highspy

TOTAL = "Total"


def publish(v, a):
    """What the rule publishes for a true count v that it does not mask."""
    b = a.round_to
    if v == 0 or b == 1:
        return v
    r = (v + b // 2) // b * b
    if r == 0:
        r = b
    if masks(r, a):
        r = (a.mask[1] // b + 1) * b
    return r


def masks(v, a):
    if v == 0:
        return a.zeros == "suppress"
    return a.mask[0] <= v <= a.mask[1]


def domain(text, grand, a):
    """The (low, high) hull of the true counts a published value stands for."""
    if text == "*":
        masked = [v for v in range(0, a.mask[1] + 1) if masks(v, a)]
        low, high = min(masked), max(masked)
        if a.secondary == "yes":
            return min(low, 1), None
        return low, high
    r = int(text)
    if grand and a.exempt_national == "yes":
        return r, r
    if a.round_to == 1:
        return r, r
    values = [
        v
        for v in range(0, r + a.round_to + 1)
        if not masks(v, a) and publish(v, a) == r
    ]
    if not values:
        sys.exit(f"published value {r} is one the rule never publishes")
    return min(values), max(values)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("table")
    p.add_argument("--count", default="count")
    p.add_argument("--mask", nargs=2, type=int, required=True)
    p.add_argument("--round-to", type=int, required=True)
    p.add_argument("--zeros", choices=["show", "suppress"], required=True)
    p.add_argument("--exempt-national", choices=["yes", "no"], required=True)
    p.add_argument("--secondary", choices=["yes", "no"], required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args()

    with open(a.table, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        sys.exit("empty table")
    dims = [c for c in rows[0].keys() if c not in (a.count, "percent")]
    keys = [tuple(r[d] for d in dims) for r in rows]
    released = [r[a.count] for r in rows]

    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    inf = highspy.kHighsInf
    for i, key in enumerate(keys):
        grand = all(v == TOTAL for v in key)
        low, high = domain(released[i], grand, a)
        h.addCol(0.0, float(low), inf if high is None else float(high), 0, [], [])
        h.changeColIntegrality(i, highspy.HighsVarType.kInteger)
    interior = [i for i, k in enumerate(keys) if TOTAL not in k]
    for i, key in enumerate(keys):
        if TOTAL not in key:
            continue
        parts = [
            j
            for j in interior
            if all(kv == TOTAL or kv == keys[j][d] for d, kv in enumerate(key))
        ]
        # margin - sum(parts) = 0
        idx = [i] + parts
        val = [1.0] + [-1.0] * len(parts)
        h.addRow(0.0, 0.0, len(idx), idx, val)

    out = []
    n = len(keys)
    for i, key in enumerate(keys):
        grand = all(v == TOTAL for v in key)
        if grand and a.exempt_national == "yes":
            continue
        result = {"key": list(key), "released": released[i]}
        for sense, name in (
            (highspy.ObjSense.kMinimize, "min"),
            (highspy.ObjSense.kMaximize, "max"),
        ):
            h.changeColsCost(n, list(range(n)), [1.0 if j == i else 0.0 for j in range(n)])
            h.changeObjectiveSense(sense)
            h.run()
            status = h.getModelStatus()
            if status == highspy.HighsModelStatus.kOptimal:
                result[name] = round(h.getInfo().objective_function_value)
            elif status in (
                highspy.HighsModelStatus.kUnbounded,
                highspy.HighsModelStatus.kUnboundedOrInfeasible,
            ) and name == "max":
                result[name] = None
            else:
                sys.exit(f"HiGHS: {h.modelStatusToString(status)} for row {i + 1}")
        out.append(result)
    with open(a.out, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
