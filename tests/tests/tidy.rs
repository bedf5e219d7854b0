//! Conventions enforced by a test, not by memory: every source file says what it is for,
//! dependency versions live only in the workspace manifest, the README's two commands are what
//! CI runs, and generated data matches its generator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

const CRATES: [&str; 7] = ["domain", "store", "projections", "app", "web", "ops", "tests"];

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

#[test]
fn every_rust_file_opens_with_a_doc_comment() {
    let mut files = Vec::new();
    for krate in CRATES {
        rust_files(&repo().join(krate), &mut files);
    }
    assert!(files.len() > 20, "found only {} files", files.len());
    let missing: Vec<String> = files
        .iter()
        .filter(|f| !std::fs::read_to_string(f).unwrap().starts_with("//!"))
        .map(|f| f.strip_prefix(repo()).unwrap().display().to_string())
        .collect();
    assert!(missing.is_empty(), "files without a leading //! comment: {missing:?}");
}

#[test]
fn the_domain_does_no_io_and_reads_no_clock() {
    // Feature unification can give chrono its clock in a workspace build, so the rule is checked
    // on the source: the domain receives today and every looked-up fact through `Context`.
    let forbidden = [
        "now()",
        "SystemTime",
        "Instant",
        "std::fs",
        "std::net",
        "std::env",
        "std::process",
        "std::thread",
        "println!",
        "eprintln!",
        "tokio",
        "sled",
        "axum",
    ];
    let mut files = Vec::new();
    rust_files(&repo().join("domain/src"), &mut files);
    for file in files {
        let source = std::fs::read_to_string(&file).unwrap();
        // Code only: doc comments may well say "knows nothing about sled".
        let text: String = source.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
        for word in forbidden {
            assert!(!text.contains(word), "{} uses {word}", file.strip_prefix(repo()).unwrap().display());
        }
    }
}

/// Code lines of `source` (comments dropped: a doc may say "the store is sled").
fn code_lines(source: &str) -> Vec<(usize, &str)> {
    source.lines().enumerate().filter(|(_, l)| !l.trim_start().starts_with("//")).map(|(i, l)| (i + 1, l)).collect()
}

/// Where `words` appear in the code of `crates` (and in their manifests' dependencies).
fn uses_of(crates: &[&str], words: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for krate in crates {
        let mut files = Vec::new();
        rust_files(&repo().join(krate).join("src"), &mut files);
        files.push(repo().join(krate).join("Cargo.toml"));
        for file in files {
            let source = std::fs::read_to_string(&file).unwrap();
            for (n, line) in code_lines(&source) {
                let manifest = file.extension().is_some_and(|e| e == "toml");
                // A manifest names a dependency at the start of a line; descriptions may mention it.
                let hit = |w: &&&str| {
                    let dep = line.trim_start();
                    if manifest {
                        dep.starts_with(&format!("{w}.")) || dep.starts_with(&format!("{w} "))
                    } else {
                        line.contains(**w)
                    }
                };
                if let Some(w) = words.iter().find(hit) {
                    found.push(format!("{}:{n}: {w}", file.strip_prefix(repo()).unwrap().display()));
                }
            }
        }
    }
    found
}

#[test]
fn the_web_and_the_cli_write_only_through_the_application_layer() {
    // Appends are built in daicho-app (execute, bulk); the store's engine is the store's.
    let found = uses_of(&["web", "ops"], &["AppendRequest", "sled", "append_blocking", "submit_blocking"]);
    assert!(found.is_empty(), "web/ops reach past daicho-app: {found:?}");
    // The check itself finds what it looks for.
    assert!(!uses_of(&["app"], &["AppendRequest", "sled"]).is_empty());
    // The CLI needs the web crate only to serve it.
    let mut files = Vec::new();
    rust_files(&repo().join("ops/src"), &mut files);
    let web: Vec<String> = files
        .iter()
        .filter(|f| !f.ends_with("serve.rs"))
        .filter(|f| code_lines(&std::fs::read_to_string(f).unwrap()).iter().any(|(_, l)| l.contains("daicho_web")))
        .map(|f| f.strip_prefix(repo()).unwrap().display().to_string())
        .collect();
    assert!(web.is_empty(), "ops uses daicho-web beyond serve: {web:?}");
}

