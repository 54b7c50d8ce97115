//! The whole-number audit: what a reader who solves in whole numbers can
//! deduce, by branch and bound over the same linear programmes (microlp),
//! for every connected part of the release with at most
//! [`MAX_UNKNOWNS`] unknown cells.
//!
//! For each `*` it finds the smallest and the largest whole number the
//! cell can take in a whole-number table consistent with everything
//! released; for each rounded count it looks for one consistent
//! whole-number table in which the count differs from its true value (the
//! true table is one consistent table, so a count with no such table is
//! pinned exactly).
//!
//! Every whole-number table met on the way (the true one, and each
//! whole-number corner of a branch) is remembered: a cell already seen at
//! the bound its relaxation allows needs no search, and a rounded count
//! already seen at two values is not pinned. Where a search would take
//! more than [`MAX_NODES`] programmes, or the solver fails, the cell keeps
//! its linear-programming interval, marked as such: that interval contains
//! the whole-number one, so nothing unsafe is reported as whole.
//!
//! Before any cell's own search, sweeps: `*` of which no two share a sum
//! are pushed to their LP bounds together and the optimum is dived to a
//! whole-number table, checked against every row exactly; each cell it
//! shows at its LP bound is settled (nothing whole lies beyond the
//! relaxation). The bounds left are searched in parallel, a batch per
//! thread count at a time, pooling the tables found. [`WholeMode::Reference`]
//! turns all of this off: plain branch and bound, which the tests hold the
//! fast path to.
//!
//! A branch the solver calls infeasible is dropped. Should the solver be
//! wrong about one, the whole-number interval comes out narrower than the
//! truth: the audit then errs on the side of refusing.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use rayon::prelude::*;

use microlp::{ComparisonOp, OptimizationDirection, Problem, Solution, Variable};

use super::Lp;

/// The most unknown cells a connected part may have for its whole-number
/// audit. Chosen by measurement (`benches/suppress.rs --only parts`, one
/// three-way `hes` part of each size): 590 unknowns 1.8 s (1.8 s CPU),
/// 1 466 unknowns 42 s (41 s CPU), about 3 000 not finished in 900 s.
pub(crate) const MAX_UNKNOWNS: usize = 600;

/// The most programmes one branch and bound (one cell, one direction) may
/// solve, after its dive, before the cell falls back to its
/// linear-programming interval.
pub(crate) const MAX_NODES: usize = 400;

/// The most rounds of [`Part::sweep`] in each direction.
const SWEEP_ROUNDS: usize = 200;

/// Whole numbers are recognised within this of an integer.
const EPS: f64 = 1e-6;

/// What the whole-number audit found, by variable.
#[derive(Debug, Default)]
pub(crate) struct Whole {
    /// A `*`'s whole-number interval (`None` above: unbounded).
    pub intervals: HashMap<usize, (u64, Option<u64>)>,
    /// Rounded counts a whole-number reader pins exactly.
    pub pinned: Vec<usize>,
    /// Rounded counts checked (pinned or not).
    pub checked: usize,
    /// Cells of parts too large for the whole-number audit, or whose search
    /// gave up: they keep their linear-programming interval.
    pub fell_back: usize,
}

/// How the whole-number audit goes about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WholeMode {
    /// Sweeps, dives and every table already known, searches in parallel.
    Fast,
    /// Plain branch and bound from the true table alone, one cell at a
    /// time, with [`REFERENCE_NODES`] programmes allowed: what the tests
    /// hold the fast path to.
    Reference,
}

/// The node cap of [`WholeMode::Reference`].
const REFERENCE_NODES: usize = 100_000;

/// Why a search stopped without an answer.
#[derive(Debug, Clone, Copy)]
struct GaveUp;

/// A part's programme solved once with no objective, and its variables.
type Base = Result<(Solution, Vec<Variable>), GaveUp>;

#[derive(Clone)]
struct Part<'a> {
    lp: &'a Lp,
    c: usize,
    /// Component variable → its position in `vars`.
    local: HashMap<usize, usize>,
    /// Lowest and highest whole value each variable has taken in a
    /// consistent whole-number table so far.
    seen: Vec<(i64, i64)>,
    /// The part's programme solved once with no objective, and its
    /// variables: where a dive towards a known LP bound starts (`None`
    /// until needed; `Err` when it failed).
    base: Option<Arc<Base>>,
    /// [`WholeMode::Fast`]: sweeps and dives; else plain branch and bound.
    fast: bool,
}

