//! The audit: for a suppressed cell, the smallest and largest value a
//! reader could give it that is consistent with everything the release
//! publishes (every released cell, every margin, every rounding interval,
//! and the rules themselves), found by linear programming.
//!
//! The solver is `microlp`, a pure-Rust revised simplex (the maintained
//! fork of `minilp`): no C or C++ library to build or ship on a locked-down
//! release machine, no unsafe code of its own, sparse LU factorisation
//! that handles the thousands of cells of a three-way table with margins,
//! and only `sprs` and `log` as dependencies. `good_lp` would add a
//! modelling layer over the same solver and nothing we need.
//!
//! Speed: the cells are split into connected components of the system
//! (cells published exactly are constants), the two cold programmes of
//! [`Lp::seed`] push every target of a component down and up at once, and
//! each remaining minimum or maximum is re-optimised from the component's
//! previous basis ([`Warm`]) rather than solved from scratch. The optimum
//! of a linear programme does not depend on where the simplex starts, so
//! the intervals are those of a cold solve (the tests and the bench's
//! `--check` compare the two).
//!
//! The interval is the LP relaxation, rounded inwards to whole counts. A
//! reader who solves in whole numbers can do better in three or more
//! dimensions; [`whole`] computes that interval where the part is small
//! enough. Percentages are of released counts and carry no row here.

use std::panic::{catch_unwind, AssertUnwindSafe};

use std::collections::HashMap;

use microlp::{ComparisonOp, OptimizationDirection, Problem, Solution, Variable};

use super::model::Model;

mod whole;
pub(crate) use whole::{WholeMode, MAX_UNKNOWNS};

/// The values a reader could give a suppressed cell: `low..=high`, or
/// `low..` when nothing bounds it above.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Interval {
    pub low: u64,
    pub high: Option<u64>,
    /// The width the rule needs (`high - low` at least).
    pub required: u64,
    /// Whether `low..=high` is the whole-number interval (branch and
    /// bound), else the linear-programming relaxation (which contains it).
    pub whole: bool,
    /// For counts of persons: what a reader can deduce, who cannot know
    /// whether margins add up (the audit itself assumes they do where they
    /// do, which is safe: its interval is never wider than this one).
    pub reader: Option<(u64, Option<u64>)>,
}

impl Interval {
    pub fn width(&self) -> Option<u64> {
        self.high.map(|h| h.saturating_sub(self.low))
    }

    pub fn passes(&self) -> bool {
        self.width().is_none_or(|w| w >= self.required)
    }
}

impl Interval {
    /// An interval of `low..=high` from the relaxation, nothing else known.
    pub fn lp(low: u64, high: Option<u64>, required: u64) -> Self {
        Self {
            low,
            high,
            required,
            whole: false,
            reader: None,
        }
    }

    /// `whole-number` or `LP`: how the interval was found.
    pub fn kind(&self) -> &'static str {
        if self.whole {
            "whole-number"
        } else {
            "LP"
        }
    }

    /// The reader's interval as text, for counts of persons.
    pub fn reader_text(&self) -> Option<String> {
        self.reader.map(|(low, high)| span(low, high))
    }
}

fn span(low: u64, high: Option<u64>) -> String {
    match high {
        Some(h) => format!("{low}–{h}"),
        None => format!("{low}–∞"),
    }
}

impl std::fmt::Display for Interval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&span(self.low, self.high))
    }
}

#[derive(Debug, Clone)]
struct Row {
    terms: Vec<(usize, f64)>,
    op: ComparisonOp,
    rhs: f64,
}

/// The linear system of one state of the release.
pub(crate) struct Lp {
    /// Node → variable, or the node's exactly known value.
    var_of: Vec<Result<usize, f64>>,
    bounds: Vec<(f64, f64)>,
    rows: Vec<Row>,
    /// Variable → its connected component.
    component: Vec<usize>,
    /// Component → its rows.
    component_rows: Vec<Vec<usize>>,
    /// Component → its variables.
    component_vars: Vec<Vec<usize>>,
    /// The smallest and largest value each variable has taken in a
    /// feasible point so far (the true values, then every LP optimum): a
    /// variable seen at its own bound needs no programme for that side.
    seen: Vec<(f64, f64)>,
    /// The same over whole-number points only (every value a whole
    /// number): each one a consistent whole-number table, which the
    /// whole-number audit starts from.
    int_seen: Vec<(f64, f64)>,
    /// A bound no feasible point exceeds, for every variable (the LP's own
    /// upper bound where it has one, else one implied by the sums).
    ceiling: Vec<f64>,
    /// Variables given a switch in the warm programmes (the seeded targets).
    switchable: Vec<bool>,
    /// Each variable's true value (a consistent whole-number point).
    truth: Vec<f64>,
    /// (component, maximise) → its warm programme, `None` once it failed
    /// (the cold path then answers).
    warm: HashMap<(usize, bool), Option<Warm>>,
    /// Whether to re-optimise warm programmes (else every cell is solved
    /// from scratch: the reference the tests and the bench compare with).
    warm_starts: bool,
}

