//! The layering written at the top of src/lib.rs is true: every `crate::` path in a module's
//! files names a module of a lower layer, every top-level module has a layer, and inside a
//! module its files do not import each other in a circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The `.rs` files under `dir`, recursively.
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

/// The code of a file without its comments (doc comments mention paths freely).
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `layer N: a, b` lines of src/lib.rs's doc: module -> layer.
fn declared_layers() -> BTreeMap<String, usize> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let re = regex::Regex::new(r"(?m)^//! layer (\d+): (.+)$").unwrap();
    let mut layers = BTreeMap::new();
    for c in re.captures_iter(&lib) {
        let n: usize = c[1].parse().unwrap();
        for m in c[2].split(',') {
            let previous = layers.insert(m.trim().to_string(), n);
            assert!(previous.is_none(), "{} is in two layers", m.trim());
        }
    }
    layers
}

/// The top-level module a file of src/ belongs to (None for the binary and lib.rs).
fn top_module(path: &Path) -> Option<String> {
    let rel = path.strip_prefix(src()).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    match first.as_str() {
        "bin" | "lib.rs" => None,
        f => Some(f.trim_end_matches(".rs").to_string()),
    }
}

/// Names used after `crate::` in `text` (`crate::{a, b}` groups included).
fn crate_paths(text: &str) -> BTreeSet<String> {
    let single = regex::Regex::new(r"crate::([a-z_][a-z0-9_]*)").unwrap();
    let group = regex::Regex::new(r"crate::\{([^}]*)\}").unwrap();
    let mut out: BTreeSet<String> = single
        .captures_iter(text)
        .map(|c| c[1].to_string())
        .collect();
    for c in group.captures_iter(text) {
        for part in c[1].split(',') {
            let name = part.trim().split("::").next().unwrap_or("").trim();
            if !name.is_empty() {
                out.insert(name.to_string());
            }
        }
    }
    out
}

#[test]
fn every_module_imports_only_lower_layers() {
    let layers = declared_layers();
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let modules = regex::Regex::new(r"(?m)^pub mod ([a-z_]+);").unwrap();
    for m in modules.captures_iter(&lib) {
        assert!(
            layers.contains_key(&m[1]),
            "src/lib.rs: module {} has no layer",
            &m[1]
        );
    }
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let Some(me) = top_module(file) else { continue };
        let mine = layers[&me];
        for used in crate_paths(&code(file)) {
            let Some(&theirs) = layers.get(&used) else {
                continue; // a crate-root item such as `crate::Result`
            };
            if used != me && theirs >= mine {
                wrong.push(format!(
                    "{} (layer {mine}) uses {used} (layer {theirs})",
                    file.strip_prefix(src()).unwrap().display()
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layering:\n{}",
        wrong.join("\n")
    );
}

/// Inside each folder, which file uses which file beside it (`super::x`, `crate::m::x`), and
/// no circle among them.
#[test]
fn files_inside_a_module_do_not_import_in_a_circle() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let sibling = regex::Regex::new(r"super::([a-z_][a-z0-9_]*)").unwrap();
    let sibling_group = regex::Regex::new(r"super::\{([^}]*)\}").unwrap();
    let mut by_folder: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
    for f in files {
        by_folder
            .entry(f.parent().unwrap().to_path_buf())
            .or_default()
            .push(f);
    }
    for (folder, files) in by_folder {
        let name_of = |f: &Path| -> String {
            let stem = f.file_stem().unwrap().to_str().unwrap().to_string();
            if stem == "mod" {
                String::new()
            } else {
                stem
            }
        };
        let siblings: BTreeSet<String> = files.iter().map(|f| name_of(f)).collect();
        let module_path = folder
            .strip_prefix(src())
            .unwrap()
            .to_str()
            .unwrap()
            .replace('/', "::");
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for f in &files {
            let me = name_of(f);
            // A mod.rs is the folder's parent module, which declares the others; the check is
            // between the files beside it (`super::` in a mod.rs leaves the folder).
            let text = code(f);
            let mut used = BTreeSet::new();
            if !me.is_empty() {
                used.extend(sibling.captures_iter(&text).map(|c| c[1].to_string()));
                for c in sibling_group.captures_iter(&text) {
                    for part in c[1].split(',') {
                        used.insert(part.trim().split("::").next().unwrap_or("").to_string());
                    }
                }
            }
            if !module_path.is_empty() {
                let re = regex::Regex::new(&format!(r"crate::{module_path}::([a-z_][a-z0-9_]*)"))
                    .unwrap();
                used.extend(re.captures_iter(&text).map(|c| c[1].to_string()));
            }
            used.retain(|u| siblings.contains(u) && *u != me);
            edges.insert(me, used);
        }
        // Depth-first search for a back edge.
        fn visit(
            n: &str,
            edges: &BTreeMap<String, BTreeSet<String>>,
            state: &mut BTreeMap<String, u8>,
            path: &mut Vec<String>,
        ) -> Option<Vec<String>> {
            match state.get(n) {
                Some(1) => {
                    let from = path.iter().position(|p| p == n).unwrap();
                    let mut cycle = path[from..].to_vec();
                    cycle.push(n.to_string());
                    return Some(cycle);
                }
                Some(2) => return None,
                _ => {}
            }
            state.insert(n.to_string(), 1);
            path.push(n.to_string());
            for m in edges.get(n).into_iter().flatten() {
                if let Some(c) = visit(m, edges, state, path) {
                    return Some(c);
                }
            }
            path.pop();
            state.insert(n.to_string(), 2);
            None
        }
        let mut state = BTreeMap::new();
        for n in edges.keys() {
            if let Some(cycle) = visit(n, &edges, &mut state, &mut Vec::new()) {
                panic!(
                    "{}: files import in a circle: {}",
                    folder.display(),
                    cycle
                        .iter()
                        .map(|c| if c.is_empty() { "mod.rs" } else { c })
                        .collect::<Vec<_>>()
                        .join(" -> ")
                );
            }
        }
    }
}