impl Lp {
    /// The whole-number audit of `stars` (variables of suppressed cells,
    /// each with its LP interval, which bounds the whole-number one) and
    /// `rounded` (variables of rounded counts), in every part of at most
    /// `max_unknowns` unknown cells ([`MAX_UNKNOWNS`] in a release).
    pub(crate) fn whole(
        &self,
        stars: &[(usize, (u64, Option<u64>))],
        rounded: &[usize],
        mode: WholeMode,
        max_unknowns: usize,
    ) -> Whole {
        let fast = mode == WholeMode::Fast;
        let mut out = Whole::default();
        let mut by_part: std::collections::BTreeMap<usize, (Vec<usize>, Vec<usize>)> =
            Default::default();
        let relaxed: HashMap<usize, (u64, Option<u64>)> = stars.iter().copied().collect();
        for &(v, _) in stars {
            by_part.entry(self.component[v]).or_default().0.push(v);
        }
        for &v in rounded {
            by_part.entry(self.component[v]).or_default().1.push(v);
        }
        for (c, (stars, rounded)) in by_part {
            let vars = &self.component_vars[c];
            if vars.len() > max_unknowns {
                out.fell_back += stars.len() + rounded.len();
                continue;
            }
            let mut part = Part {
                lp: self,
                c,
                local: vars.iter().enumerate().map(|(i, &v)| (v, i)).collect(),
                seen: vars
                    .iter()
                    .map(|&v| {
                        let (low, high) = if fast {
                            self.int_seen[v]
                        } else {
                            (self.truth[v], self.truth[v])
                        };
                        (low as i64, high as i64)
                    })
                    .collect(),
                base: None,
                fast,
            };
            if fast {
                let with_bounds: Vec<(usize, (u64, Option<u64>))> = stars
                    .iter()
                    .filter_map(|&v| Some((v, relaxed.get(&v).copied()?)))
                    .collect();
                part.sweep(&with_bounds, false);
                part.sweep(&with_bounds, true);
            }
            // Each remaining minimum and maximum is a search of its own:
            // run them in parallel, a few at a time (one per thread), each
            // from the tables known when its batch starts, then pool the
            // tables they found for the next batch. Every search's answer
            // is the whole-number optimum whatever tables it started from,
            // so the batching does not change the intervals.
            let jobs: Vec<(usize, bool)> = if fast {
                stars
                    .iter()
                    .flat_map(|&v| [(v, false), (v, true)])
                    .collect()
            } else {
                Vec::new()
            };
            let width = rayon::current_num_threads().max(1);
            let mut answers: HashMap<(usize, bool), Result<Option<i64>, GaveUp>> = HashMap::new();
            let mut next = jobs.iter();
            loop {
                let mut batch = Vec::with_capacity(width);
                for &(v, maximise) in next.by_ref() {
                    match part.known(v, maximise, relaxed.get(&v).copied()) {
                        Some(x) => {
                            answers.insert((v, maximise), Ok(Some(x)));
                        }
                        None => batch.push((v, maximise)),
                    }
                    if batch.len() == width {
                        break;
                    }
                }
                if batch.is_empty() {
                    break;
                }
                part.ensure_base();
                let searched: Vec<_> = batch
                    .par_iter()
                    .map(|&(v, maximise)| {
                        let mut own = part.clone();
                        let found = own.optimum(v, maximise, false, relaxed.get(&v).copied());
                        ((v, maximise), found, own.seen)
                    })
                    .collect();
                for (job, found, seen) in searched {
                    for (s, o) in part.seen.iter_mut().zip(seen) {
                        *s = (s.0.min(o.0), s.1.max(o.1));
                    }
                    answers.insert(job, found);
                }
            }
            for &v in &stars {
                let lp = relaxed.get(&v).copied().filter(|_| fast);
                let mut answer = |part: &mut Part, maximise: bool| {
                    answers
                        .remove(&(v, maximise))
                        .unwrap_or_else(|| part.optimum(v, maximise, false, lp))
                };
                let low = answer(&mut part, false);
                let high = answer(&mut part, true);
                match (low, high) {
                    (Ok(Some(l)), Ok(h)) => {
                        let l = l.max(0) as u64;
                        out.intervals
                            .insert(v, (l, h.map(|h| (h.max(0) as u64).max(l))));
                    }
                    _ => out.fell_back += 1,
                }
            }
            for &v in &rounded {
                let i = part.local[&v];
                let truth = self.truth[v] as i64;
                if part.seen[i] != (truth, truth) {
                    out.checked += 1;
                    continue;
                }
                let moved = match part.optimum(v, false, true, None) {
                    Ok(Some(l)) if l < truth => Ok(true),
                    Ok(_) => part
                        .optimum(v, true, true, None)
                        .map(|h| h.is_none_or(|h| h > truth)),
                    Err(e) => Err(e),
                };
                match moved {
                    Ok(true) => out.checked += 1,
                    Ok(false) => {
                        out.checked += 1;
                        out.pinned.push(v);
                    }
                    Err(GaveUp) => out.fell_back += 1,
                }
            }
        }
        out
    }
}

