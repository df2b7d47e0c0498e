//! The crate's modules form layers: protocol code below the scenario, the scenario below the
//! cluster watcher, that below the report, the report below the HPA replay, and the run on top.
//! This test reads every `crate::<module>` path in `src/` (test modules left out) and fails on a
//! cycle between top-level modules or on an import from a lower layer to a higher one, so the
//! upper half cannot tangle again without someone deciding it here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each top-level module and its layer; a module may import its own layer or any lower one.
const LAYERS: &[(&str, u8)] = &[
    ("units", 0),
    ("base_url", 0),
    ("clock", 0),
    ("cancel", 0),
    ("verdict", 0),
    ("blame", 0),
    ("exit", 0),
    ("stdout", 0),
    ("media", 0),
    ("metrics", 0),
    ("session", 0),
    ("flv", 1),
    ("hls", 1),
    ("rtmp", 1),
    ("player", 1),
    ("sidecar", 1),
    ("local", 1),
    ("scenario", 2),
    ("lint", 2),
    ("k8s", 3),
    ("report", 4),
    ("hpa", 5),
    ("run", 6),
    ("cli", 7),
];

/// `crate::outln!` is the `stdout` module's macro.
fn module_of(path_head: &str) -> &str {
    match path_head {
        "outln" => "stdout",
        other => other,
    }
}

/// The non-test source of a file: everything before its `#[cfg(test)] mod tests`.
fn non_test(text: &str) -> &str {
    let is_test_module = |after: &str| {
        let line = after.lines().next().unwrap_or("").trim_start();
        let line = line.strip_prefix("pub(crate) ").unwrap_or(line);
        line.starts_with("mod ")
    };
    let start = text
        .match_indices("#[cfg(test)]\n")
        .find(|(i, m)| is_test_module(&text[i + m.len()..]))
        .map(|(i, _)| i);
    match start {
        Some(i) => &text[..i],
        None => text,
    }
}

fn imports(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = non_test(text);
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(module_of(&name).to_string());
        }
        rest = after;
    }
    out
}

fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "main" || top == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let entry = g.entry(top.clone()).or_default();
        entry.extend(imports(&text).into_iter().filter(|m| *m != top));
    }
    g
}

#[test]
fn every_module_has_a_layer() {
    let layers: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    for (module, deps) in graph() {
        assert!(
            layers.contains_key(module.as_str()),
            "src/{module} has no layer: add it to LAYERS in tests/layering.rs"
        );
        for d in deps {
            assert!(
                layers.contains_key(d.as_str()),
                "src/{module} imports crate::{d}, which has no layer"
            );
        }
    }
}

