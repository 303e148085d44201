//! The layering of docs/DESIGN.md, checked on a parse of the source, not on its text.
//!
//! Every file of the crate is parsed with `syn`, walking the module tree from
//! `src/lib.rs` as rustc does (`mod x;`, `x/mod.rs`, `#[path]`, inline modules); a file
//! under `src/` that no `mod` reaches is parsed too, as the module its path names. Each
//! path the code writes is resolved to the modules it goes through: `crate::`, `self::`,
//! `super::` at any depth, `boson::` (the crate's own name), `use` groups, renames, glob
//! imports, re-exports (`crate::Tensor` is `tensor`; `crate::prelude::Tensor` goes through
//! `prelude` and then `tensor`), paths in expressions, types, patterns and attributes,
//! and the `crate::`/`boson::`/`super::`/`self::`/alias paths inside macro invocations
//! and `macro_rules!` bodies (their token streams). `#[cfg(...)]`-gated code counts,
//! `#[cfg(test)]` modules included: it is source in that module. Comments and doc
//! comments do not: a doc test is compiled as a crate of its own against the public API,
//! as `tests/` is.
//!
//! Three checks run on the resolved paths: no module uses a layer above its own (the
//! table in docs/DESIGN.md), the CUDA backend is reached from outside `src/cuda/` only
//! through the backend seam, and the child modules of a module do not use each other in
//! a cycle. The unit tests at the end plant violations and check that each is caught.

use proc_macro2::{Spacing, TokenStream, TokenTree};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use syn::visit::Visit;

/// The crate's own name: `boson::x` inside the crate (`extern crate self as boson;`, which
/// `#[derive(Block)]` needs) is `crate::x`.
const CRATE_NAME: &str = "boson";

/// The files outside `src/cuda/` that may name the CUDA backend (`crate::cuda`, or
/// `cudarc` itself): the backend seam of docs/DESIGN.md.
const SEAM: [&str; 2] = ["src/tensor/storage.rs", "src/tensor/backend.rs"];

/// Imports against the layering that are known: (file, module it uses, why). The list only
/// shrinks; an entry that no longer matches fails the test until it is removed. Empty
/// since tensor sits below autograd and `Device::new_cuda` moved to the seam.
const KNOWN: [(&str, &str, &str); 0] = [];

/// Files outside `src/cuda/` and the seam that name the CUDA backend, known: (file, what
/// it names). The list only shrinks.
const KNOWN_SEAM: [(&str, &str); 2] = [
    // NCCL sums over CUDA buffers on the backend's context: the collective reaches the
    // backend (`CudaDevice`) and cudarc's NCCL bindings directly.
    ("src/distributed/nccl.rs", "crate::cuda"),
    ("src/distributed/nccl.rs", "cudarc"),
];

/// Child modules known to use each other in a cycle (`parent: a, b, ...`, the whole group
/// of modules that reach each other), scheduled to go. The list only shrinks. All of them
/// go through the parent's re-exports (`use super::Thing`), which the text scan of before
/// did not follow.
const KNOWN_CYCLES: [&str; 2] = [
    // event.rs names `super::Estimator` in the handler signatures; estimator.rs runs the
    // events and the built-in handlers, which take `Estimator` and events.
    "estimator: estimator, event, handlers",
    // parameter.rs shards with `super::sharded`; sharded.rs takes `crate::nn::Parameter`.
    "nn: parameter, sharded",
];

// ---------------------------------------------------------------------------------------
// The crate's modules and what each one binds.

/// A path as written: `::` in front or not, and its segments.
#[derive(Clone, Debug)]
struct Written {
    colon: bool,
    segs: Vec<String>,
}

/// The names a module, or a block inside a function, brings into scope.
#[derive(Default, Debug)]
struct Scope {
    /// `use a::b as c;` binds `c` to `a::b` (the first binding of a name wins).
    bindings: BTreeMap<String, Written>,
    /// `use a::*;`
    globs: Vec<Written>,
    /// Items it defines (structs, functions, traits, ...), which shadow glob imports.
    items: BTreeSet<String>,
}

#[derive(Debug)]
struct Module {
    children: BTreeSet<String>,
    scope: Scope,
}

/// The parsed crate: every module by its path from the root (`[]` is the crate root).
struct Crate {
    modules: BTreeMap<Vec<String>, Module>,
    /// Names that mean the crate root anywhere: the crate's name and any
    /// `extern crate self as NAME;` at the root.
    root_aliases: BTreeSet<String>,
    /// Each parsed file with the module it is.
    files: Vec<(String, Vec<String>, syn::File)>,
    /// Files that do not parse, `mod` declarations with no file.
    errors: Vec<String>,
}

/// `a/./b/../c` as `a/c`.
fn normalize(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            p => out.push(p),
        }
    }
    out.join("/")
}

fn dir_of(file: &str) -> String {
    match file.rfind('/') {
        Some(i) => file[..i].to_string(),
        None => String::new(),
    }
}

fn ident(i: &syn::Ident) -> String {
    let s = i.to_string();
    s.strip_prefix("r#").map(str::to_string).unwrap_or(s)
}

/// One leaf of a `use` tree: the name it binds (none for a glob or `as _`), the path it
/// names, and its line.
struct UseLeaf {
    name: Option<String>,
    glob: bool,
    segs: Vec<String>,
    line: usize,
}