impl Part<'_> {
    /// Whole-number tables that put many `*` at their LP bounds at once:
    /// the part's programme with every unproven `*` pushed down (or up)
    /// together, then a dive to whole numbers from its optimum. Each table
    /// found is a consistent one, so every cell it shows at its LP bound
    /// has that bound as its whole-number one too, with no search of its
    /// own. Rounds until a round proves nothing new.
    fn sweep(&mut self, stars: &[(usize, (u64, Option<u64>))], maximise: bool) {
        for _ in 0..SWEEP_ROUNDS {
            let pending: Vec<usize> = stars
                .iter()
                .filter_map(|&(v, (low, high))| {
                    let (seen_low, seen_high) = self.seen[self.local[&v]];
                    if maximise {
                        high.filter(|&h| seen_high < h as i64).map(|_| v)
                    } else {
                        (seen_low > low as i64).then_some(v)
                    }
                })
                .collect();
            if pending.is_empty() {
                return;
            }
            // Cells that share a sum compete for it: push up (or down) only
            // cells of which no two share a row, so that each can reach its
            // own bound at once.
            let mut taken = vec![false; self.lp.component_rows[self.c].len()];
            let rows_of = |v: usize| -> Vec<usize> {
                self.lp.component_rows[self.c]
                    .iter()
                    .enumerate()
                    .filter(|(_, &r)| self.lp.rows[r].terms.iter().any(|t| t.0 == v))
                    .map(|(k, _)| k)
                    .collect()
            };
            let mut chosen = Vec::new();
            for &v in &pending {
                let rows = rows_of(v);
                if rows.iter().all(|&k| !taken[k]) {
                    for k in rows {
                        taken[k] = true;
                    }
                    chosen.push(v);
                }
            }
            let pending = chosen;
            let sign = if maximise { -1.0 } else { 1.0 };
            let (problem, handles) =
                self.programme(|v| if pending.contains(&v) { sign } else { 0.0 });
            let Some(sol) = catch_unwind(AssertUnwindSafe(|| problem.solve()))
                .ok()
                .and_then(Result::ok)
            else {
                return;
            };
            let hold: Vec<usize> = pending.iter().map(|v| self.local[v]).collect();
            let Some(point) = self.dive_fixed(sol, &handles, &hold) else {
                return;
            };
            let before = self.seen.clone();
            for (s, &x) in self.seen.iter_mut().zip(&point) {
                *s = (s.0.min(x), s.1.max(x));
            }
            let proved = stars.iter().any(|&(v, (low, high))| {
                let i = self.local[&v];
                if maximise {
                    high.is_some_and(|h| self.seen[i].1 >= h as i64 && before[i].1 < h as i64)
                } else {
                    self.seen[i].0 <= low as i64 && before[i].0 > low as i64
                }
            });
            if !proved {
                return;
            }
        }
    }

    /// The part's programme, with `objective(v)` as each variable's cost
    /// (minimised), and the handles of its variables in `local` order.
    fn programme(&self, objective: impl Fn(usize) -> f64) -> (Problem, Vec<Variable>) {
        let lp = self.lp;
        let mut problem = Problem::new(OptimizationDirection::Minimize);
        let handles: Vec<Variable> = lp.component_vars[self.c]
            .iter()
            .map(|&v| problem.add_var(objective(v), lp.bounds[v]))
            .collect();
        for &r in &lp.component_rows[self.c] {
            let row = &lp.rows[r];
            let terms: Vec<(Variable, f64)> = row
                .terms
                .iter()
                .map(|&(v, coef)| (handles[self.local[&v]], coef))
                .collect();
            problem.add_constraint(terms.as_slice(), row.op, row.rhs);
        }
        (problem, handles)
    }

    /// The whole-number minimum (or maximum) of `target` when a table
    /// already seen proves it: one sits at the variable's own bound, or at
    /// its LP bound `relaxed` (no whole number lies beyond either).
    fn known(
        &self,
        target: usize,
        maximise: bool,
        relaxed: Option<(u64, Option<u64>)>,
    ) -> Option<i64> {
        let (mut lower, mut upper) = self.lp.bounds[target];
        if let Some((low, high)) = relaxed {
            lower = lower.max(low as f64);
            if let Some(h) = high {
                upper = upper.min(h as f64);
            }
        }
        let (seen_low, seen_high) = self.seen[self.local[&target]];
        if !maximise && (seen_low as f64) <= lower + EPS {
            return Some(seen_low);
        }
        if maximise && upper.is_finite() && (seen_high as f64) >= upper - EPS {
            return Some(seen_high);
        }
        None
    }

    /// A dive from the base programme with local variable `t` at `goal`.
    fn dive_from_base(&mut self, t: usize, goal: f64) -> Option<Vec<i64>> {
        self.ensure_base();
        let Some(Ok((base, handles))) = self.base.as_deref() else {
            return None;
        };
        let handles = handles.clone();
        let sol = fix(base.clone(), handles[t], goal)?;
        self.dive_fixed(sol, &handles, &[t])
    }

    /// Solves the part's base programme once (no objective).
    fn ensure_base(&mut self) {
        if self.base.is_none() {
            let (problem, handles) = self.programme(|_| 0.0);
            let solved = catch_unwind(AssertUnwindSafe(|| problem.solve()))
                .ok()
                .and_then(Result::ok)
                .map(|s| (s, handles))
                .ok_or(GaveUp);
            self.base = Some(Arc::new(solved));
        }
    }

    /// A whole-number point from `sol` (a vertex of the part's programme,
    /// some variables held), or `None`. First reduced dives: every variable
    /// already whole at `sol` is held there, except the fractional ones and
    /// (in later tries) the cells sharing a sum with them, one and then two
    /// sums out, and only those are solved: a programme of a few dozen
    /// cells instead of the whole part. The variables in `hold` (a target
    /// at its bound) are never freed. Where none of these has a
    /// whole-number point, the full dive from `sol`. Either way the point
    /// is checked against every row in exact arithmetic before it is
    /// believed.
    fn dive_fixed(&self, sol: Solution, handles: &[Variable], hold: &[usize]) -> Option<Vec<i64>> {
        let values: Vec<f64> = handles.iter().map(|&h| sol[h]).collect();
        for rings in 0..=2 {
            if let Some(point) = self.reduced_dive(&values, hold, rings) {
                return Some(point);
            }
        }
        dive(sol, handles).filter(|point| self.consistent(point))
    }

    /// The reduced dive of [`Part::dive_fixed`]: the fractional variables
    /// of `values` and `rings` sums around them free, the rest held.
    fn reduced_dive(&self, values: &[f64], hold: &[usize], rings: usize) -> Option<Vec<i64>> {
        let lp = self.lp;
        let vars = &lp.component_vars[self.c];
        let mut point: Vec<i64> = values.iter().map(|x| x.round() as i64).collect();
        let mut open: Vec<bool> = values
            .iter()
            .map(|&x| (x - x.round()).abs() > EPS)
            .collect();
        if !open.iter().any(|&o| o) {
            return self.consistent(&point).then_some(point);
        }
        // The held variables are whole here (a target at its bound).
        let held: Vec<bool> = (0..values.len())
            .map(|i| hold.contains(&i) && !open[i])
            .collect();
        for _ in 0..rings {
            let mut next = open.clone();
            for &r in &lp.component_rows[self.c] {
                let terms = &lp.rows[r].terms;
                if terms.iter().any(|&(v, _)| open[self.local[&v]]) {
                    for &(v, _) in terms {
                        let i = self.local[&v];
                        if !held[i] {
                            next[i] = true;
                        }
                    }
                }
            }
            if next == open {
                // Nothing more to free: a wider ring is the same programme.
                return None;
            }
            open = next;
        }
        let mut free: Vec<Option<usize>> = vec![None; values.len()];
        let mut problem = Problem::new(OptimizationDirection::Minimize);
        let mut handles = Vec::new();
        let mut of = Vec::new();
        for i in 0..values.len() {
            if open[i] {
                free[i] = Some(handles.len());
                handles.push(problem.add_var(0.0, lp.bounds[vars[i]]));
                of.push(i);
            }
        }
        if !handles.is_empty() {
            for &r in &lp.component_rows[self.c] {
                let row = &lp.rows[r];
                let mut rhs = row.rhs;
                let mut terms = Vec::new();
                for &(v, coef) in &row.terms {
                    let i = self.local[&v];
                    match free[i] {
                        Some(k) => terms.push((handles[k], coef)),
                        None => rhs -= coef * point[i] as f64,
                    }
                }
                if !terms.is_empty() {
                    problem.add_constraint(terms.as_slice(), row.op, rhs);
                }
            }
            let sol = catch_unwind(AssertUnwindSafe(|| problem.solve()))
                .ok()?
                .ok()?;
            let rest = dive(sol, &handles)?;
            for (k, &i) in of.iter().enumerate() {
                point[i] = rest[k];
            }
        }
        self.consistent(&point).then_some(point)
    }

    /// Whether `point` (whole numbers, by local variable) is a consistent
    /// table: within every variable's bounds and every row exactly (whole
    /// coefficients and right-hand sides, so f64 sums are exact).
    fn consistent(&self, point: &[i64]) -> bool {
        let lp = self.lp;
        let vars = &lp.component_vars[self.c];
        let bounded = vars.iter().zip(point).all(|(&v, &x)| {
            let (low, high) = lp.bounds[v];
            low <= x as f64 && x as f64 <= high
        });
        bounded
            && lp.component_rows[self.c].iter().all(|&r| {
                let row = &lp.rows[r];
                let sum: f64 = row
                    .terms
                    .iter()
                    .map(|&(v, coef)| coef * point[self.local[&v]] as f64)
                    .sum();
                match row.op {
                    ComparisonOp::Eq => (sum - row.rhs).abs() <= EPS,
                    ComparisonOp::Le => sum <= row.rhs + EPS,
                    ComparisonOp::Ge => sum >= row.rhs - EPS,
                }
            })
    }

    /// The whole-number minimum (or maximum) of `target`; `None` when
    /// unbounded. With `any_move`, stops at the first whole-number table in
    /// which `target` differs from its true value on that side. `relaxed`:
    /// the LP interval, if known (no whole-number value lies outside it).
    fn optimum(
        &mut self,
        target: usize,
        maximise: bool,
        any_move: bool,
        relaxed: Option<(u64, Option<u64>)>,
    ) -> Result<Option<i64>, GaveUp> {
        let lp = self.lp;
        let sign = if maximise { -1.0 } else { 1.0 };
        let t = self.local[&target];
        let (mut lower, mut upper) = lp.bounds[target];
        if let Some((low, high)) = relaxed {
            lower = lower.max(low as f64);
            if let Some(h) = high {
                upper = upper.min(h as f64);
            }
        }
        // Nothing to search when a consistent table already sits at the
        // variable's own bound.
        let (seen_low, seen_high) = self.seen[t];
        if !maximise && (seen_low as f64) <= lower + EPS {
            return Ok(Some(seen_low));
        }
        if maximise && upper.is_finite() && (seen_high as f64) >= upper - EPS {
            return Ok(Some(seen_high));
        }
        // With the LP interval known, its bound is a whole number the
        // target can take in the relaxation: a dive from the part's base
        // programme with the target held there, if it reaches a
        // whole-number table, proves it the whole-number optimum too, with
        // no programme of the target's own.
        if let (Some((low, high)), true) = (relaxed, self.fast) {
            let goal = if maximise {
                high.map(|h| h as f64)
            } else {
                Some(low as f64)
            };
            if let Some(goal) = goal {
                if let Some(point) = self.dive_from_base(t, goal) {
                    for (s, &x) in self.seen.iter_mut().zip(&point) {
                        *s = (s.0.min(x), s.1.max(x));
                    }
                    return Ok(Some(goal as i64));
                }
            }
        }
        let (problem, handles) = self.programme(|v| if v == target { sign } else { 0.0 });
        // The best (sign · value) of a whole-number table so far.
        let truth = sign * lp.truth[target];
        let mut best = if maximise {
            -(seen_high as f64)
        } else {
            seen_low as f64
        };
        let root = match catch_unwind(AssertUnwindSafe(|| problem.solve())) {
            Ok(Ok(s)) => s,
            Ok(Err(microlp::Error::Unbounded)) => return Ok(None),
            // The true table is consistent: a root called infeasible is
            // the solver's failure.
            _ => return Err(GaveUp),
        };
        // A dive first: the target held at the relaxation's best whole
        // value, every other fractional cell fixed in turn at its nearest
        // whole value. In these tables of sums it mostly reaches a
        // whole-number table at once, which then closes the search.
        let goal = (root.objective() - EPS).ceil();
        if self.fast && goal < best - 0.5 {
            let point = fix(root.clone(), handles[t], sign * goal)
                .and_then(|s| self.dive_fixed(s, &handles, &[t]));
            if let Some(point) = point {
                for (s, &x) in self.seen.iter_mut().zip(&point) {
                    *s = (s.0.min(x), s.1.max(x));
                }
                best = goal;
            }
        }
        let mut stack: Vec<Solution> = vec![root];
        let mut nodes = 1;
        while let Some(sol) = stack.pop() {
            let bound = (sol.objective() - EPS).ceil();
            if bound >= best - 0.5 {
                continue;
            }
            let values: Vec<f64> = handles.iter().map(|&h| sol[h]).collect();
            let branch = values
                .iter()
                .enumerate()
                .map(|(i, &x)| (i, x, (x - x.round()).abs()))
                .filter(|&(_, _, gap)| gap > EPS)
                .max_by(|a, b| a.2.total_cmp(&b.2));
            let Some((i, x, _)) = branch else {
                // A whole-number corner: a consistent table.
                for (s, &x) in self.seen.iter_mut().zip(&values) {
                    let x = x.round() as i64;
                    *s = (s.0.min(x), s.1.max(x));
                }
                best = best.min((sign * values[t]).round());
                if any_move && best < truth - 0.5 {
                    break;
                }
                continue;
            };
            nodes += 2;
            if nodes
                > if self.fast {
                    MAX_NODES
                } else {
                    REFERENCE_NODES
                }
            {
                // An answer already found stays sound for `any_move`.
                if any_move && best < truth - 0.5 {
                    break;
                }
                return Err(GaveUp);
            }
            let floor = x.floor();
            let h = handles[i];
            let child = |sol: Solution, op: ComparisonOp, rhs: f64| match catch_unwind(
                AssertUnwindSafe(move || sol.add_constraint([(h, 1.0)], op, rhs)),
            ) {
                Ok(Ok(s)) => Ok(Some(s)),
                Ok(Err(microlp::Error::Infeasible)) => Ok(None),
                _ => Err(GaveUp),
            };
            let down = child(sol.clone(), ComparisonOp::Le, floor)?;
            let up = child(sol, ComparisonOp::Ge, floor + 1.0)?;
            // The nearer side first (popped last pushed).
            let (first, second) = if x - floor < 0.5 {
                (down, up)
            } else {
                (up, down)
            };
            stack.extend(second);
            stack.extend(first);
        }
        Ok(Some((sign * best).round() as i64))
    }
}