/// One component's programme, solved once and then re-optimised from its
/// last basis for each cell.
///
/// microlp cannot change an objective after a solve, only fix and unfix
/// variables. So every target `x` gets a switch: a cost variable `z ≥ 0`
/// (objective: minimise the sum of all `z`) and a free point `s` in `x`'s
/// own range, tied by `z ≥ x − s` (for the minimum) or `z ≥ s − x` (for
/// the maximum). While `s` is free it follows `x` and `z` is 0: the switch
/// costs nothing and constrains nothing. Fixing `s` at `x`'s lower bound
/// (or at a bound `x` never exceeds) makes the objective `x − low` (or
/// `ceiling − x`), whose optimum is the cell's minimum (maximum) over the
/// very same system; the dual simplex gets there from the previous basis
/// in a few pivots instead of a cold solve. Unfixing `s` returns to the
/// switch-free optimum for the next cell.
struct Warm {
    solution: Solution,
    /// Component variable → its handle.
    handle: HashMap<usize, Variable>,
    /// Target variable → its switch `s` and the value that turns it on.
    switch: HashMap<usize, (Variable, f64)>,
}

#[derive(Debug, thiserror::Error)]
#[error("the linear programme of the audit failed ({0})")]
pub struct SolverError(pub String);

/// Counts are far below 2^53: f64 holds them exactly.
fn f(n: u64) -> f64 {
    n as f64
}

impl Lp {
    pub fn build(model: &Model, warm_starts: bool) -> Self {
        Self::build_view(model, warm_starts, false)
    }

    /// The variable of `node`, or `None` when its value is known exactly.
    pub fn var(&self, node: usize) -> Option<usize> {
        self.var_of[node].ok()
    }

    /// With `reader`, the system as a reader sees it: margins of persons
    /// are never taken to be sums (a reader cannot know whether they add
    /// up), so the intervals are what the reader can really deduce.
    /// Without, a margin of persons whose cells do add up is a sum: the
    /// audit's safe test, never wider than the reader's.
    pub fn build_view(model: &Model, warm_starts: bool, reader: bool) -> Self {
        let mut var_of = Vec::with_capacity(model.nodes.len());
        let mut bounds = Vec::new();
        let mut seen = Vec::new();
        let mut truth = Vec::new();
        for n in 0..model.nodes.len() {
            let (low, high) = model.bounds(n);
            if high == Some(low) {
                var_of.push(Err(f(low)));
            } else {
                var_of.push(Ok(bounds.len()));
                bounds.push((f(low), high.map_or(f64::INFINITY, f)));
                // The truth is a feasible point of the reader's system.
                seen.push((f(model.nodes[n].value), f(model.nodes[n].value)));
                truth.push(f(model.nodes[n].value));
            }
        }
        let mut rows = Vec::new();
        let mut push = |terms: &[(usize, f64)], op: ComparisonOp, rhs: f64| {
            let mut vars = Vec::new();
            let mut rhs = rhs;
            for &(node, coef) in terms {
                match var_of[node] {
                    Ok(v) => vars.push((v, coef)),
                    Err(value) => rhs -= coef * value,
                }
            }
            merge_terms(&mut vars);
            if !vars.is_empty() {
                rows.push(Row {
                    terms: vars,
                    op,
                    rhs,
                });
            }
        };
        // One sum per margin cell is enough when sums add up: every margin
        // is then the sum of its interior cells, which implies the sums over
        // its other dimensions. Redundant rows only slow the simplex.
        let mut summed = vec![false; model.nodes.len()];
        for rel in &model.relations {
            let mut terms = vec![(rel.total, 1.0)];
            terms.extend(rel.parts.iter().map(|&p| (p, -1.0)));
            if rel.additive && !(reader && rel.persons) {
                if std::mem::replace(&mut summed[rel.total], true) {
                    continue;
                }
                push(&terms, ComparisonOp::Eq, 0.0);
            } else {
                push(&terms, ComparisonOp::Le, 0.0);
                for &p in &rel.parts {
                    push(&[(rel.total, 1.0), (p, -1.0)], ComparisonOp::Ge, 0.0);
                }
            }
        }
        // Components, so that each cell's programme holds only what can
        // move with it.
        let mut parent: Vec<usize> = (0..bounds.len()).collect();
        fn find(parent: &mut [usize], mut x: usize) -> usize {
            while parent[x] != x {
                parent[x] = parent[parent[x]];
                x = parent[x];
            }
            x
        }
        for row in &rows {
            let first = find(&mut parent, row.terms[0].0);
            for &(v, _) in &row.terms[1..] {
                let r = find(&mut parent, v);
                parent[r] = first;
            }
        }
        let mut id = vec![usize::MAX; bounds.len()];
        let mut component = vec![0; bounds.len()];
        let mut component_vars: Vec<Vec<usize>> = Vec::new();
        for (v, slot) in component.iter_mut().enumerate() {
            let r = find(&mut parent, v);
            if id[r] == usize::MAX {
                id[r] = component_vars.len();
                component_vars.push(Vec::new());
            }
            *slot = id[r];
            component_vars[id[r]].push(v);
        }
        let mut component_rows = vec![Vec::new(); component_vars.len()];
        for (i, row) in rows.iter().enumerate() {
            component_rows[component[row.terms[0].0]].push(i);
        }
        let ceiling = ceilings(&bounds, &rows);
        let switchable = vec![false; bounds.len()];
        Lp {
            var_of,
            bounds,
            rows,
            component,
            component_rows,
            component_vars,
            int_seen: seen.clone(),
            seen,
            ceiling,
            switchable,
            truth,
            warm: HashMap::new(),
            warm_starts,
        }
    }

