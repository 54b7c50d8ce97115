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
//! A branch the solver calls infeasible is dropped. Should the solver be
//! wrong about one, the whole-number interval comes out narrower than the
//! truth: the audit then errs on the side of refusing.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use microlp::{ComparisonOp, OptimizationDirection, Problem, Solution, Variable};

use super::Lp;

/// The most unknown cells a connected part may have for its whole-number
/// audit. Chosen by measurement (`benches/suppress.rs`): a 500-cell
/// three-way table with every margin under `hes`, one part of 499
/// unknowns, takes 4–6 s; with the bound at 3 000 the full bench (whose
/// `hes` table is one part of ~2 500 unknowns) had not finished after 20
/// minutes.
pub(crate) const MAX_UNKNOWNS: usize = 600;

/// The most programmes one branch and bound (one cell, one direction) may
/// solve, after its dive, before the cell falls back to its
/// linear-programming interval.
pub(crate) const MAX_NODES: usize = 400;

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

/// Why a search stopped without an answer.
struct GaveUp;

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
    base: Option<Result<(Solution, Vec<Variable>), GaveUp>>,
}

impl Lp {
    /// The whole-number audit of `stars` (variables of suppressed cells,
    /// each with its LP interval, which bounds the whole-number one) and
    /// `rounded` (variables of rounded counts).
    pub(crate) fn whole(&self, stars: &[(usize, (u64, Option<u64>))], rounded: &[usize]) -> Whole {
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
            if vars.len() > MAX_UNKNOWNS {
                out.fell_back += stars.len() + rounded.len();
                continue;
            }
            let mut part = Part {
                lp: self,
                c,
                local: vars.iter().enumerate().map(|(i, &v)| (v, i)).collect(),
                seen: vars
                    .iter()
                    .map(|&v| (self.int_seen[v].0 as i64, self.int_seen[v].1 as i64))
                    .collect(),
                base: None,
            };
            for &v in &stars {
                let lp = relaxed.get(&v).copied();
                let low = part.optimum(v, false, false, lp);
                let high = part.optimum(v, true, false, lp);
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

    /// A dive from the base programme with local variable `t` at `goal`.
    fn dive_from_base(&mut self, t: usize, goal: f64) -> Option<Vec<i64>> {
        if self.base.is_none() {
            let (problem, handles) = self.programme(|_| 0.0);
            let solved = catch_unwind(AssertUnwindSafe(|| problem.solve()))
                .ok()
                .and_then(Result::ok)
                .map(|s| (s, handles))
                .ok_or(GaveUp);
            self.base = Some(solved);
        }
        let Some(Ok((base, handles))) = &self.base else {
            return None;
        };
        dive(base.clone(), handles, t, goal)
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
        if let Some((low, high)) = relaxed {
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
        if goal < best - 0.5 {
            if let Some(point) = dive(root.clone(), &handles, t, sign * goal) {
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
            if nodes > MAX_NODES {
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

/// Looks for a whole-number point with variable `t` at `value`: fixes `t`,
/// then the most fractional variable at its nearest whole value (else the
/// other side), until every value is whole. `None` when it gets stuck:
/// a heuristic, the branch and bound decides then.
fn dive(sol: Solution, handles: &[Variable], t: usize, value: f64) -> Option<Vec<i64>> {
    let fix = |sol: Solution, h: Variable, x: f64| {
        catch_unwind(AssertUnwindSafe(move || sol.fix_var(h, x)))
            .ok()
            .and_then(Result::ok)
    };
    let mut sol = fix(sol, handles[t], value)?;
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
