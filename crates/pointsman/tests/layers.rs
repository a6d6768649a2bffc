//! The engine's modules read bottom-up (docs/architecture.md): a module's code uses only modules
//! of its own layer or of the layers below, and no two modules use each other, directly or
//! through others. A router family's folder (`routers/knn/`, …) counts as one module: its files
//! may use each other. Test code (`#[cfg(test)]` modules, `tests.rs` files) is left out: a test
//! may load a file through the registry.
//!
//! Also here: the router kinds' names are spelled as string literals in one file of the engine,
//! the command line and the bindings (`kind.rs`), as the registry issue asks.
//!
//! This test reads source files only; it does not link the engine.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The engine's modules by layer, bottom first. A module may use modules of its own layer (no
/// cycle) and of lower ones.
const LAYERS: &[&[&str]] = &[
    &["error", "rng", "simd"],
    &["features", "files", "kind", "pool"],
    &["data", "saved"],
    &["router"],
    &["calibrate", "metrics", "tuning", "ndarray_support"],
    &[
        "routers",
        "routers::baseline",
        "routers::knn",
        "routers::mf",
        "routers::irt",
        "routers::stack",
        "routers::bandit",
        "routers::cascade",
    ],
    &["registry"],
    &["eval", "replay", "embed", "fuzzing", "policy", "share"],
];

/// A source file's text without comments, string and char literals' contents, and test code.
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b[i] == b'r' && (b[i..].starts_with(b"r\"") || b[i..].starts_with(b"r#")) {
            // A raw string: r"…", r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while j < b.len() && b[j] == b'#' {
                hashes += 1;
                j += 1;
            }
            if j < b.len() && b[j] == b'"' {
                let close: Vec<u8> = std::iter::once(b'"')
                    .chain(std::iter::repeat_n(b'#', hashes))
                    .collect();
                j += 1;
                while j < b.len() && !b[j..].starts_with(&close) {
                    j += 1;
                }
                out.push_str("\"\"");
                i = (j + close.len()).min(b.len());
            } else {
                out.push('r');
                i += 1;
            }
        } else if b[i] == b'"' {
            let start = i;
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            // Keep the literal (for the kind-name check), quotes included.
            out.push_str(&src[start..i.min(src.len())]);
        } else if b[i] == b'\'' && i + 2 < b.len() && (b[i + 2] == b'\'' || b[i + 1] == b'\\') {
            // A char literal ('x', '\n'); lifetimes ('a) are left alone.
            let mut j = i + 1;
            if b[j] == b'\\' {
                j += 2;
            } else {
                j += 1;
            }
            while j < b.len() && b[j] != b'\'' {
                j += 1;
            }
            out.push_str("' '");
            i = j + 1;
        } else {
            let c = src[i..].chars().next().expect("a character");
            out.push(c);
            i += c.len_utf8();
        }
    }
    strip_test_modules(&out)
}

/// Whether a `#[cfg(…)]` attribute's condition holds only under `test` (`test`,
/// `all(test, …)`), not its negation.
fn test_only(cond: &str) -> bool {
    let words: Vec<&str> = cond
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    words.contains(&"test") && !cond.contains("not(test") && !cond.starts_with("any(")
}

/// `code` without the items under a test-only `#[cfg(…)]` (a module or function with its body,
/// or `mod x;`).
fn strip_test_modules(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(") {
        let after = &rest[at..];
        let cond_end = after.find(")]").map_or(after.len(), |e| e + 2);
        let cond = &after["#[cfg(".len()..cond_end.saturating_sub(2).max("#[cfg(".len())];
        if !test_only(cond) {
            out.push_str(&rest[..at + cond_end]);
            rest = &rest[at + cond_end..];
            continue;
        }
        out.push_str(&rest[..at]);
        // The item ends at its `;` or at the brace that closes its first `{`.
        let semi = after.find(';');
        let brace = after.find('{');
        match (brace, semi) {
            (Some(o), s) if s.is_none_or(|s| o < s) => {
                let mut depth = 0usize;
                let mut end = after.len();
                for (k, ch) in after[o..].char_indices() {
                    match ch {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = o + k + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                rest = &after[end..];
            }
            (_, Some(s)) => rest = &after[s + 1..],
            _ => rest = "",
        }
    }
    out.push_str(rest);
    out
}

/// The module path of a file under `src` (`routers/knn/tune.rs` → `routers::knn::tune`).
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().to_string())
        .collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_string());
    }
    parts
}

/// The module a path belongs to: its first segment, or `routers::<family>` under `routers`.
fn unit_of(path: &[String]) -> Option<String> {
    match path {
        [] => None,
        [r, family, ..] if r == "routers" => Some(format!("routers::{family}")),
        [first, ..] => Some(first.clone()),
    }
}