    /// The values a reader could give `node`, rounded inwards to counts.
    pub fn interval(&mut self, node: usize, required: u64) -> Result<Interval, SolverError> {
        let var = match self.var_of[node] {
            Err(value) => {
                let v = value as u64;
                return Ok(Interval {
                    whole: true,
                    ..Interval::lp(v, Some(v), required)
                });
            }
            Ok(v) => v,
        };
        let (lower, upper) = self.bounds[var];
        let low = if self.seen[var].0 <= lower + 1e-9 {
            Some(lower)
        } else {
            self.optimise(var, OptimizationDirection::Minimize)?
        };
        let high = if self.seen[var].1 >= upper - 1e-9 {
            Some(upper)
        } else {
            self.optimise(var, OptimizationDirection::Maximize)?
        };
        let low = low.map_or(0, |x| (x - 1e-6).ceil().max(0.0) as u64);
        let high = high.map(|x| (x + 1e-6).floor().max(0.0) as u64);
        Ok(Interval::lp(low, high.map(|h| h.max(low)), required))
    }

    /// Whether `node`'s interval is at least `required` wide. Two feasible
    /// points already that far apart (whole counts inwards) prove it
    /// without a programme; otherwise as [`Lp::interval`].
    pub fn passes(&mut self, node: usize, required: u64) -> Result<bool, SolverError> {
        if let Ok(v) = self.var_of[node] {
            let (low, high) = self.seen[v];
            if (high + 1e-6).floor() - (low - 1e-6).ceil() >= required as f64 {
                return Ok(true);
            }
        }
        Ok(self.interval(node, required)?.passes())
    }

    /// Gives each of `nodes` a switch in the warm programmes, so that
    /// their intervals are re-optimised rather than solved from scratch.
    pub fn target(&mut self, nodes: &[usize]) {
        for &n in nodes {
            if let Ok(v) = self.var_of[n] {
                self.switchable[v] = true;
            }
        }
    }

    /// Pushes all of `nodes` down together, then up together: two
    /// programmes per component whose optima put many cells at their own
    /// bounds at once, so that most cells then need none of their own.
    pub fn seed(&mut self, nodes: &[usize]) -> Result<(), SolverError> {
        self.target(nodes);
        let mut by_component: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
        for &n in nodes {
            if let Ok(v) = self.var_of[n] {
                by_component.entry(self.component[v]).or_default().push(v);
            }
        }
        for vars in by_component.values() {
            if vars.len() < 2 {
                continue;
            }
            for direction in [
                OptimizationDirection::Minimize,
                OptimizationDirection::Maximize,
            ] {
                self.solve(vars, direction)?;
            }
        }
        Ok(())
    }

    /// The optimum of `var` over its component; `None` when unbounded.
    fn optimise(
        &mut self,
        var: usize,
        direction: OptimizationDirection,
    ) -> Result<Option<f64>, SolverError> {
        if let Some(x) = self.warm_optimise(var, direction) {
            return Ok(Some(x));
        }
        self.solve(&[var], direction)
    }

