#!/usr/bin/env python3
"""HiGHS on the very programmes dars's audit solves, timed beside dars (issue #17).

`cargo bench --bench suppress -- --only secondary --dump PREFIX` (and
`--only whole`, which writes `PREFIX.whole.*`) writes the table dars
protected as a reader gets it (`PREFIX.published.csv`), the rule
(`PREFIX.rule.toml`), the true counts (`PREFIX.true.csv`) and dars's own
reports (`PREFIX.report.csv` with the whole-number audit,
`PREFIX.lp.report.csv` with the LP audit alone). From the published table
and the rule only, this script builds the reader's programme the way
`tests/highs_audit.py` does (its `domain`, imported: one variable per cell,
each published value as the hull of the true counts the rule publishes
so, every margin the sum of its interior cells; cells published exactly are
constants), and times HiGHS (highspy) on it: (a) the LP interval of every
`*`, minimum and maximum, each solved cold (`clearSolver` before every
run) and warm (one instance, only the objective changed with
`changeColCost`/`changeObjectiveSense`, HiGHS re-optimising from its last
basis), warm both with HiGHS's default simplex and with its primal simplex
(`simplex_strategy` 4, the one that suits an objective change); (b) the whole-number interval of every `*` and, for every rounded
count, whether a whole-number reader pins it exactly: every bound its own
integer programme (as `tests/highs_audit.py` does), and again skipping a
bound already attained by a whole-number table met on the way (the true
table, integral LP optima, earlier MIP optima; no whole number lies beyond
the LP bound). It prints, per phase, programmes solved, seconds (wall of
the phase, HiGHS's own `run` time, process CPU) and ms per programme, and
checks every interval against dars's report cell for cell (`interval_internal`
and `interval_kind`; a whole-number interval must equal HiGHS's, an LP one
equal HiGHS's LP and contain its whole-number one; a rounded count has an
interval in the report exactly when HiGHS pins it). A disagreement is
printed by report row (never dimension values) and the script exits 1.
HiGHS's own solve time is a lower bound on what the `highs` crate would
cost in process for the audit (secondary suppression, which dars does
before the audit, is not redone here). Measured on 4 December 2026 (load
3.5-4.9, README "HiGHS on the same programmes"): every interval equal;
`--only secondary` audit 6.0-6.9 s inside HiGHS against 4.0-4.4 s for
dars's (its warm primal LP 0.63-0.75 ms a programme, its MIPs 46-65 ms).

  CARGO_PROFILE_DEV_OPT_LEVEL=3 python3 benches/suppress_highs.py /var/tmp/h17d-dump/bench \\
      --bench 'cargo bench --profile dev --bench suppress --'

`--bench CMD` first runs CMD with `--only secondary --dump PREFIX` and
`--only whole --dump PREFIX` (printing dars's timings), so that both
solvers are timed in one session under the same load (`uptime` is
printed); without it the dump must exist. `--runs N` repeats everything (the
every-bound-its-own-MIP phase, minutes, in the first run only; `--no-plain`
skips it).
Needs highspy==1.16.0 and numpy. Prints counts and timings only.
"""

import argparse
import csv
import os
import shlex
import subprocess
import sys
import time
import tomllib
import types

import highspy
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import highs_audit  # noqa: E402  (the reader's domains: publish, masks, domain)

TOTAL = highs_audit.TOTAL
INF = highspy.kHighsInf
OPTIMAL = highspy.HighsModelStatus.kOptimal
UNBOUNDED = (
    highspy.HighsModelStatus.kUnbounded,
    highspy.HighsModelStatus.kUnboundedOrInfeasible,
)
MIN = highspy.ObjSense.kMinimize
MAX = highspy.ObjSense.kMaximize


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