fn flatten_use(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<UseLeaf>) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(ident(&p.ident));
            flatten_use(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => {
            let name = ident(&n.ident);
            let mut segs = prefix.clone();
            if name != "self" {
                segs.push(name.clone());
            }
            out.push(UseLeaf {
                name: segs.last().cloned(),
                glob: false,
                segs,
                line: n.ident.span().start().line,
            });
        }
        syn::UseTree::Rename(r) => {
            let name = ident(&r.ident);
            let mut segs = prefix.clone();
            if name != "self" {
                segs.push(name);
            }
            let rename = ident(&r.rename);
            out.push(UseLeaf {
                name: (rename != "_").then_some(rename),
                glob: false,
                segs,
                line: r.ident.span().start().line,
            });
        }
        syn::UseTree::Glob(g) => out.push(UseLeaf {
            name: None,
            glob: true,
            segs: prefix.clone(),
            line: g.star_token.span.start().line,
        }),
        syn::UseTree::Group(g) => {
            for t in &g.items {
                flatten_use(t, prefix, out);
            }
        }
    }
}

/// Adds what `item` binds or defines to `scope`; `root_aliases` is given at the crate root,
/// where `extern crate self as x;` makes `x` name the root everywhere.
fn add_to_scope(scope: &mut Scope, item: &syn::Item, root_aliases: Option<&mut BTreeSet<String>>) {
    let defined = match item {
        syn::Item::Use(u) => {
            let mut leaves = Vec::new();
            flatten_use(&u.tree, &mut Vec::new(), &mut leaves);
            for leaf in leaves {
                let w = Written {
                    colon: u.leading_colon.is_some(),
                    segs: leaf.segs,
                };
                if leaf.glob {
                    scope.globs.push(w);
                } else if let Some(name) = leaf.name {
                    scope.bindings.entry(name).or_insert(w);
                }
            }
            None
        }
        syn::Item::ExternCrate(e) => {
            if e.ident == "self" {
                if let Some((_, alias)) = &e.rename {
                    match root_aliases {
                        Some(aliases) => {
                            aliases.insert(ident(alias));
                        }
                        None => {
                            scope.bindings.insert(
                                ident(alias),
                                Written {
                                    colon: false,
                                    segs: vec!["crate".into()],
                                },
                            );
                        }
                    }
                }
            }
            None
        }
        syn::Item::Const(i) => Some(&i.ident),
        syn::Item::Enum(i) => Some(&i.ident),
        syn::Item::Fn(i) => Some(&i.sig.ident),
        syn::Item::Static(i) => Some(&i.ident),
        syn::Item::Struct(i) => Some(&i.ident),
        syn::Item::Trait(i) => Some(&i.ident),
        syn::Item::TraitAlias(i) => Some(&i.ident),
        syn::Item::Type(i) => Some(&i.ident),
        syn::Item::Union(i) => Some(&i.ident),
        syn::Item::Mod(i) => Some(&i.ident),
        _ => None,
    };
    if let Some(i) = defined {
        scope.items.insert(ident(i));
    }
}

/// The value of `#[path = "..."]` among `attrs`.
fn path_attr(attrs: &[syn::Attribute]) -> Option<String> {
    attrs.iter().find_map(|a| match &a.meta {
        syn::Meta::NameValue(nv) if nv.path.is_ident("path") => match &nv.value {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => Some(s.value()),
            _ => None,
        },
        _ => None,
    })
}

impl Crate {
    /// Parses the crate from `src/lib.rs`, reading files (paths relative to the package
    /// root) with `read`; then every file of `src_files` that no `mod` reached.
    fn load(read: &dyn Fn(&str) -> Option<String>, src_files: &[String]) -> Crate {
        let mut krate = Crate {
            modules: BTreeMap::new(),
            root_aliases: BTreeSet::from([CRATE_NAME.to_string()]),
            files: Vec::new(),
            errors: Vec::new(),
        };
        krate.load_file(read, "src/lib.rs", Vec::new(), "src".into());
        let reached: BTreeSet<String> = krate.files.iter().map(|(f, _, _)| f.clone()).collect();
        for file in src_files.iter().filter(|f| !reached.contains(*f)) {
            // Not in the module tree: parse it as the module its path names.
            let rel = file.trim_start_matches("src/").trim_end_matches(".rs");
            let mut module: Vec<String> = rel.split('/').map(str::to_string).collect();
            if module.last().is_some_and(|m| m == "mod" || m == "lib") {
                module.pop();
            }
            let child_dir = if file.ends_with("/mod.rs") {
                dir_of(file)
            } else {
                file.trim_end_matches(".rs").to_string()
            };
            if !krate.modules.contains_key(&module) {
                krate.load_file(read, file, module, child_dir);
            }
        }
        krate
    }

    fn load_file(
        &mut self,
        read: &dyn Fn(&str) -> Option<String>,
        file: &str,
        module: Vec<String>,
        child_dir: String,
    ) {
        let Some(text) = read(file) else {
            self.errors.push(format!("{file}: cannot be read"));
            return;
        };
        let parsed = match syn::parse_file(&text) {
            Ok(f) => f,
            Err(e) => {
                let line = e.span().start().line;
                self.errors
                    .push(format!("{file}:{line}: does not parse: {e}"));
                return;
            }
        };
        self.collect(read, file, &module, &child_dir, true, &parsed.items);
        self.files.push((file.to_string(), module, parsed));
    }