/// Every module path that `code` (of the file at module path `here`) names: `crate::a::b`,
/// `use crate::{a, b::c}`, and `super::…` resolved from the (inline) module it appears in.
fn references(code: &str, here: &[String]) -> Vec<Vec<String>> {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = Vec::new();
    // Inline modules open at this point: (name, brace depth inside them).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < code.len() {
        let rest = &code[i..];
        let c = rest.chars().next().expect("a character");
        let boundary = i == 0 || !ident(code[..i].chars().next_back().expect("a character"));
        if c == '{' {
            depth += 1;
        } else if c == '}' {
            depth = depth.saturating_sub(1);
            while inline.last().is_some_and(|(_, d)| *d > depth) {
                inline.pop();
            }
        } else if boundary && rest.starts_with("mod ") {
            // `mod name {`: an inline module; `mod name;` a file (left to its own file).
            let after = rest["mod ".len()..].trim_start();
            let end = after.find(|c: char| !ident(c)).unwrap_or(after.len());
            if after[end..].trim_start().starts_with('{') {
                inline.push((after[..end].to_string(), depth + 1));
            }
        } else if boundary && rest.starts_with("crate::") {
            out.extend(paths_after(&rest["crate::".len()..]));
            i += "crate::".len();
            continue;
        } else if boundary && rest.starts_with("super::") {
            let mut base: Vec<String> = here.to_vec();
            base.extend(inline.iter().map(|(n, _)| n.clone()));
            base.pop();
            let mut r = &rest["super::".len()..];
            while let Some(more) = r.strip_prefix("super::") {
                base.pop();
                r = more;
            }
            for p in paths_after(r) {
                let mut full = base.clone();
                full.extend(p);
                out.push(full);
            }
            i += "super::".len();
            continue;
        }
        i += c.len_utf8();
    }
    out
}

/// The paths at the start of `s`: `a::b::c` or `{a::b, c::{d, e}}` (one level of braces is
/// enough for the first two segments, which decide the module).
fn paths_after(s: &str) -> Vec<Vec<String>> {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let s = s.trim_start();
    if let Some(inner) = s.strip_prefix('{') {
        // Split the braces' top level on commas.
        let mut depth = 0;
        let mut items = Vec::new();
        let mut cur = String::new();
        for c in inner.chars() {
            match c {
                '{' => {
                    depth += 1;
                    cur.push(c);
                }
                '}' if depth == 0 => break,
                '}' => {
                    depth -= 1;
                    cur.push(c);
                }
                ',' if depth == 0 => items.push(std::mem::take(&mut cur)),
                _ => cur.push(c),
            }
        }
        items.push(cur);
        return items.iter().flat_map(|it| paths_after(it.trim())).collect();
    }
    let mut path = Vec::new();
    let mut rest = s;
    loop {
        let end = rest.find(|c: char| !ident(c)).unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        path.push(rest[..end].to_string());
        rest = &rest[end..];
        match rest.strip_prefix("::") {
            Some(r) if r.starts_with('{') => {
                return paths_after(r)
                    .into_iter()
                    .map(|p| path.iter().cloned().chain(p).collect())
                    .collect();
            }
            Some(r) => rest = r,
            None => break,
        }
    }
    vec![path]
}