class Table:
    """The reader's programme of one dumped table, and dars's reports of it."""

    def __init__(self, prefix):
        with open(prefix + ".rule.toml", "rb") as f:
            rule = tomllib.load(f)
        self.rule = types.SimpleNamespace(
            mask=rule["mask"],
            round_to=rule["round_to"],
            zeros=rule["zeros"],
            exempt_national="yes" if rule["exempt_national"] else "no",
            secondary="yes" if rule["secondary"] else "no",
        )
        rows = read_csv(prefix + ".published.csv")
        self.dims = [c for c in rows[0].keys() if c not in ("count", "percent")]
        self.keys = [tuple(r[d] for d in self.dims) for r in rows]
        self.released = [r["count"] for r in rows]
        truth = read_csv(prefix + ".true.csv")
        self.truth = [int(r["count"]) for r in truth]
        self.report = read_csv(prefix + ".report.csv")[: len(rows)]
        self.lp_report = read_csv(prefix + ".lp.report.csv")[: len(rows)]
        for name, other in (("true", [tuple(r[d] for d in self.dims) for r in truth]),
                            ("report", [tuple(r[d] for d in self.dims) for r in self.report]),
                            ("LP report", [tuple(r[d] for d in self.dims) for r in self.lp_report])):
            if other != self.keys:
                sys.exit(f"{prefix}: the {name} table's rows are not the published table's")

        # Each cell's domain (tests/highs_audit.py): a constant, or a variable.
        self.domain = []
        for i, key in enumerate(self.keys):
            grand = all(v == TOTAL for v in key)
            self.domain.append(highs_audit.domain(self.released[i], grand, self.rule))
        self.var = {}  # cell -> column
        lower, upper = [], []
        for i, (low, high) in enumerate(self.domain):
            if high is None or low != high:
                self.var[i] = len(lower)
                lower.append(float(low))
                upper.append(INF if high is None else float(high))
        self.cell_of = {v: i for i, v in self.var.items()}
        self.lower = np.array(lower)
        self.upper = np.array(upper)

        # Every margin is the sum of the interior cells it covers.
        index = {k: i for i, k in enumerate(self.keys)}
        parts = {i: [] for i, k in enumerate(self.keys) if TOTAL in k}
        d = len(self.dims)
        for j, key in enumerate(self.keys):
            if TOTAL in key:
                continue
            for mask in range(1, 1 << d):
                m = tuple(TOTAL if mask >> x & 1 else key[x] for x in range(d))
                if m in index:
                    parts[index[m]].append(j)
        self.rows = []  # (columns, coefficients, rhs): sum = rhs
        for i, members in parts.items():
            idx, val, rhs = [], [], 0.0
            for c, coef in [(i, 1.0)] + [(j, -1.0) for j in members]:
                if c in self.var:
                    idx.append(self.var[c])
                    val.append(coef)
                else:
                    rhs -= coef * self.domain[c][0]
            if idx:
                self.rows.append((idx, val, rhs))
            elif rhs != 0:
                sys.exit(f"{prefix}: published margin at row {i + 1} contradicts its cells")

        self.stars = [i for i, r in enumerate(self.released) if r == "*"]
        grand_exempt = self.rule.exempt_national == "yes"
        self.rounded = [
            i
            for i, r in enumerate(self.released)
            if r != "*" and i in self.var and not (grand_exempt and all(v == TOTAL for v in self.keys[i]))
        ]
        # The true table is one the reader's programme must admit.
        point = np.array([float(self.truth[self.cell_of[v]]) for v in range(len(lower))])
        for i, (low, high) in enumerate(self.domain):
            t = self.truth[i]
            if t < low or (high is not None and t > high):
                sys.exit(f"{prefix}: row {i + 1}: the true count is outside the reader's domain")
        for idx, val, rhs in self.rows:
            if abs(sum(point[c] * v for c, v in zip(idx, val)) - rhs) > 1e-9:
                sys.exit(f"{prefix}: the true table breaks a sum of the reader's programme")
        self.truth_point = point

    def highs(self, integer):
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        if integer:
            # The objective is one whole count: a gap below 1 proves the optimum.
            h.setOptionValue("mip_rel_gap", 0.0)
            h.setOptionValue("mip_abs_gap", 0.5)
        n = len(self.lower)
        h.addCols(n, np.zeros(n), self.lower, self.upper, 0, np.array([], dtype=np.int32),
                  np.array([], dtype=np.int32), np.array([]))
        starts, index, value, rhs = [], [], [], []
        for idx, val, r in self.rows:
            starts.append(len(index))
            index.extend(idx)
            value.extend(val)
            rhs.append(r)
        rhs = np.array(rhs)
        h.addRows(len(self.rows), rhs, rhs, len(index), np.array(starts, dtype=np.int32),
                  np.array(index, dtype=np.int32), np.array(value))
        if integer:
            h.changeColsIntegrality(n, np.arange(n, dtype=np.int32),
                                    np.full(n, highspy.HighsVarType.kInteger.value, dtype=np.uint8))
        return h