    /// Records module `module` (whose items are `items`, in `file`) and its children.
    fn collect(
        &mut self,
        read: &dyn Fn(&str) -> Option<String>,
        file: &str,
        module: &[String],
        child_dir: &str,
        top_of_file: bool,
        items: &[syn::Item],
    ) {
        let mut scope = Scope::default();
        let mut children = BTreeSet::new();
        let mut aliases = BTreeSet::new();
        for item in items {
            add_to_scope(&mut scope, item, module.is_empty().then_some(&mut aliases));
            let syn::Item::Mod(m) = item else { continue };
            let name = ident(&m.ident);
            children.insert(name.clone());
            let mut child = module.to_vec();
            child.push(name.clone());
            match &m.content {
                Some((_, inner)) => {
                    let dir = format!("{child_dir}/{name}");
                    let p = path_attr(&m.attrs).map(|p| normalize(&format!("{child_dir}/{p}")));
                    self.collect(
                        read,
                        file,
                        &child,
                        p.as_deref().unwrap_or(&dir),
                        false,
                        inner,
                    );
                }
                None => {
                    let target = match path_attr(&m.attrs) {
                        Some(p) => {
                            let base = if top_of_file {
                                dir_of(file)
                            } else {
                                child_dir.to_string()
                            };
                            Some((normalize(&format!("{base}/{p}")), true))
                        }
                        None => [
                            format!("{child_dir}/{name}.rs"),
                            format!("{child_dir}/{name}/mod.rs"),
                        ]
                        .into_iter()
                        .find(|f| read(f).is_some())
                        .map(|f| (f, false)),
                    };
                    match target {
                        Some((f, by_path)) => {
                            let dir = if by_path || f.ends_with("/mod.rs") {
                                dir_of(&f)
                            } else {
                                f.trim_end_matches(".rs").to_string()
                            };
                            self.load_file(read, &f, child, dir);
                        }
                        None => self
                            .errors
                            .push(format!("{file}: `mod {name};` has no file in {child_dir}/")),
                    }
                }
            }
        }
        self.root_aliases.extend(aliases);
        self.modules
            .insert(module.to_vec(), Module { children, scope });
    }

    /// `written`, seen from module `module` with the block scopes `scopes` around it, as a
    /// path from the crate root; `None` when it is not a path into this crate (std, another
    /// crate, a local variable, a generic parameter, an item of a block).
    fn absolute(
        &self,
        module: &[String],
        scopes: &[Scope],
        written: &Written,
        depth: usize,
    ) -> Option<Vec<String>> {
        let segs = &written.segs;
        if depth > 32 || segs.is_empty() {
            return None;
        }
        let first = segs[0].as_str();
        let join = |base: &[String], rest: &[String]| {
            let mut p = base.to_vec();
            p.extend_from_slice(rest);
            p
        };
        if written.colon {
            // `::name` is an extern crate: this one only under its own name.
            return self
                .root_aliases
                .contains(first)
                .then(|| segs[1..].to_vec());
        }
        match first {
            "crate" | "$crate" => return Some(segs[1..].to_vec()),
            "self" | "super" => {
                let mut base = module.to_vec();
                let mut i = 0;
                while i < segs.len() {
                    match segs[i].as_str() {
                        "self" => {}
                        "super" => {
                            base.pop()?;
                        }
                        _ => break,
                    }
                    i += 1;
                }
                return Some(join(&base, &segs[i..]));
            }
            _ => {}
        }
        // Block scopes, innermost first: their bindings and items, then their globs.
        for (k, scope) in scopes.iter().enumerate().rev() {
            if let Some(t) = scope.bindings.get(first) {
                return self
                    .absolute(module, &scopes[..k], t, depth + 1)
                    .map(|p| join(&p, &segs[1..]));
            }
            if scope.items.contains(first) {
                return None;
            }
            for g in &scope.globs {
                if let Some(gp) = self.absolute(module, &scopes[..k], g, depth + 1) {
                    if self.knows(&gp, first, depth + 1) {
                        return Some(join(&gp, segs));
                    }
                }
            }
        }
        let m = self.modules.get(module)?;
        if m.children.contains(first) || m.scope.items.contains(first) {
            return Some(join(module, segs));
        }
        if let Some(t) = m.scope.bindings.get(first) {
            return self
                .absolute(module, &[], t, depth + 1)
                .map(|p| join(&p, &segs[1..]));
        }
        for g in &m.scope.globs {
            if let Some(gp) = self.absolute(module, &[], g, depth + 1) {
                if self.knows(&gp, first, depth + 1) {
                    return Some(join(&gp, segs));
                }
            }
        }
        // The extern prelude: `boson::` names the root (after any local name).
        self.root_aliases
            .contains(first)
            .then(|| segs[1..].to_vec())
    }

    /// Whether module `module` has a name `name` (a child, an item, a binding, or through
    /// one of its globs).
    fn knows(&self, module: &[String], name: &str, depth: usize) -> bool {
        let Some(m) = self.modules.get(module) else {
            return false;
        };
        if depth > 32 {
            return false;
        }
        m.children.contains(name)
            || m.scope.items.contains(name)
            || m.scope.bindings.contains_key(name)
            || m.scope.globs.iter().any(|g| {
                self.absolute(module, &[], g, depth + 1)
                    .is_some_and(|gp| self.knows(&gp, name, depth + 1))
            })
    }

