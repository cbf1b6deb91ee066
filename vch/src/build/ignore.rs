//! `.dockerignore`: which context paths a build leaves out. The rules are dockerd's
//! (moby `patternmatcher`): one pattern per line, `#` comments, `!` re-includes, the last
//! matching line decides, a pattern that matches a directory matches everything below it,
//! `*` and `?` stay within one path element and `**` crosses them.

use globset::{Glob, GlobMatcher};

pub struct Ignore {
    rules: Vec<(GlobMatcher, bool)>,
}

impl Ignore {
    pub fn parse(text: &str) -> Result<Ignore, String> {
        let mut rules = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exclude, pattern) = match line.strip_prefix('!') {
                Some(p) => (false, p.trim()),
                None => (true, line),
            };
            let pattern = clean(pattern);
            if pattern.is_empty() {
                continue;
            }
            let glob = globset::GlobBuilder::new(&pattern)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| format!("invalid .dockerignore pattern {line:?}: {e}"))?;
            rules.push((glob.compile_matcher(), exclude));
        }
        Ok(Ignore { rules })
    }

    /// Whether `path` (relative to the context root, `/`-separated) is left out.
    pub fn excludes(&self, path: &str) -> bool {
        let mut out = false;
        for (glob, exclude) in &self.rules {
            if ancestors(path).any(|p| glob.is_match(p)) {
                out = *exclude;
            }
        }
        out
    }
}

/// `path` and each of its parent directories.
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    std::iter::once(path).chain(path.match_indices('/').map(move |(i, _)| &path[..i]))
}

/// A pattern as moby cleans it: no leading `/` or `./`, no `.` elements, no trailing `/`.
pub fn clean(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

/// A single glob for COPY sources (`*`, `?`, `[...]` within one element).
pub fn source_glob(pattern: &str) -> Result<GlobMatcher, String> {
    Glob::new(pattern)
        .and_then(|_| {
            globset::GlobBuilder::new(pattern)
                .literal_separator(true)
                .build()
        })
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("invalid source pattern {pattern:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerd_rules() {
        let i = Ignore::parse("# comment\n*.log\n/tmp\nsecret/**\n!keep.log\n**/node_modules\n")
            .unwrap();
        assert!(i.excludes("a.log") && !i.excludes("keep.log"));
        assert!(!i.excludes("sub/a.log"), "* stays in one element");
        assert!(
            i.excludes("tmp") && i.excludes("tmp/x/y"),
            "a directory takes its tree"
        );
        assert!(i.excludes("secret/a/b"));
        assert!(i.excludes("node_modules/x") && i.excludes("web/node_modules/y"));
        assert!(!i.excludes("src/main.rs"));
        assert!(Ignore::parse("[oops").is_err());
    }

    #[test]
    fn cleans_like_filepath_clean() {
        assert_eq!(clean("./a//b/../c/"), "a/c");
        assert_eq!(clean("/"), "");
    }
}
