//! The layering of docs/DESIGN.md, checked: a module may use its own layer and the layers
//! below it, never one above (tensor knows nothing of nn, data nothing of the estimator),
//! and the files inside a module folder do not import each other in a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module's layer; a module may use layers <= its own.
const LAYERS: [(&str, u8); 22] = [
    ("error", 0),
    // The crate root re-exports these.
    ("Error", 0),
    ("Result", 0),
    ("Device", 1),
    ("Tensor", 1),
    ("rng", 0),
    // A device is checked against the CUDA driver when it is made.
    ("device", 1),
    // Tensors record their ops for autograd, and the CUDA backend stores tensors.
    ("tensor", 1),
    ("autograd", 1),
    ("cuda", 1),
    ("io", 2),
    ("data", 2),
    // Collectives over tensors and gradients; the trainer uses them.
    ("distributed", 2),
    ("nn", 3),
    ("loss", 3),
    ("metric", 3),
    ("ratings", 3),
    ("optim", 4),
    ("estimator", 5),
    ("prelude", 6),
    ("lib", 6),
    ("boson", 6),
];

/// Imports against the layering that are known. The list only shrinks.
const KNOWN: [(&str, &str); 0] = [];

/// Cycles known and scheduled to go. The list only shrinks.
const KNOWN_CYCLES: [&str; 0] = [];

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

/// The code of a file without its comments (doc links are not imports).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules `text` names as `crate::NAME`.
fn crate_modules(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        let before = text[..i].chars().last();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // e.g. `extern crate::`-like or another path ending in crate
        }
        let name: String = text[i + 7..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

fn layer(module: &str) -> u8 {
    LAYERS
        .iter()
        .find(|(m, _)| *m == module)
        .unwrap_or_else(|| panic!("module {module} has no layer in tests/architecture.rs"))
        .1
}

#[test]
fn no_module_uses_a_layer_above_its_own() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let mut found = BTreeSet::new();
    for file in &files {
        let rel = file
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let parts: Vec<&str> = rel.split('/').collect();
        let own = match parts.as_slice() {
            ["src", name] => name.trim_end_matches(".rs"),
            ["src", dir, ..] => dir,
            _ => unreachable!(),
        };
        let text = code(&std::fs::read_to_string(file).unwrap());
        for used in crate_modules(&text) {
            if layer(&used) > layer(own) {
                found.insert((rel.clone(), used));
            }
        }
    }
    let known: BTreeSet<(String, String)> = KNOWN
        .iter()
        .map(|(f, m)| (f.to_string(), m.to_string()))
        .collect();
    let new: Vec<_> = found.difference(&known).collect();
    assert!(new.is_empty(), "imports from a higher layer: {new:?}");
    let gone: Vec<_> = known.difference(&found).collect();
    assert!(
        gone.is_empty(),
        "fixed, remove from KNOWN in tests/architecture.rs: {gone:?}"
    );
}

#[test]
fn the_files_of_a_module_do_not_import_each_other_in_a_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut cycles = BTreeSet::new();
    // Every module folder, nested ones (such as src/cuda/ops) included.
    fn folders(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.push(path.clone());
                folders(&path, out);
            }
        }
    }
    let mut dirs = Vec::new();
    folders(&root, &mut dirs);
    dirs.sort();
    for dir in dirs {
        let folder = dir
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let module = folder.replace('/', "::");
        // file stem -> sibling stems it names (`crate::module::stem` or `super::stem`).
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut files = Vec::new();
        rust_files(&dir, &mut files);
        let stems: BTreeSet<String> = files
            .iter()
            .filter(|f| f.parent() == Some(dir.as_path()))
            .map(|f| f.file_stem().unwrap().to_string_lossy().into_owned())
            .filter(|s| s != "mod")
            .collect();
        for file in files.iter().filter(|f| f.parent() == Some(dir.as_path())) {
            let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
            if stem == "mod" {
                continue;
            }
            let text = code(&std::fs::read_to_string(file).unwrap());
            let uses = stems
                .iter()
                .filter(|other| **other != stem)
                .filter(|other| {
                    text.contains(&format!("crate::{module}::{other}::"))
                        || text.contains(&format!("super::{other}::"))
                        || text.contains(&format!("super::{other}::{{"))
                })
                .cloned()
                .collect();
            graph.insert(stem, uses);
        }
        // Depth-first search for a back edge.
        fn visit(
            node: &str,
            graph: &BTreeMap<String, BTreeSet<String>>,
            path: &mut Vec<String>,
            done: &mut BTreeSet<String>,
        ) -> Option<Vec<String>> {
            if let Some(i) = path.iter().position(|p| p == node) {
                let mut cycle = path[i..].to_vec();
                cycle.push(node.to_string());
                return Some(cycle);
            }
            if done.contains(node) {
                return None;
            }
            path.push(node.to_string());
            for next in graph.get(node).into_iter().flatten() {
                if let Some(c) = visit(next, graph, path, done) {
                    return Some(c);
                }
            }
            path.pop();
            done.insert(node.to_string());
            None
        }
        let mut done = BTreeSet::new();
        for node in graph.keys() {
            if let Some(mut cycle) = visit(node, &graph, &mut Vec::new(), &mut done) {
                // One spelling per cycle: start at its smallest file.
                cycle.pop();
                let start = (0..cycle.len()).min_by_key(|&i| &cycle[i]).unwrap_or(0);
                cycle.rotate_left(start);
                cycle.push(cycle[0].clone());
                cycles.insert(format!("src/{folder}: {}", cycle.join(" -> ")));
            }
        }
    }
    let known: BTreeSet<String> = KNOWN_CYCLES.iter().map(|c| c.to_string()).collect();
    assert_eq!(
        cycles, known,
        "import cycles inside a module (the known ones are to go; remove them here when they do)"
    );
}