    /// The modules that the crate path `path` goes through, following re-exports
    /// (`crate::Tensor` goes through `tensor`; `crate::prelude::Sgd` through `prelude`,
    /// then `optim`). The crate root itself is not listed.
    fn trail(&self, path: Vec<String>) -> Vec<Vec<String>> {
        let mut trail = Vec::new();
        let mut path = path;
        let mut cur: Vec<String> = Vec::new();
        let mut i = 0;
        let mut hops = 0;
        while i < path.len() {
            let Some(m) = self.modules.get(&cur) else {
                break;
            };
            let s = &path[i];
            if m.children.contains(s) {
                cur.push(s.clone());
                trail.push(cur.clone());
                i += 1;
                continue;
            }
            if m.scope.items.contains(s) {
                break;
            }
            hops += 1;
            if hops > 32 {
                break;
            }
            let next = match m.scope.bindings.get(s) {
                Some(t) => self.absolute(&cur, &[], t, 0),
                None => m
                    .scope
                    .globs
                    .iter()
                    .filter_map(|g| self.absolute(&cur, &[], g, 0))
                    .find(|g| self.knows(g, s, 0))
                    .map(|mut g| {
                        g.push(s.clone());
                        g
                    }),
            };
            match next {
                Some(mut p) => {
                    p.extend_from_slice(&path[i + 1..]);
                    path = p;
                    cur.clear();
                    i = 0;
                }
                None => break,
            }
        }
        trail
    }

    /// Every path the crate writes, resolved.
    fn references(&self) -> Vec<Ref> {
        let mut out = Vec::new();
        for (file, module, parsed) in &self.files {
            let mut scan = Scan {
                krate: self,
                file: file.clone(),
                module: module.clone(),
                scopes: Vec::new(),
                out: &mut out,
            };
            for item in &parsed.items {
                scan.visit_item(item);
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------
// The paths each file writes.

/// A path written in the source.
#[derive(Debug)]
struct Ref {
    file: String,
    line: usize,
    /// The module it is written in.
    module: Vec<String>,
    text: String,
    /// The modules it goes through (empty for paths outside the crate).
    trail: Vec<Vec<String>>,
    /// Its first segment, when it does not resolve into the crate (`cudarc`, `std`, ...).
    external: Option<String>,
}

struct Scan<'a> {
    krate: &'a Crate,
    file: String,
    module: Vec<String>,
    scopes: Vec<Scope>,
    out: &'a mut Vec<Ref>,
}

fn is_path_sep(toks: &[TokenTree], i: usize) -> bool {
    matches!(
        (toks.get(i), toks.get(i + 1)),
        (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)))
            if a.as_char() == ':' && a.spacing() == Spacing::Joint && b.as_char() == ':'
    )
}

impl Scan<'_> {
    fn record(&mut self, written: Written, line: usize) {
        let abs = self.krate.absolute(&self.module, &self.scopes, &written, 0);
        let text = format!(
            "{}{}",
            if written.colon { "::" } else { "" },
            written.segs.join("::")
        );
        let (trail, external) = match abs {
            Some(p) => (self.krate.trail(p), None),
            None => (Vec::new(), Some(written.segs[0].clone())),
        };
        self.out.push(Ref {
            file: self.file.clone(),
            line,
            module: self.module.clone(),
            text,
            trail,
            external,
        });
    }

    /// The paths in a token stream (a macro's input, an attribute's arguments): every
    /// `a::b::c` sequence, `$crate::` included; `$var::x` (a macro variable) is skipped.
    /// String literals are read as paths only in attributes (`#[serde(with = "a::b")]`).
    fn scan_tokens(&mut self, tokens: TokenStream, in_attribute: bool) {
        let toks: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < toks.len() {
            match &toks[i] {
                TokenTree::Group(g) => {
                    self.scan_tokens(g.stream(), in_attribute);
                    i += 1;
                }
                TokenTree::Literal(l) if in_attribute => {
                    let lit = TokenStream::from(TokenTree::Literal(l.clone()));
                    if let Ok(s) = syn::parse2::<syn::LitStr>(lit) {
                        self.scan_str(&s);
                    }
                    i += 1;
                }
                _ => {
                    let start = i;
                    let mut colon = false;
                    let mut macro_var = false;
                    let mut segs = Vec::new();
                    let mut line = 0;
                    if is_path_sep(&toks, i) {
                        colon = true;
                        i += 2;
                    }
                    match (toks.get(i), toks.get(i + 1)) {
                        (Some(TokenTree::Punct(p)), Some(TokenTree::Ident(id)))
                            if p.as_char() == '$' =>
                        {
                            macro_var = id != "crate";
                            segs.push(format!("${id}"));
                            line = id.span().start().line;
                            i += 2;
                        }
                        (Some(TokenTree::Ident(id)), _) => {
                            segs.push(ident(id));
                            line = id.span().start().line;
                            i += 1;
                        }
                        _ => {}
                    }
                    if segs.is_empty() {
                        i = start + 1;
                        continue;
                    }
                    while is_path_sep(&toks, i) {
                        match toks.get(i + 2) {
                            Some(TokenTree::Ident(id)) => {
                                segs.push(ident(id));
                                i += 3;
                            }
                            _ => break,
                        }
                    }
                    if !macro_var && (colon || segs.len() > 1) {
                        self.record(Written { colon, segs }, line);
                    }
                }
            }
        }
    }

    fn scan_str(&mut self, s: &syn::LitStr) {
        let v = s.value();
        if v.contains("::") {
            if let Ok(p) = syn::parse_str::<syn::Path>(&v) {
                let segs = p.segments.iter().map(|s| ident(&s.ident)).collect();
                self.record(
                    Written {
                        colon: p.leading_colon.is_some(),
                        segs,
                    },
                    s.span().start().line,
                );
            }
        }
    }
}

