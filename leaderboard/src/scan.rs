//! Walking a leaderboard's `submissions/` and `reproductions/` trees without trusting them: only plain files and
//! folders with plain names (no links, no dot files, no `..`), each results file paired with its envelope; anything
//! else becomes a rejected entry with the reason, never skipped in silence.

use std::path::{Path, PathBuf};

/// A plain name: 1–128 characters of `A–Z a–z 0–9 . _ -`, not starting with a dot.
pub fn safe_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('.')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A results file and its envelope, found in the tree.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// Path relative to the leaderboard (`submissions/dev/run.json`), `/`-separated.
    pub rel: String,
    /// The results file.
    pub results: PathBuf,
    /// Its envelope (`run.dsse.json`), which may be missing.
    pub envelope: PathBuf,
    /// The folder names between the tree's root and the file (`[device]`, or `[device, run]` for reproductions).
    pub folders: Vec<String>,
}

/// Something in the tree that is not a results file with a plain name.
#[derive(Debug, Clone, PartialEq)]
pub struct Stray {
    /// Path relative to the leaderboard.
    pub rel: String,
    /// Why it is not read.
    pub reason: String,
}

/// Walks `dir/root` to `depth` folders: results files at that depth, strays anywhere.
pub fn walk(dir: &Path, root: &str, depth: usize) -> (Vec<Found>, Vec<Stray>) {
    let mut found = Vec::new();
    let mut strays = Vec::new();
    walk_in(dir, root, &mut Vec::new(), depth, &mut found, &mut strays);
    found.sort_by(|a, b| a.rel.cmp(&b.rel));
    strays.sort_by(|a, b| a.rel.cmp(&b.rel));
    (found, strays)
}

fn walk_in(
    dir: &Path,
    root: &str,
    folders: &mut Vec<String>,
    depth: usize,
    found: &mut Vec<Found>,
    strays: &mut Vec<Stray>,
) {
    let here: PathBuf = folders.iter().fold(dir.join(root), |p, f| p.join(f));
    let prefix: String = std::iter::once(root.to_string()).chain(folders.iter().cloned()).collect::<Vec<_>>().join("/");
    let rel_of = |name: &str| if name.is_empty() { prefix.clone() } else { format!("{prefix}/{name}") };
    let entries = match std::fs::read_dir(&here) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && folders.is_empty() => return,
        Err(e) => {
            strays.push(Stray { rel: rel_of(""), reason: format!("cannot be listed: {e}") });
            return;
        }
    };
    let mut names: Vec<(String, std::fs::Metadata)> = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        match std::fs::symlink_metadata(e.path()) {
            Ok(m) => names.push((name, m)),
            Err(err) => strays.push(Stray { rel: rel_of(&name), reason: format!("cannot be read: {err}") }),
        }
    }
    names.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, meta) in &names {
        let rel = rel_of(name);
        if !safe_name(name) {
            strays.push(Stray { rel, reason: "not a plain name (letters, digits, . _ - only, no leading dot)".into() });
            continue;
        }
        if meta.file_type().is_symlink() {
            strays.push(Stray { rel, reason: "a symbolic link (a leaderboard holds plain files only)".into() });
            continue;
        }
        if meta.is_dir() {
            if folders.len() < depth {
                folders.push(name.clone());
                walk_in(dir, root, folders, depth, found, strays);
                folders.pop();
            } else {
                strays.push(Stray {
                    rel,
                    reason: format!("a folder {} levels deep (submissions go {depth} deep)", folders.len() + 1),
                });
            }
            continue;
        }
        if !meta.is_file() {
            strays.push(Stray { rel, reason: "not a plain file".into() });
            continue;
        }
        if name.ends_with(".dsse.json") {
            let results = name.trim_end_matches(".dsse.json").to_string() + ".json";
            if !names.iter().any(|(n, _)| *n == results) {
                strays.push(Stray { rel, reason: format!("an envelope without its results file {results}") });
            }
            continue;
        }
        if folders.len() != depth || !name.ends_with(".json") {
            strays
                .push(Stray { rel, reason: format!("not a results file at depth {depth} (`{root}/…/<run>.json`)") });
            continue;
        }
        let envelope = here.join(name.trim_end_matches(".json").to_string() + ".dsse.json");
        found.push(Found { rel, results: here.join(name), envelope, folders: folders.clone() });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_links_depth_and_pairs() {
        let d = tempfile::tempdir().unwrap();
        let s = d.path().join("submissions");
        std::fs::create_dir_all(s.join("dev/deeper")).unwrap();
        std::fs::create_dir_all(s.join("bad name")).unwrap();
        std::fs::write(s.join("dev/a.json"), "{}").unwrap();
        std::fs::write(s.join("dev/a.dsse.json"), "{}").unwrap();
        std::fs::write(s.join("dev/orphan.dsse.json"), "{}").unwrap();
        std::fs::write(s.join("dev/.hidden.json"), "{}").unwrap();
        std::fs::write(s.join("top.json"), "{}").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", s.join("dev/link.json")).unwrap();
        let (found, strays) = walk(d.path(), "submissions", 1);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].rel, "submissions/dev/a.json");
        assert_eq!(found[0].folders, vec!["dev".to_string()]);
        let why = |r: &str| strays.iter().find(|s| s.rel == r).map(|s| s.reason.clone()).unwrap_or_default();
        assert!(why("submissions/bad name").contains("plain name"));
        assert!(why("submissions/dev/deeper").contains("deep"));
        assert!(why("submissions/dev/orphan.dsse.json").contains("without"));
        assert!(why("submissions/dev/.hidden.json").contains("plain name"));
        assert!(why("submissions/dev/link.json").contains("symbolic link"));
        assert!(why("submissions/top.json").contains("depth"));
        assert!(!safe_name("..") && !safe_name("a/b") && !safe_name("") && safe_name("run-1.x_y"));
    }
}