    /// The optimum of `var` from its component's warm programme; `None`
    /// when it has none (not a seeded target, no finite ceiling, or the
    /// programme failed), and the cold path answers.
    fn warm_optimise(&mut self, var: usize, direction: OptimizationDirection) -> Option<f64> {
        if !self.warm_starts || !self.switchable[var] {
            return None;
        }
        let maximise = direction == OptimizationDirection::Maximize;
        let key = (self.component[var], maximise);
        if !self.warm.contains_key(&key) {
            let warm = self.warm_build(key.0, maximise);
            self.warm.insert(key, warm);
        }
        let warm = self.warm.get_mut(&key)?.take()?;
        let Some(&(s, on)) = warm.switch.get(&var) else {
            self.warm.insert(key, Some(warm));
            return None;
        };
        let x = warm.handle[&var];
        let Warm {
            solution,
            handle,
            switch,
        } = warm;
        // As for the cold path: an internal check of the solver fails this
        // programme, not the process; the cold path then answers.
        let solved = catch_unwind(AssertUnwindSafe(move || {
            let solution = solution.fix_var(s, on).ok()?;
            let value = solution[x];
            let point: Vec<(usize, f64)> = handle.iter().map(|(&v, &h)| (v, solution[h])).collect();
            let (solution, unfixed) = solution.unfix_var(s);
            unfixed.then_some((
                Warm {
                    solution,
                    handle,
                    switch,
                },
                value,
                point,
            ))
        }))
        .ok()
        .flatten();
        let (warm, value, point) = solved?;
        self.record(&point);
        self.warm.insert(key, Some(warm));
        Some(value)
    }

    /// Remembers a feasible point of one component (every variable of it):
    /// in `seen`, and in `int_seen` too when it is a whole-number point.
    /// With whole coefficients and right-hand sides, a point within 1e-6 of
    /// whole numbers rounds to one that satisfies every row exactly.
    fn record(&mut self, point: &[(usize, f64)]) {
        for &(v, x) in point {
            let s = &mut self.seen[v];
            *s = (s.0.min(x), s.1.max(x));
        }
        if point.iter().all(|&(_, x)| (x - x.round()).abs() <= 1e-6) {
            for &(v, x) in point {
                let x = x.round();
                let s = &mut self.int_seen[v];
                *s = (s.0.min(x), s.1.max(x));
            }
        }
    }

    /// Component `c`'s programme with a switch for each of its targets,
    /// solved once with every switch off.
    fn warm_build(&self, c: usize, maximise: bool) -> Option<Warm> {
        let mut problem = Problem::new(OptimizationDirection::Minimize);
        let mut handle = HashMap::with_capacity(self.component_vars[c].len());
        for &v in &self.component_vars[c] {
            handle.insert(v, problem.add_var(0.0, self.bounds[v]));
        }
        for &r in &self.component_rows[c] {
            let row = &self.rows[r];
            let terms: Vec<(Variable, f64)> = row
                .terms
                .iter()
                .map(|&(v, coef)| (handle[&v], coef))
                .collect();
            problem.add_constraint(terms.as_slice(), row.op, row.rhs);
        }
        let mut switch = HashMap::new();
        for &v in &self.component_vars[c] {
            let (low, _) = self.bounds[v];
            let ceiling = self.ceiling[v];
            if !self.switchable[v] || (maximise && !ceiling.is_finite()) {
                continue;
            }
            let z = problem.add_var(1.0, (0.0, f64::INFINITY));
            let s = problem.add_var(0.0, (low, ceiling));
            let x = handle[&v];
            if maximise {
                problem.add_constraint([(s, 1.0), (x, -1.0), (z, -1.0)], ComparisonOp::Le, 0.0);
                switch.insert(v, (s, ceiling));
            } else {
                problem.add_constraint([(x, 1.0), (s, -1.0), (z, -1.0)], ComparisonOp::Le, 0.0);
                switch.insert(v, (s, low));
            }
        }
        if switch.is_empty() {
            return None;
        }
        let solution = catch_unwind(AssertUnwindSafe(|| problem.solve()))
            .ok()?
            .ok()?;
        Some(Warm {
            solution,
            handle,
            switch,
        })
    }