impl<'ast> Visit<'ast> for Scan<'_> {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        for a in &m.attrs {
            self.visit_attribute(a);
        }
        // A `mod x;` file is scanned as its own file.
        if let Some((_, items)) = &m.content {
            self.module.push(ident(&m.ident));
            let outer = std::mem::take(&mut self.scopes);
            for item in items {
                self.visit_item(item);
            }
            self.scopes = outer;
            self.module.pop();
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        for a in &u.attrs {
            self.visit_attribute(a);
        }
        let mut leaves = Vec::new();
        flatten_use(&u.tree, &mut Vec::new(), &mut leaves);
        for leaf in leaves {
            if !leaf.segs.is_empty() {
                let w = Written {
                    colon: u.leading_colon.is_some(),
                    segs: leaf.segs,
                };
                self.record(w, leaf.line);
            }
        }
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        if let Some(first) = p.segments.first() {
            let segs = p.segments.iter().map(|s| ident(&s.ident)).collect();
            let w = Written {
                colon: p.leading_colon.is_some(),
                segs,
            };
            self.record(w, first.ident.span().start().line);
        }
        syn::visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.visit_path(&m.path);
        self.scan_tokens(m.tokens.clone(), false);
    }

    fn visit_attribute(&mut self, a: &'ast syn::Attribute) {
        if a.path().is_ident("doc") {
            return;
        }
        syn::visit::visit_attribute(self, a);
        match &a.meta {
            syn::Meta::List(l) => self.scan_tokens(l.tokens.clone(), true),
            syn::Meta::NameValue(nv) => {
                if let syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) = &nv.value
                {
                    self.scan_str(s);
                }
            }
            syn::Meta::Path(_) => {}
        }
    }

    fn visit_block(&mut self, b: &'ast syn::Block) {
        let mut scope = Scope::default();
        for stmt in &b.stmts {
            if let syn::Stmt::Item(item) = stmt {
                add_to_scope(&mut scope, item, None);
            }
        }
        self.scopes.push(scope);
        syn::visit::visit_block(self, b);
        self.scopes.pop();
    }
}

// ---------------------------------------------------------------------------------------
// The rules, checked.

/// Each top-level module's layer, from the table in the layering section of
/// docs/DESIGN.md (`| 2 | `tensor`, `cuda` | ... |`).
fn parse_layers(design: &str) -> Result<BTreeMap<String, usize>, String> {
    let mut layers = BTreeMap::new();
    let mut lines = design.lines().skip_while(|l| !l.starts_with("| Layer |"));
    if lines.next().is_none() {
        return Err("docs/DESIGN.md has no `| Layer | Modules | ... |` table".into());
    }
    for line in lines.skip(1).take_while(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let rank: usize = cells
            .get(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("layer table row without a layer number: {line}"))?;
        let modules = cells.get(2).copied().unwrap_or("");
        for name in modules.split('`').skip(1).step_by(2) {
            if layers.insert(name.to_string(), rank).is_some() {
                return Err(format!("`{name}` is in the layer table twice"));
            }
        }
    }
    if layers.is_empty() {
        return Err("the layer table in docs/DESIGN.md is empty".into());
    }
    Ok(layers)
}

/// What the checks find, each with the places (`file:line: path`) that show it.
#[derive(Debug, Default)]
struct Findings {
    /// (file, module of a higher layer it uses)
    layering: BTreeMap<(String, String), Vec<String>>,
    /// (file outside src/cuda and the seam, `crate::cuda` or `cudarc`)
    seam: BTreeMap<(String, String), Vec<String>>,
    /// `module: a, b, c`: child modules of `module` that use each other in a cycle
    cycles: BTreeSet<String>,
    /// Files that cannot be read or parsed, modules without a layer, ...
    errors: Vec<String>,
}

fn check(krate: &Crate, layers: &BTreeMap<String, usize>) -> Findings {
    let mut f = Findings {
        errors: krate.errors.clone(),
        ..Findings::default()
    };
    let top_level = &krate.modules[&Vec::new()].children;
    for m in top_level {
        if !layers.contains_key(m) {
            f.errors
                .push(format!("module `{m}` has no layer in docs/DESIGN.md"));
        }
    }
    for m in layers.keys() {
        if !top_level.contains(m) {
            f.errors
                .push(format!("the layer table names `{m}`, which is no module"));
        }
    }
    // child -> siblings it uses, for each module with children.
    let mut graphs: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for r in krate.references() {
        let place = format!("{}:{}: {}", r.file, r.line, r.text);
        let Some(own) = r.module.first() else {
            continue; // the crate root declares and re-exports every module
        };
        if let Some(&own_rank) = layers.get(own) {
            for used in r.trail.iter().map(|t| &t[0]).filter(|u| *u != own) {
                if layers.get(used).is_some_and(|&rank| rank > own_rank) {
                    f.layering
                        .entry((r.file.clone(), used.clone()))
                        .or_default()
                        .push(place.clone());
                }
            }
        }
        if own != "cuda" && !SEAM.contains(&r.file.as_str()) {
            let names_cuda = r.trail.iter().any(|t| t[0] == "cuda");
            for (hit, what) in [
                (names_cuda, "crate::cuda"),
                (r.external.as_deref() == Some("cudarc"), "cudarc"),
            ] {
                if hit {
                    f.seam
                        .entry((r.file.clone(), what.to_string()))
                        .or_default()
                        .push(place.clone());
                }
            }
        }
        // Edges between the children of every module but the root (whose children are
        // the layers, checked above): `parent: child -> sibling`.
        for depth in 1..r.module.len() {
            let parent = &r.module[..depth];
            let child = &r.module[depth];
            for t in &r.trail {
                if t.len() > depth && t[..depth] == *parent && t[depth] != *child {
                    graphs
                        .entry(parent.to_vec())
                        .or_default()
                        .entry(child.clone())
                        .or_default()
                        .insert(t[depth].clone());
                }
            }
        }
    }
    for (parent, graph) in &graphs {
        for group in cycles(graph) {
            let names: Vec<_> = group.into_iter().collect();
            f.cycles
                .insert(format!("{}: {}", parent.join("::"), names.join(", ")));
        }
    }
    f
}