class Phase:
    def __init__(self, name):
        self.name = name
        self.solves = 0
        self.run_secs = 0.0
        self.iterations = 0
        self.nodes = 0
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def run(self, h):
        t = time.perf_counter()
        h.run()
        self.run_secs += time.perf_counter() - t
        self.solves += 1
        info = h.getInfo()
        self.iterations += max(info.simplex_iteration_count, 0)
        self.nodes += max(info.mip_node_count, 0)
        return h.getModelStatus()

    def done(self):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu
        per = 1000 * self.run_secs / max(self.solves, 1)
        extra = f", {self.iterations} simplex iterations" if self.iterations else ""
        if self.nodes:
            extra += f", {self.nodes} branch-and-bound nodes"
        print(f"  HiGHS {self.name}: {self.solves} programmes, {self.wall:.3f}s wall "
              f"({self.run_secs:.3f}s in HiGHS run, {per:.2f} ms each; {self.cpu:.3f}s CPU{extra})",
              flush=True)
        return self


def bound(h, status, maximise, row, what):
    if status == OPTIMAL:
        return h.getInfo().objective_function_value
    if maximise and status in UNBOUNDED:
        return None
    sys.exit(f"HiGHS: {h.modelStatusToString(status)} for the {what} of row {row + 1}")


def lp_intervals(t, warm, primal=False):
    """The LP interval of every `*`, rounded inwards, and the optima met.

    `primal`: HiGHS's primal simplex (`simplex_strategy` 4), which keeps
    the last optimum as a feasible start after an objective change; its
    default (dual) simplex starts an objective change dual infeasible."""
    h = t.highs(False)
    if primal:
        h.setOptionValue("simplex_strategy", 4)
    how = "warm (objective changed on one instance)" if warm else "cold (clearSolver before each)"
    phase = Phase(f"LP audit, {how}, {'primal' if primal else 'default'} simplex")
    out, points, last = {}, [], None
    for i in t.stars:
        v = t.var[i]
        sides = []
        for sense in (MIN, MAX):
            if not warm:
                h.clearSolver()
            last = aim(h, last, v, sense)
            status = phase.run(h)
            x = bound(h, status, sense == MAX, i, "LP " + ("maximum" if sense == MAX else "minimum"))
            sides.append(x)
            if warm and status == OPTIMAL:
                points.append(np.array(h.getSolution().col_value))
        low = max(0, int(np.ceil(sides[0] - 1e-6)))
        high = None if sides[1] is None else int(np.floor(sides[1] + 1e-6))
        out[i] = (low, high)
    return out, points, phase.done()


def aim(h, last, v, sense):
    """Makes column `v` the objective (in `sense`) of the Highs instance whose
    objective was column `last` (or none): the warm objective change. -> v"""
    if last is not None and last != v:
        h.changeColCost(last, 0.0)
    h.changeColCost(v, 1.0)
    h.changeObjectiveSense(sense)
    return v