#[test]
fn no_module_imports_a_higher_layer() {
    let layers: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let mut upward = Vec::new();
    for (module, deps) in graph() {
        let Some(&own) = layers.get(module.as_str()) else {
            continue;
        };
        for d in deps {
            if layers.get(d.as_str()).is_some_and(|&l| l > own) {
                upward.push(format!(
                    "{module} (layer {own}) imports {d} (layer {})",
                    layers[d.as_str()]
                ));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports from a lower layer to a higher one:\n{}",
        upward.join("\n")
    );
}

/// Exit codes are `main.rs`'s to decide, from a verdict or a `Blame`: library code returns
/// typed outcomes and errors, so a command's code is chosen in one place.
#[test]
fn only_main_decides_exit_codes() {
    let deciders: Vec<String> = graph()
        .into_iter()
        .filter(|(module, deps)| module != "exit" && deps.contains("exit"))
        .map(|(module, _)| module)
        .collect();
    assert!(
        deciders.is_empty(),
        "modules that use crate::exit (return typed outcomes instead): {deciders:?}"
    );
}

/// A cycle in `g` as the path that closes it, if there is one.
fn find_cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    // Depth-first search with colours: grey on the stack, black done.
    fn visit(
        m: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        grey: &mut Vec<String>,
        black: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if black.contains(m) {
            return None;
        }
        if let Some(i) = grey.iter().position(|x| x == m) {
            let mut cycle = grey[i..].to_vec();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        grey.push(m.to_string());
        for d in g.get(m).into_iter().flatten() {
            if let Some(c) = visit(d, g, grey, black) {
                return Some(c);
            }
        }
        grey.pop();
        black.insert(m.to_string());
        None
    }
    let mut black = BTreeSet::new();
    g.keys()
        .find_map(|m| visit(m, g, &mut Vec::new(), &mut black))
}

#[test]
fn top_level_modules_import_each_other_without_cycles() {
    if let Some(cycle) = find_cycle(&graph()) {
        panic!("import cycle: {}", cycle.join(" -> "));
    }
}

/// The module a source file is: `k8s/expect.rs` is `k8s::expect`, `k8s/mod.rs` is `k8s`.
fn module_of_file(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| {
            c.as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string()
        })
        .collect();
    if parts
        .last()
        .is_some_and(|p| p == "mod" || p == "lib" || p == "main")
    {
        parts.pop();
    }
    parts
}

/// Every module path a file names through `crate::` or `super::` (use groups opened one level),
/// outside comments and its tests, as absolute paths (which may run on into items).
fn named_paths(text: &str, module: &[String]) -> Vec<Vec<String>> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let code: String = non_test(text)
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(found) = ["crate::", "super::"]
        .iter()
        .filter_map(|k| code[at..].find(k).map(|i| at + i))
        .min()
    {
        at = found + 1;
        if code[..found].chars().next_back().is_some_and(ident) {
            continue; // part of a longer name
        }
        let mut base: Vec<String> = Vec::new();
        let mut rest = &code[found..];
        if let Some(r) = rest.strip_prefix("crate::") {
            rest = r;
        } else {
            base = module.to_vec();
            while let Some(r) = rest.strip_prefix("super::") {
                base.pop();
                rest = r;
            }
        }
        let mut path = base;
        loop {
            let name: String = rest.chars().take_while(|c| ident(*c)).collect();
            if name.is_empty() {
                break;
            }
            rest = &rest[name.len()..];
            path.push(name);
            match rest.strip_prefix("::") {
                Some(r) => rest = r,
                None => break,
            }
        }
        // Past what was read: `super::super::x` is one path, not two.
        at = code.len() - rest.len();
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                let head: String = item.trim().chars().take_while(|c| ident(*c)).collect();
                if !head.is_empty() && head != "self" {
                    let mut p = path.clone();
                    p.push(head);
                    out.push(p);
                }
            }
        }
        out.push(path);
    }
    out
}

/// Imports between sibling modules at every depth: an import from `a::b::c` to `a::d::e` is an
/// edge `a::b -> a::d` (the children of their common parent). A parent and its own children
/// are not siblings (a module re-exporting its children, or a child using its parent's items).
fn sibling_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    let modules: BTreeSet<Vec<String>> = files
        .iter()
        .map(|f| module_of_file(f.strip_prefix(&src).unwrap()))
        .collect();
    let texts: BTreeMap<Vec<String>, String> = files
        .iter()
        .map(|f| {
            let m = module_of_file(f.strip_prefix(&src).unwrap());
            (m, std::fs::read_to_string(f).unwrap())
        })
        .collect();
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, text) in &texts {
        for path in named_paths(text, from) {
            // The longest prefix that is a module: the rest names items in it.
            let Some(mut to) = (1..=path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|p| modules.contains(p))
            else {
                continue;
            };
            // An item a module re-exports from a child of its own is that child's (a child
            // naming `super::Problem` depends on the sibling that defines `Problem`).
            while let Some(item) = path.get(to.len()) {
                match reexported_from(&texts, &to, item) {
                    Some(child) => to = child,
                    None => break,
                }
            }
            let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
            if common >= from.len() || common >= to.len() {
                continue;
            }
            g.entry(from[..=common].join("::"))
                .or_default()
                .insert(to[..=common].join("::"));
        }
    }
    g
}