/// The groups of nodes that reach each other (the strongly connected components with
/// more than one node): each is one or more cycles.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<BTreeSet<String>> {
    let reach = |from: &String| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.clone()];
        while let Some(n) = todo.pop() {
            for next in graph.get(&n).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let reached: BTreeMap<&String, BTreeSet<String>> =
        graph.keys().map(|n| (n, reach(n))).collect();
    let mut out = BTreeSet::new();
    for (n, from_n) in &reached {
        let group: BTreeSet<String> = from_n
            .iter()
            .filter(|m| *m == *n || reached.get(m).is_some_and(|r| r.contains(*n)))
            .cloned()
            .collect();
        if group.contains(*n) && group.len() > 1 {
            out.insert(group);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// The real tree.

fn rust_files(dir: &Path, out: &mut Vec<String>, root: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out, root);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).unwrap().to_string_lossy();
            out.push(rel.replace('\\', "/"));
        }
    }
}

fn design_layers() -> BTreeMap<String, usize> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let design = std::fs::read_to_string(root.join("docs/DESIGN.md")).unwrap();
    parse_layers(&design).unwrap()
}

fn real_findings() -> Findings {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files, root);
    files.sort();
    let read = |p: &str| std::fs::read_to_string(root.join(p)).ok();
    let krate = Crate::load(&read, &files);
    check(&krate, &design_layers())
}

/// Compares found and known, both ways.
fn against_known(
    what: &str,
    found: &BTreeMap<(String, String), Vec<String>>,
    known: BTreeSet<(String, String)>,
) {
    let new: Vec<_> = found
        .iter()
        .filter(|(k, _)| !known.contains(*k))
        .flat_map(|(_, places)| places)
        .collect();
    assert!(new.is_empty(), "{what}:\n{new:#?}");
    let gone: Vec<_> = known.iter().filter(|k| !found.contains_key(*k)).collect();
    assert!(
        gone.is_empty(),
        "fixed, remove from the known list in tests/architecture.rs: {gone:?}"
    );
}

#[test]
fn the_crate_parses_and_every_module_has_a_layer() {
    let f = real_findings();
    assert!(f.errors.is_empty(), "{:#?}", f.errors);
}

#[test]
fn no_module_uses_a_layer_above_its_own() {
    let f = real_findings();
    let known = KNOWN
        .iter()
        .map(|(file, m, _)| (file.to_string(), m.to_string()))
        .collect();
    against_known("imports from a higher layer", &f.layering, known);
}

#[test]
fn cuda_is_reached_only_through_the_backend_seam() {
    let f = real_findings();
    let known = KNOWN_SEAM
        .iter()
        .map(|(file, m)| (file.to_string(), m.to_string()))
        .collect();
    against_known(
        "the CUDA backend named outside src/cuda/ and the seam (src/tensor/storage.rs)",
        &f.seam,
        known,
    );
}

#[test]
fn the_children_of_a_module_do_not_use_each_other_in_a_cycle() {
    let f = real_findings();
    let known: BTreeSet<String> = KNOWN_CYCLES.iter().map(|c| c.to_string()).collect();
    assert_eq!(
        f.cycles, known,
        "import cycles inside a module (the known ones are to go; remove them here when they do)"
    );
}

#[test]
fn the_seam_and_the_known_exceptions_are_in_design_md() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let design = std::fs::read_to_string(root.join("docs/DESIGN.md")).unwrap();
    for file in SEAM {
        assert!(
            design.contains(file),
            "docs/DESIGN.md does not name the seam file {file}"
        );
    }
    for (file, module, _) in KNOWN {
        assert!(
            design.contains(&format!("`{file}` → `{module}`")),
            "docs/DESIGN.md does not list the known exception `{file}` → `{module}`"
        );
    }
}

// ---------------------------------------------------------------------------------------
// The checker, on planted source.

mod checker {
    use super::*;

    const LIB: &str = "
        extern crate self as boson;
        pub mod device;
        pub mod error;
        pub mod estimator;
        pub mod nn;
        pub mod optim;
        pub mod prelude;
        pub mod tensor;
        pub use device::Device;
        pub use error::{Error, Result};
        pub use tensor::Tensor;
    ";