def mip_intervals(t, lp, points, prune):
    """Whole-number intervals of every `*` and the rounded counts pinned.

    With `prune`, a bound some whole-number table met so far attains (it
    cannot lie beyond the LP bound) and a rounded count seen at two values
    need no programme of their own."""
    h = t.highs(True)
    phase = Phase("whole-number audit, " + ("bounds already attained skipped" if prune
                                            else "every bound its own integer programme"))
    n = len(t.lower)
    seen_low = t.truth_point.copy()
    seen_high = t.truth_point.copy()

    def meet(x):
        x = np.asarray(x)
        r = np.round(x)
        if np.all(np.abs(x - r) < 1e-7):
            np.minimum(seen_low, r, out=seen_low)
            np.maximum(seen_high, r, out=seen_high)

    if prune:
        for x in points:
            meet(x)
    last = None

    def solve(i, sense):
        nonlocal last
        v = t.var[i]
        last = aim(h, last, v, sense)
        status = phase.run(h)
        x = bound(h, status, sense == MAX, i, "whole-number " + ("maximum" if sense == MAX else "minimum"))
        if status == OPTIMAL and prune:
            meet(h.getSolution().col_value)
        return x

    stars = {}
    for i in t.stars:
        v = t.var[i]
        lo, hi = lp[i]
        if prune and seen_low[v] <= lo:
            low = lo
        else:
            low = int(round(solve(i, MIN)))
        if prune and hi is not None and seen_high[v] >= hi:
            high = hi
        else:
            x = solve(i, MAX)
            high = None if x is None else int(round(x))
        stars[i] = (low, high)
    pinned = set()
    for i in t.rounded:
        v = t.var[i]
        if prune and seen_low[v] < seen_high[v]:
            continue
        low = solve(i, MIN)
        if prune and round(low) < seen_high[v]:
            continue
        high = solve(i, MAX)
        if high is not None and round(low) == round(high):
            pinned.add(i)
    phase.done()
    print(f"    {len(stars)} `*`, {len(t.rounded)} rounded counts checked, {len(pinned)} pinned; "
          f"{n} unknowns, {len(t.rows)} sums", flush=True)
    return stars, pinned, phase


def parse_interval(text):
    low, high = text.split("–")
    return int(low), (None if high == "∞" else int(high))


def check(t, lp, whole, pinned):
    """Rows of dars's reports whose interval disagrees with HiGHS's."""
    bad = []
    for i in t.stars:
        r = t.lp_report[i]
        if r["interval_kind"] != "LP" or parse_interval(r["interval_internal"]) != lp[i]:
            bad.append((i + 1, "LP", r["interval_internal"], lp[i]))
        r = t.report[i]
        got = parse_interval(r["interval_internal"])
        w = whole[i]
        if r["interval_kind"] == "whole-number":
            ok = got == w
        else:  # LP where dars kept the relaxation: it must contain HiGHS's
            ok = got == lp[i] and got[0] <= w[0] and (got[1] is None or (w[1] is not None and w[1] <= got[1]))
        if not ok:
            bad.append((i + 1, r["interval_kind"], r["interval_internal"], w))
    for i in t.rounded:
        r = t.report[i]
        dars_pins = r["interval_internal"] != ""
        if dars_pins != (i in pinned):
            bad.append((i + 1, "rounded count", r["interval_internal"] or "not pinned",
                        "pinned" if i in pinned else "not pinned"))
    kinds = {}
    for i in t.stars:
        kinds[t.report[i]["interval_kind"]] = kinds.get(t.report[i]["interval_kind"], 0) + 1
    return bad, kinds