/// The child module of `module` that `item` comes from when `module` re-exports it (`pub use
/// child::{Item}`, or `pub use child::*` with the child defining it).
fn reexported_from(
    texts: &BTreeMap<Vec<String>, String>,
    module: &[String],
    item: &str,
) -> Option<Vec<String>> {
    let child = |name: &str| {
        let mut c = module.to_vec();
        c.push(name.to_string());
        texts.contains_key(&c).then_some(c)
    };
    for line in non_test(texts.get(module)?).lines() {
        let Some(rest) = line.trim().strip_prefix("pub use ") else {
            continue;
        };
        let rest = rest.strip_prefix("self::").unwrap_or(rest);
        let Some((head, names)) = rest.split_once("::") else {
            continue;
        };
        let Some(from) = child(head) else {
            continue;
        };
        let names = names
            .trim_end_matches(';')
            .trim_matches(|c| c == '{' || c == '}');
        for name in names.split(',') {
            // `a as b` is known as `b`; `a::b` is `b`.
            let name = name.trim();
            let known_as = name.rsplit(" as ").next().unwrap_or(name);
            let known_as = known_as.rsplit("::").next().unwrap_or(known_as).trim();
            if known_as == item {
                return Some(from);
            }
            if known_as == "*" && defines(&texts[&from], item) {
                return Some(from);
            }
        }
    }
    None
}

/// Whether `text` defines a public item named `item`.
fn defines(text: &str, item: &str) -> bool {
    ["struct", "enum", "fn", "type", "const", "trait", "static"]
        .iter()
        .any(|kind| {
            let def = format!("pub {kind} {item}");
            text.match_indices(&def).any(|(i, _)| {
                !text[i + def.len()..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            })
        })
}

#[test]
fn sibling_modules_import_each_other_without_cycles() {
    if let Some(cycle) = find_cycle(&sibling_graph()) {
        panic!(
            "import cycle between sibling modules: {}",
            cycle.join(" -> ")
        );
    }
}

#[test]
fn the_path_scanner_resolves_super_groups_and_skips_comments() {
    let module: Vec<String> = ["k8s", "expect"].map(String::from).to_vec();
    let text = "use super::recovery::judge;\nuse crate::report::{model, knee::Knee};\n\
                /// see [`super::watch`]\nfn f() { super::super::units::parse(); }\n";
    let paths: Vec<String> = named_paths(text, &module)
        .into_iter()
        .map(|p| p.join("::"))
        .collect();
    assert_eq!(
        paths,
        [
            "k8s::recovery::judge",
            "report::model",
            "report::knee",
            "report",
            "units::parse"
        ]
    );
}

#[test]
fn the_scanner_sees_imports_and_skips_tests() {
    let text = "use crate::scenario::Scenario;\nfn f() { crate::outln!(\"x\"); }\n#[cfg(test)]\nmod tests {\n    use crate::run::x;\n}\n";
    assert_eq!(
        imports(text),
        ["scenario", "stdout"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
}

#[test]
fn a_name_a_module_reexports_is_traced_to_the_child_that_defines_it() {
    let m = |p: &str| p.split("::").map(String::from).collect::<Vec<_>>();
    let texts: BTreeMap<Vec<String>, String> = [
        (
            "scenario",
            "pub use load::{parse, Located as Loc};\npub use model::*;\n",
        ),
        ("scenario::load", "pub fn parse() {}\npub struct Located;\n"),
        (
            "scenario::model",
            "pub struct Scenario;\npub struct ScenarioX;\n",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (m(k), v.to_string()))
    .collect();
    let from = |item| reexported_from(&texts, &m("scenario"), item);
    assert_eq!(from("parse"), Some(m("scenario::load")));
    assert_eq!(from("Loc"), Some(m("scenario::load")));
    assert_eq!(
        from("Scenario"),
        Some(m("scenario::model")),
        "through the glob"
    );
    assert_eq!(from("Scen"), None, "a prefix of a defined name is not it");
    assert_eq!(from("Problem"), None);
}