    /// The findings for a small crate: `LIB`, an empty file for each module it declares,
    /// and `files` (path, source), which replace or add to those.
    fn findings(files: &[(&str, &str)]) -> Findings {
        let mut map: BTreeMap<String, String> = BTreeMap::new();
        map.insert("src/lib.rs".into(), LIB.into());
        for m in [
            "device",
            "error",
            "estimator",
            "nn",
            "optim",
            "prelude",
            "tensor",
        ] {
            let file = if m == "nn" || m == "tensor" || m == "optim" {
                format!("src/{m}/mod.rs")
            } else {
                format!("src/{m}.rs")
            };
            map.insert(file, String::new());
        }
        map.insert(
            "src/optim/mod.rs".into(),
            "pub struct Sgd; impl Sgd { pub fn new(_: f32) -> Sgd { Sgd } }".into(),
        );
        map.insert(
            "src/prelude.rs".into(),
            "pub use crate::tensor::Tensor; pub use crate::optim::Sgd;".into(),
        );
        map.insert(
            "src/tensor/mod.rs".into(),
            "mod ops; pub mod shape; pub struct Tensor;".into(),
        );
        map.insert("src/tensor/ops.rs".into(), String::new());
        map.insert("src/tensor/shape.rs".into(), "pub struct Layout;".into());
        for (path, text) in files {
            map.insert(path.to_string(), text.to_string());
        }
        let src: Vec<String> = map
            .keys()
            .filter(|k| k.starts_with("src/"))
            .cloned()
            .collect();
        let krate = Crate::load(&|p: &str| map.get(p).cloned(), &src);
        let mut f = check(&krate, &design_layers());
        // The small crate has only some of the modules of the table.
        f.errors.retain(|e| !e.ends_with("which is no module"));
        assert!(f.errors.is_empty(), "{:?}", f.errors);
        f
    }

    /// The places of the layering findings, as `file:line: path`.
    fn layering(f: &Findings) -> Vec<String> {
        f.layering.values().flatten().cloned().collect()
    }

    fn catches(file: &str, text: &str, module: &str) -> Vec<String> {
        let f = findings(&[(file, text)]);
        assert!(
            f.layering
                .contains_key(&(file.to_string(), module.to_string())),
            "not caught: {text}\n{f:#?}"
        );
        layering(&f)
    }

    #[test]
    fn a_use_group() {
        catches(
            "src/tensor/ops.rs",
            "use crate::{optim::Sgd, tensor::Tensor};",
            "optim",
        );
        catches(
            "src/tensor/ops.rs",
            "use crate::{error::Error, optim::{self as o}};",
            "optim",
        );
    }

    #[test]
    fn the_crates_own_name_in_an_expression() {
        let places = catches(
            "src/tensor/ops.rs",
            "fn f() { let _ = boson::optim::Sgd::new(0.1); }",
            "optim",
        );
        assert_eq!(places, ["src/tensor/ops.rs:1: boson::optim::Sgd::new"]);
        catches(
            "src/tensor/ops.rs",
            "fn f() { ::boson::optim::Sgd::new(0.1); }",
            "optim",
        );
    }