    /// The optimum of the sum of `targets` (all in one component).
    fn solve(
        &mut self,
        targets: &[usize],
        direction: OptimizationDirection,
    ) -> Result<Option<f64>, SolverError> {
        let var = targets[0];
        let c = self.component[var];
        let vars = &self.component_vars[c];
        if direction == OptimizationDirection::Maximize
            && targets.iter().any(|&t| self.bounds[t].1.is_infinite())
            && self.component_rows[c].is_empty()
        {
            return Ok(None);
        }
        let mut problem = Problem::new(direction);
        let mut local = std::collections::HashMap::with_capacity(vars.len());
        let mut handles = Vec::with_capacity(vars.len());
        for &v in vars {
            let objective = if targets.contains(&v) { 1.0 } else { 0.0 };
            let h = problem.add_var(objective, self.bounds[v]);
            local.insert(v, h);
            handles.push((v, h));
        }
        for &r in &self.component_rows[c] {
            let row = &self.rows[r];
            let terms: Vec<(microlp::Variable, f64)> = row
                .terms
                .iter()
                .map(|&(v, coef)| (local[&v], coef))
                .collect();
            problem.add_constraint(terms.as_slice(), row.op, row.rhs);
        }
        // The solver asserts on states it thinks impossible; an audit that
        // cannot finish must fail the release, not the process.
        match catch_unwind(AssertUnwindSafe(|| problem.solve())) {
            Ok(Ok(solution)) => {
                let point: Vec<(usize, f64)> = handles
                    .iter()
                    .map(|&(v, h)| (v, *solution.var_value(h)))
                    .collect();
                self.record(&point);
                Ok(Some(solution.objective()))
            }
            Ok(Err(microlp::Error::Unbounded)) => Ok(None),
            Ok(Err(e)) => Err(SolverError(e.to_string())),
            Err(_) => Err(SolverError(
                "the solver stopped on an internal check".into(),
            )),
        }
    }
}

/// For each variable, a value no feasible point exceeds: its own upper
/// bound, or where it has none, one implied by the rows (each row's other
/// terms at their smallest), with a margin of one count against rounding.
/// Infinite where nothing bounds it.
fn ceilings(bounds: &[(f64, f64)], rows: &[Row]) -> Vec<f64> {
    let mut up: Vec<f64> = bounds.iter().map(|b| b.1).collect();
    let open: Vec<bool> = up.iter().map(|u| u.is_infinite()).collect();
    if !open.iter().any(|&o| o) {
        return up;
    }
    // Implied bounds only tighten, so a few rounds reach what they can.
    for _ in 0..16 {
        let mut changed = false;
        for row in rows {
            let signs: &[f64] = match row.op {
                ComparisonOp::Le => &[1.0],
                ComparisonOp::Ge => &[-1.0],
                ComparisonOp::Eq => &[1.0, -1.0],
            };
            for &sign in signs {
                // sign · Σ a x ≤ sign · rhs: the least each term can be.
                let least = |&(v, a): &(usize, f64)| {
                    let c = sign * a;
                    if c > 0.0 {
                        c * bounds[v].0
                    } else {
                        c * up[v]
                    }
                };
                let mut finite = 0.0;
                let mut infinite = 0;
                for t in &row.terms {
                    let l = least(t);
                    if l.is_finite() {
                        finite += l;
                    } else {
                        infinite += 1;
                    }
                }
                let mut tighter = Vec::new();
                for t in &row.terms {
                    let &(v, a) = t;
                    let c = sign * a;
                    if c <= 0.0 || !open[v] {
                        continue;
                    }
                    let own = least(t);
                    let others = if infinite == 0 {
                        finite - own
                    } else if infinite == 1 && !own.is_finite() {
                        finite
                    } else {
                        continue;
                    };
                    let bound = (sign * row.rhs - others) / c;
                    if bound < up[v] - 0.5 {
                        tighter.push((v, bound));
                    }
                }
                for (v, bound) in tighter {
                    up[v] = bound;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    up.iter()
        .zip(&open)
        .map(|(&u, &o)| {
            if o && u.is_finite() {
                u.ceil() + 1.0
            } else {
                u
            }
        })
        .collect()
}

/// Adds up repeated variables of one row (a node that is both the total and
/// a part cannot occur, but a percentage of a cell over itself can).
fn merge_terms(terms: &mut Vec<(usize, f64)>) {
    terms.sort_by_key(|t| t.0);
    let mut out: Vec<(usize, f64)> = Vec::with_capacity(terms.len());
    for &(v, c) in terms.iter() {
        match out.last_mut() {
            Some(last) if last.0 == v => last.1 += c,
            _ => out.push((v, c)),
        }
    }
    out.retain(|t| t.1 != 0.0);
    *terms = out;
}