#[test]
fn versions_are_pinned_once_in_the_workspace() {
    let root: toml::Table = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap().parse().unwrap();
    let pinned = root["workspace"]["dependencies"].as_table().unwrap();
    for (name, spec) in pinned {
        let version = match spec {
            toml::Value::String(v) => Some(v.as_str()),
            toml::Value::Table(t) => t.get("version").and_then(toml::Value::as_str),
            _ => None,
        };
        if let Some(v) = version {
            assert!(v.starts_with('='), "{name} = {v}: pin an exact version");
        }
    }
    for krate in CRATES {
        let manifest: toml::Table =
            std::fs::read_to_string(repo().join(krate).join("Cargo.toml")).unwrap().parse().unwrap();
        assert_eq!(manifest["lints"]["workspace"].as_bool(), Some(true), "{krate}: [lints] workspace = true");
        for section in ["dependencies", "dev-dependencies", "build-dependencies"] {
            let Some(deps) = manifest.get(section).and_then(toml::Value::as_table) else { continue };
            for (name, spec) in deps {
                let from_workspace = spec.get("workspace").and_then(toml::Value::as_bool) == Some(true);
                assert!(from_workspace, "{krate}/{section}/{name}: use `workspace = true`");
            }
        }
    }
}

#[test]
fn the_readme_starts_with_the_two_commands_and_ci_runs_the_second() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let block = readme.split("```").nth(1).expect("a code block");
    // Lines of the block, without the language tag and without trailing `# comments`.
    let commands: Vec<&str> = block
        .lines()
        .skip(1)
        .map(|l| l.split(" #").next().unwrap_or_default().trim())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(commands.len(), 2, "exactly two set-up commands: {commands:?}");
    let before_block = readme.split("```").next().unwrap();
    assert!(before_block.lines().filter(|l| !l.trim().is_empty()).count() <= 3, "the commands come first");
    let ci = std::fs::read_to_string(repo().join(".ci/run")).unwrap();
    assert!(ci.lines().any(|l| l.trim() == format!("exec {}", commands[1])), "CI must run `{}`", commands[1]);
    for command in commands {
        let script = command.split_whitespace().next().unwrap();
        let path = repo().join(script);
        assert!(path.is_file(), "{script} does not exist");
    }
}

#[test]
fn the_jis_x_0213_table_matches_its_generator() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("table.rs");
    let status = std::process::Command::new("python3")
        .arg(repo().join("domain/data/gen_jisx0213.py"))
        .arg(&out)
        .status()
        .expect("python3 runs the generator (it is on every machine of this kind)");
    assert!(status.success());
    let generated = std::fs::read(&out).unwrap();
    let committed = std::fs::read(repo().join("domain/src/text/jisx0213_table.rs")).unwrap();
    assert!(generated == committed, "regenerate with: python3 domain/data/gen_jisx0213.py");
}

/// The printers of personal data: pages, timelines, prints, CLI output.
const PRINTERS: [&str; 7] = [
    "web/src/pages",
    "web/src/describe.rs",
    "ops/src/show.rs",
    "ops/src/audit.rs",
    "ops/src/certificate.rs",
    "projections/src/asof.rs",
    "projections/src/certificate.rs",
];

/// Where a printer reads a person's address, places or My Number without the privacy policy
/// (`domain::privacy::View`): the lines, as `file:line`. A line that reads one for another use
/// than showing it says why in a `// privacy: ...` comment.
fn unguarded_reads(path: &Path, source: &str) -> Vec<String> {
    let lines: Vec<&str> = source.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let through_policy = |l: &str| l.contains(".place(") || l.contains(".hides(") || l.contains("// privacy: ");
        // A field read `.address` (not a method, not a longer name).
        let reads_address = code.match_indices(".address").any(|(at, m)| {
            let next = code[at + m.len()..].chars().next();
            !next.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '(')
        });
        let reads_typed_address = code.contains("\"resident_address\"");
        // A destination or origin, bound on this line and used on it or the next.
        let binds_place = code.contains("MovedOut {") || code.contains("MovedIn {");
        let next = lines.get(i + 1).copied().unwrap_or("");
        let unguarded = ((reads_address || reads_typed_address) && !through_policy(line))
            || (binds_place && !through_policy(line) && !through_policy(next))
            || code.contains(".reveal()");
        if unguarded {
            found.push(format!("{}:{}", path.strip_prefix(repo()).unwrap_or(path).display(), i + 1));
        }
    }
    found
}

#[test]
fn printers_read_addresses_places_and_my_numbers_only_through_the_privacy_policy() {
    let mut files = Vec::new();
    for p in PRINTERS {
        let path = repo().join(p);
        if path.is_dir() { rust_files(&path, &mut files) } else { files.push(path) }
    }
    let found: Vec<String> =
        files.iter().flat_map(|f| unguarded_reads(f, &std::fs::read_to_string(f).unwrap())).collect();
    assert!(found.is_empty(), "read these through privacy::View (place, hides, my_number): {found:?}");
    // The check itself finds what it is for.
    let bad = "let a = r.address.to_string();\nlet m = n.reveal();\nMovedOut { to } => format!(\"{to}\"),\nx\n";
    assert_eq!(unguarded_reads(Path::new("x.rs"), bad).len(), 3);
    let good = "let a = view.place(r.address.as_str());\nMovedOut { to } => {\n  view.place(to)\n}\n";
    assert!(unguarded_reads(Path::new("x.rs"), good).is_empty());
}