    #[test]
    fn super_at_any_depth() {
        // tensor::ops -> tensor -> the root.
        catches(
            "src/tensor/ops.rs",
            "use super::super::optim::Sgd;",
            "optim",
        );
        // tensor::ops::tests::inner -> ... -> the root, in an expression.
        catches(
            "src/tensor/ops.rs",
            "#[cfg(test)] mod tests { mod inner { fn f() {
                 let _ = super::super::super::super::optim::Sgd::new(0.1);
             } } }",
            "optim",
        );
        // A nested file module: tensor::shape::deep -> tensor::shape -> tensor -> the root.
        let f = findings(&[
            ("src/tensor/shape.rs", "mod deep; pub struct Layout;"),
            (
                "src/tensor/shape/deep.rs",
                "use super::super::super::optim;",
            ),
        ]);
        assert!(
            f.layering
                .contains_key(&("src/tensor/shape/deep.rs".into(), "optim".into())),
            "{f:#?}"
        );
    }

    #[test]
    fn a_renamed_import_used_later() {
        let text = "use crate::optim as o;\nfn f() { let _ = o::Sgd::new(0.1); }";
        let places = catches("src/tensor/ops.rs", text, "optim");
        assert!(
            places.contains(&"src/tensor/ops.rs:2: o::Sgd::new".to_string()),
            "{places:?}"
        );
        // The import names only the root; the use of it is what reaches optim.
        let text = "use super::super as top;\nfn f() { let _ = top::optim::Sgd::new(0.1); }";
        let places = catches("src/tensor/ops.rs", text, "optim");
        assert_eq!(places, ["src/tensor/ops.rs:2: top::optim::Sgd::new"]);
        // Renamed in a function's block.
        catches(
            "src/tensor/ops.rs",
            "fn f() { use crate::optim::Sgd as S; let _ = S::new(0.1); }",
            "optim",
        );
    }

    #[test]
    fn a_glob_import() {
        let places = catches(
            "src/tensor/ops.rs",
            "use crate::*;\nfn f() { let _ = optim::Sgd::new(0.1); }",
            "optim",
        );
        assert_eq!(places, ["src/tensor/ops.rs:2: optim::Sgd::new"]);
        catches(
            "src/tensor/ops.rs",
            "fn f() { use crate::optim::*; let _ = Sgd::new(0.1); }",
            "optim",
        );
    }

    #[test]
    fn a_path_inside_a_macro() {
        let places = catches(
            "src/tensor/ops.rs",
            "fn f() { let v = vec![crate::optim::Sgd::new(0.1)]; }",
            "optim",
        );
        assert_eq!(places, ["src/tensor/ops.rs:1: crate::optim::Sgd::new"]);
        catches(
            "src/tensor/ops.rs",
            "use super::super as top;\nfn f() { assert!(matches!(top::optim::Sgd::new(0.1), _)); }",
            "optim",
        );
        catches(
            "src/tensor/ops.rs",
            "macro_rules! m { () => { $crate::optim::Sgd::new(0.1) }; }",
            "optim",
        );
        catches(
            "src/tensor/ops.rs",
            "fn f() { m!(boson::optim::Sgd); }",
            "optim",
        );
    }

    #[test]
    fn types_attributes_and_re_exports() {
        catches(
            "src/tensor/ops.rs",
            "fn f(_: Vec<crate::optim::Sgd>) {}",
            "optim",
        );
        catches(
            "src/tensor/ops.rs",
            "impl From<Sgd> for u8 { fn from(_: boson::optim::Sgd) -> u8 { 0 } }",
            "optim",
        );
        catches(
            "src/tensor/ops.rs",
            "#[derive(crate::optim::Derive)] struct S;",
            "optim",
        );
        catches(
            "src/tensor/ops.rs",
            "#[serde(with = \"crate::optim::serde_sgd\")] struct S;",
            "optim",
        );
        // A re-export goes through the module that re-exports it.
        catches(
            "src/tensor/ops.rs",
            "use crate::prelude::Tensor;",
            "prelude",
        );
        catches("src/nn/mod.rs", "use crate::prelude::Sgd;", "optim");
    }

    #[test]
    fn cfg_test_code_counts() {
        catches(
            "src/tensor/ops.rs",
            "#[cfg(test)]\nmod tests {\n    use boson::estimator::Estimator;\n}",
            "estimator",
        );
    }

    #[test]
    fn a_path_attribute_file_counts_as_its_module() {
        let f = findings(&[
            (
                "src/tensor/ops.rs",
                "#[path = \"../../tests/x/helper.rs\"]\nmod helper;",
            ),
            ("tests/x/helper.rs", "use crate::nn::Dense;"),
        ]);
        assert!(
            f.layering
                .contains_key(&("tests/x/helper.rs".into(), "nn".into())),
            "{f:#?}"
        );
    }

    #[test]
    fn legal_paths_pass() {
        let f = findings(&[
            (
                "src/tensor/ops.rs",
                "use crate::{error::{Error, Result}, device::Device};
                 use super::shape::Layout;
                 use super::super::tensor::Tensor as T;
                 use crate::Tensor;
                 use self::inner::X;
                 mod inner { pub struct X; }
                 /// `crate::optim::Sgd` in a doc comment, and a doc test:
                 /// ```
                 /// boson::optim::Sgd::new(0.1);
                 /// ```
                 // crate::estimator in a comment.
                 fn f() -> Result<()> {
                     let _ = \"crate::optim::Sgd in a string\";
                     let _ = boson::device::Device;
                     let _ = vec![crate::error::Error, super::shape::Layout];
                     let optim = 1; let _ = optim;
                     let _ = std::collections::BTreeMap::<u8, u8>::new();
                     Ok(())
                 }",
            ),
            (
                "src/nn/mod.rs",
                "use crate::Tensor; use boson::Tensor as T;",
            ),
            ("src/optim/mod.rs", "use crate::nn::Dense; pub struct Sgd;"),
        ]);
        assert!(f.layering.is_empty(), "{f:#?}");
        assert!(f.seam.is_empty(), "{f:#?}");
        assert!(f.cycles.is_empty(), "{f:#?}");
    }

    #[test]
    fn the_cuda_seam() {
        let lib = format!("{LIB} pub mod cuda;");
        let f = findings(&[
            ("src/lib.rs", &lib),
            (
                "src/cuda/mod.rs",
                "pub struct CudaStorage; pub struct CudaDevice;",
            ),
            (
                "src/tensor/storage.rs",
                "pub(crate) use crate::cuda::CudaStorage;",
            ),
            (
                "src/tensor/mod.rs",
                "mod ops; pub mod shape; mod storage; pub struct Tensor;",
            ),
            (
                "src/nn/mod.rs",
                "fn f() { let _ = boson::cuda::CudaDevice; let _ = cudarc::driver::X; }",
            ),
        ]);
        let seam: Vec<_> = f.seam.keys().cloned().collect();
        assert_eq!(
            seam,
            [
                ("src/nn/mod.rs".to_string(), "crate::cuda".to_string()),
                ("src/nn/mod.rs".to_string(), "cudarc".to_string())
            ]
        );
    }

    #[test]
    fn a_cycle_through_a_re_export() {
        let f = findings(&[
            ("src/nn/mod.rs", "mod a; mod b; pub use a::A;"),
            ("src/nn/a.rs", "use super::b::B; pub struct A;"),
            ("src/nn/b.rs", "pub struct B; fn f() { let _ = super::A; }"),
        ]);
        assert_eq!(f.cycles.iter().collect::<Vec<_>>(), ["nn: a, b"], "{f:#?}");
    }

    #[test]
    fn the_layer_table_parses() {
        let layers = parse_layers(
            "text\n| Layer | Modules | Job |\n|---|---|---|\n| 0 | `error`, `rng` | x |\n| 1 | `device` | y |\n\nmore",
        )
        .unwrap();
        assert_eq!(layers["rng"], 0);
        assert_eq!(layers["device"], 1);
        assert!(parse_layers("| Layer | Modules |\n|---|---|\n| 0 | `a`, `a` |").is_err());
    }
}