/// The edges between modules of the crate whose sources are under `src`: module → the modules
/// its non-test code uses.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(src) {
        let rel = file.strip_prefix(src).expect("under src");
        if rel.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let here = module_path(rel);
        let Some(unit) = unit_of(&here) else {
            continue; // lib.rs
        };
        let code = code_only(&std::fs::read_to_string(&file).expect("readable source"));
        let entry = graph.entry(unit.clone()).or_default();
        for path in references(&code, &here) {
            if let Some(to) = unit_of(&path) {
                if to != unit && (path.len() > 1 || !to.contains("::")) {
                    entry.insert(to);
                }
            }
        }
    }
    // Only modules that exist (a path such as crate::Result names an item of lib.rs).
    let known: BTreeSet<String> = graph.keys().cloned().collect();
    for deps in graph.values_mut() {
        deps.retain(|d| known.contains(d));
    }
    graph
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("a readable folder") {
            let p = e.expect("an entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The import cycles of `graph`: its strongly connected components of more than one module.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Tarjan's algorithm.
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        t.index.insert(v, t.next);
        t.low.insert(v, t.next);
        t.next += 1;
        t.stack.push(v);
        t.on.insert(v);
        let g = t.g;
        for w in g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut scc = Vec::new();
            loop {
                let w = t.stack.pop().expect("on the stack");
                t.on.remove(w);
                scc.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort();
                t.out.push(scc);
            }
        }
    }
    let mut t = T {
        g: graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

/// The edges that point up the layers, and the modules missing from `LAYERS`.
fn upward_edges(graph: &BTreeMap<String, BTreeSet<String>>) -> (Vec<String>, Vec<String>) {
    let layer = |m: &str| LAYERS.iter().position(|l| l.contains(&m));
    let mut up = Vec::new();
    let mut missing = Vec::new();
    for (from, deps) in graph {
        let Some(lf) = layer(from) else {
            missing.push(from.clone());
            continue;
        };
        for to in deps {
            match layer(to) {
                Some(lt) if lt > lf => {
                    up.push(format!("{from} (layer {lf}) uses {to} (layer {lt})"))
                }
                Some(_) => {}
                None => missing.push(to.clone()),
            }
        }
    }
    missing.sort();
    missing.dedup();
    (up, missing)
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn the_engine_has_no_import_cycle_and_uses_only_lower_layers() {
    let graph = module_graph(&src());
    assert!(graph.contains_key("registry") && graph.contains_key("routers::knn"));
    let found = cycles(&graph);
    assert!(
        found.is_empty(),
        "import cycles between engine modules: {found:?}"
    );
    let (up, missing) = upward_edges(&graph);
    assert!(
        missing.is_empty(),
        "modules not in LAYERS (tests/layers.rs, docs/architecture.md): {missing:?}"
    );
    assert!(
        up.is_empty(),
        "edges pointing up the layers:\n{}",
        up.join("\n")
    );
    // The graph is what the code says: a few edges that must be there.
    assert!(graph["registry"].contains("routers::knn"));
    assert!(graph["routers::cascade"].contains("routers::knn"));
    assert!(graph["eval"].contains("registry"));
    assert!(!graph["router"].contains("routers::cascade"));
}

/// The check fails on a cycle added on purpose: two modules of a small crate that use each
/// other, once through `use crate::…` and once through a grouped import; a cycle inside one
/// router family's folder is not one.
#[test]
fn the_check_finds_a_deliberate_cycle() {
    let dir = std::env::temp_dir().join(format!("pointsman-layers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let write = |rel: &str, text: &str| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write("lib.rs", "pub mod a;\npub mod b;\npub mod routers;\n");
    write(
        "a.rs",
        "use crate::b::Thing;\n// crate::c in a comment is not a use\n",
    );
    write(
        "b.rs",
        "use crate::{error::E, a::Other};\n#[cfg(test)]\nmod tests { use crate::routers::x::Y; }\n\
         #[cfg(all(test, feature = \"f\"))]\nmod more { use crate::routers::x::V; }\n\
         #[cfg(not(test))]\nuse crate::error::F;\n",
    );
    write("error.rs", "pub struct E;\n");
    write("routers/mod.rs", "pub mod x;\n");
    write("routers/x/mod.rs", "mod inner;\nuse inner::I;\n");
    write(
        "routers/x/inner.rs",
        "use super::super::x::Z;\nuse crate::routers::x::W;\n",
    );
    let graph = module_graph(&dir);
    assert!(
        graph["a"].contains("b") && graph["b"].contains("a"),
        "{graph:?}"
    );
    assert!(graph["b"].contains("error"));
    assert!(
        !graph["b"].contains("routers::x"),
        "test code counts: {graph:?}"
    );
    assert_eq!(cycles(&graph), vec![vec!["a".to_string(), "b".to_string()]]);
    // Without the back edge, no cycle; the family's folder uses itself freely.
    write("b.rs", "use crate::error::E;\n");
    let graph = module_graph(&dir);
    assert!(cycles(&graph).is_empty(), "{graph:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The router kinds' names appear as string literals in at most two non-test files of the
/// engine, the command line and the bindings: the names' own module and at most one more.
#[test]
fn kind_names_are_spelled_in_one_place() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let names = [
        "\"knn\"",
        "\"mf\"",
        "\"linucb\"",
        "\"thompson\"",
        "\"knn-ucb\"",
        "\"cluster-ucb\"",
        "\"cascade\"",
    ];
    let mut files = BTreeSet::new();
    for dir in [
        "crates/pointsman/src",
        "crates/pointsman-cli/src",
        "python/src",
        "bindings/c/src",
    ] {
        for file in rust_files(&root.join(dir)) {
            if file.file_name().is_some_and(|n| n == "tests.rs") {
                continue;
            }
            let code = code_only(&std::fs::read_to_string(&file).unwrap());
            if names.iter().any(|n| code.contains(n)) {
                files.insert(
                    file.strip_prefix(&root)
                        .unwrap()
                        .to_string_lossy()
                        .to_string(),
                );
            }
        }
    }
    assert!(
        files.contains("crates/pointsman/src/kind.rs") && files.len() <= 2,
        "kind names spelled in {files:?}"
    );
}