/// Holds variable `h` at `x`; `None` when infeasible or the solver fails.
fn fix(sol: Solution, h: Variable, x: f64) -> Option<Solution> {
    catch_unwind(AssertUnwindSafe(move || sol.fix_var(h, x)))
        .ok()
        .and_then(Result::ok)
}

/// Looks for a whole-number point from `sol`: fixes the most fractional
/// variable at its nearest whole value (else the other side), until every
/// value is whole. `None` when it gets stuck: a heuristic, the branch and
/// bound decides then.
fn dive(mut sol: Solution, handles: &[Variable]) -> Option<Vec<i64>> {
    for _ in 0..=handles.len() {
        let values: Vec<f64> = handles.iter().map(|&h| sol[h]).collect();
        let branch = values
            .iter()
            .enumerate()
            .map(|(i, &x)| (i, x, (x - x.round()).abs()))
            .filter(|&(_, _, gap)| gap > EPS)
            .max_by(|a, b| a.2.total_cmp(&b.2));
        let Some((i, x, _)) = branch else {
            return Some(values.iter().map(|x| x.round() as i64).collect());
        };
        let near = x.round();
        let far = if near > x { near - 1.0 } else { near + 1.0 };
        sol = match fix(sol.clone(), handles[i], near) {
            Some(s) => s,
            None => fix(sol, handles[i], far)?,
        };
    }
    None
}
