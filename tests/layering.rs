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
    match text.find("#[cfg(test)]\nmod tests") {
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

#[test]
fn top_level_modules_import_each_other_without_cycles() {
    let g = graph();
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
    for m in g.keys() {
        if let Some(cycle) = visit(m, &g, &mut Vec::new(), &mut black) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
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