def uptime():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def run_dars(cmd, prefix):
    for only in ("secondary", "whole"):
        args = shlex.split(cmd) + ["--only", only, "--dump", prefix]
        print(f"dars ({' '.join(args)}), load {uptime()}", flush=True)
        t = time.perf_counter()
        out = subprocess.run(args, capture_output=True, text=True)
        if out.returncode != 0:
            sys.stderr.write(out.stderr[-4000:])
            sys.exit(f"dars bench failed (exit {out.returncode})")
        for line in out.stdout.splitlines():
            if "protect" in line or "whole-number" in line or "aggregate" in line:
                print("  dars " + line.strip(), flush=True)
        print(f"  dars bench process {time.perf_counter() - t:.2f}s wall (build and data generation included)",
              flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("prefix", help="the --dump PREFIX given to benches/suppress.rs")
    p.add_argument("--bench", help="command running the bench, e.g. 'cargo bench --profile dev --bench suppress --'")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--no-plain", action="store_true", help="skip the every-bound-its-own-MIP phase")
    a = p.parse_args()
    os.makedirs(os.path.dirname(os.path.abspath(a.prefix)), exist_ok=True)
    failed = False
    for run in range(a.runs):
        print(f"run {run + 1} of {a.runs}: {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC, "
              f"load {uptime()}, highspy {highspy.Highs().version() if hasattr(highspy.Highs(), 'version') else ''}",
              flush=True)
        if a.bench:
            run_dars(a.bench, a.prefix)
        for prefix, what in ((a.prefix, "--only secondary"), (a.prefix + ".whole", "--only whole")):
            t = Table(prefix)
            print(f"{what}: {len(t.keys)} cells, {len(t.stars)} `*`, {len(t.rounded)} rounded counts, "
                  f"{len(t.lower)} unknowns, {len(t.rows)} sums; load {uptime()}", flush=True)
            lp_cold, _, cold = lp_intervals(t, warm=False)
            lp_dual, points_dual, warm_dual = lp_intervals(t, warm=True)
            lp, points, warm = lp_intervals(t, warm=True, primal=True)
            if not lp_cold == lp_dual == lp:
                print("  HiGHS's cold and warm LP intervals differ", flush=True)
                failed = True
            plain = not a.no_plain and run == 0
            if plain:
                whole, pinned, _ = mip_intervals(t, lp, points, prune=False)
            print("    (after the LP audit by the default simplex:)", flush=True)
            whole_d, pinned_d, pruned_dual = mip_intervals(t, lp, points_dual, prune=True)
            print("    (after the LP audit by the primal simplex:)", flush=True)
            whole_p, pinned_p, pruned = mip_intervals(t, lp, points, prune=True)
            if (whole_d, pinned_d) != (whole_p, pinned_p) or (plain and (whole_p, pinned_p) != (whole, pinned)):
                print("  HiGHS's pruned and plain whole-number audits differ", flush=True)
                failed = True
            bad, kinds = check(t, lp, whole_p, pinned_p)
            narrower = sum(1 for i in t.stars if whole_p[i] != lp[i])
            print(f"  check against dars's reports: {len(t.stars)} `*` ({', '.join(f'{v} {k}' for k, v in sorted(kinds.items()))} in dars's), "
                  f"{narrower} whole-number intervals narrower than LP, {len(pinned_p)} rounded counts pinned: "
                  + ("every interval equal" if not bad else f"{len(bad)} DISAGREE"), flush=True)
            for row, kind, dars, highs in bad[:50]:
                print(f"    report row {row}: dars {kind} {dars}, HiGHS {highs}", flush=True)
            failed |= bool(bad)
            for lp_phase, mip_phase, how in ((warm_dual, pruned_dual, "default"), (warm, pruned, "primal")):
                print(f"  HiGHS audit, warm LP ({how} simplex) + pruned whole-number: "
                      f"{lp_phase.solves + mip_phase.solves} programmes, "
                      f"{lp_phase.run_secs + mip_phase.run_secs:.3f}s inside HiGHS "
                      f"({lp_phase.wall + mip_phase.wall:.3f}s wall from Python)", flush=True)
            print(f"  load {uptime()}", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
