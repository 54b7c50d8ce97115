//! The structure of the crate, drawn from its own source: every `crate::` and
//! `super::` path in `src/` is an edge from the module that writes it to the
//! module it names. The drawing must have no cycle, at the level of the
//! top modules (`aggregate`, `config`, …) and one level down
//! (`synth::people`, `synth::episodes`, …): a cycle means two modules that
//! cannot be understood, tested or changed one without the other.
//!
//! Test code is left out (files named `tests.rs` and a trailing
//! `#[cfg(test)] mod tests`): a stage's tests may build their input with
//! another stage.
//!
//! The same drawing, without Rust: `python3` over the same rules is in the
//! README ("Layout").

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;
type Graph = BTreeMap<Module, BTreeSet<Module>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module a file defines: `src/link/tier1.rs` is `link::tier1`,
/// `src/link/mod.rs` is `link`.
fn module_of(src: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Module = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The source without comments (a doc link is not an import) and without a
/// trailing test module.
fn code_of(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let line = match line.find("//") {
            // `//` inside a string (a URL) is rare in this crate; a
            // line cut short there only loses edges, never adds one.
            Some(i) => &line[..i],
            None => line,
        };
        out.push_str(line);
        out.push('\n');
    }
    match out.find("#[cfg(test)]\nmod tests {") {
        Some(i) => out[..i].to_string(),
        None => out,
    }
}

/// Every path `crate::a::b…` or `super::a…` in `code`, as segments.
fn paths_in(code: &str) -> Vec<(bool, Vec<String>)> {
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    for root in ["crate", "super"] {
        let mut from = 0;
        while let Some(i) = code[from..].find(root).map(|i| i + from) {
            from = i + root.len();
            let before = i.checked_sub(1).map(|j| bytes[j]);
            if before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':') {
                continue;
            }
            let mut segs = Vec::new();
            let mut rest = &code[from..];
            while let Some(r) = rest.strip_prefix("::") {
                let n = r
                    .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                    .unwrap_or(r.len());
                if n == 0 {
                    break;
                }
                segs.push(r[..n].to_string());
                rest = &r[n..];
            }
            if !segs.is_empty() {
                found.push((root == "crate", segs));
            }
        }
    }
    found
}

fn is_module(src: &Path, m: &[String]) -> bool {
    let p = m.iter().fold(src.to_path_buf(), |p, s| p.join(s));
    p.is_dir() || p.with_extension("rs").is_file()
}

fn graph(src: &Path, depth: usize) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut g = Graph::new();
    for file in files {
        if file.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let me = module_of(src, &file);
        if me.is_empty() {
            continue;
        }
        let from: Module = me.iter().take(depth).cloned().collect();
        g.entry(from.clone()).or_default();
        let code = code_of(&std::fs::read_to_string(&file).unwrap());
        for (absolute, segs) in paths_in(&code) {
            let target: Module = if absolute {
                segs
            } else {
                me[..me.len() - 1].iter().cloned().chain(segs).collect()
            };
            // The deepest prefix (up to `depth`) that is a module: an item's
            // name is not a module.
            let to = (1..=depth.min(target.len()))
                .rev()
                .map(|n| target[..n].to_vec())
                .find(|m| is_module(src, m));
            let Some(to) = to else { continue };
            let nested = to.starts_with(&from) || from.starts_with(&to);
            if !nested {
                g.entry(from.clone()).or_default().insert(to.clone());
                g.entry(to).or_default();
            }
        }
    }
    g
}

/// The strongly connected components of more than one module (Tarjan).
fn cycles(g: &Graph) -> Vec<Vec<String>> {
    struct State<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        on: BTreeSet<&'a Module>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a Module) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on.insert(v);
        for w in &s.g[v] {
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            loop {
                let w = s.stack.pop().unwrap();
                s.on.remove(w);
                comp.push(w.join("::"));
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s = State {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn m(s: &str) -> Module {
    s.split("::").map(String::from).collect()
}

#[test]
fn the_top_modules_import_each_other_without_a_cycle() {
    let g = graph(&src(), 1);
    // The drawing sees the imports that must be there, so an empty or
    // broken drawing cannot pass for an acyclic one.
    for (from, to) in [
        ("pipeline", "link"),
        ("aggregate", "counts"),
        ("suppress", "counts"),
        ("aggregate", "suppress"),
        ("config", "objections"),
        ("objections", "link"),
        ("minimise", "config_file"),
    ] {
        assert!(
            g[&m(from)].contains(&m(to)),
            "the drawing lacks {from} -> {to}: {:?}",
            g[&m(from)]
        );
    }
    for leaf in ["config_file", "counts"] {
        assert!(
            g[&m(leaf)].is_empty(),
            "{leaf} is a leaf module, but imports {:?}",
            g[&m(leaf)]
        );
    }
    assert!(g.len() >= 20, "only {} modules found", g.len());
    assert_eq!(cycles(&g), Vec::<Vec<String>>::new());
}

#[test]
fn the_modules_one_level_down_import_each_other_without_a_cycle() {
    let g = graph(&src(), 2);
    assert!(g[&m("synth::episodes")].contains(&m("synth::people")));
    assert!(g[&m("link::tier1")].len() >= 2);
    assert_eq!(cycles(&g), Vec::<Vec<String>>::new());
}

#[test]
fn a_cycle_is_found_when_there_is_one() {
    let dir = std::env::temp_dir().join(format!("dars-modgraph-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("a")).unwrap();
    std::fs::write(dir.join("lib.rs"), "pub mod a; pub mod b; pub mod c;\n").unwrap();
    std::fs::write(dir.join("a/mod.rs"), "use crate::b::X; // crate::c::Y\n").unwrap();
    std::fs::write(dir.join("b.rs"), "pub struct X; fn f() { crate::a::g() }\n").unwrap();
    std::fs::write(
        dir.join("c.rs"),
        "#[cfg(test)]\nmod tests { use crate::a; }\n",
    )
    .unwrap();
    let g = graph(&dir, 1);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(cycles(&g), vec![vec!["a".to_string(), "b".to_string()]]);
    assert!(
        g[&m("c")].is_empty(),
        "a comment or a test module made an edge"
    );
}
