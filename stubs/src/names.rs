//! Python identifiers from MCP names: deterministic, collision-free, never a keyword.

use std::collections::HashSet;

/// Python's keywords and soft keywords that cannot (or should not) name a function or argument.
const KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield", "match", "case", "type",
];

/// `name` as a Python identifier: every character outside `[A-Za-z0-9_]` becomes `_`, a leading
/// digit gets a `_` before it, a keyword gets a trailing `_` (`from` → `from_`).
pub fn identifier(name: &str) -> String {
    let mut ident: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if ident.is_empty() || ident.starts_with(|c: char| c.is_ascii_digit()) {
        ident.insert(0, '_');
    }
    if KEYWORDS.contains(&ident.as_str()) {
        ident.push('_');
    }
    ident
}

/// Unique identifiers for `names`, in the same order. A name that is already a valid identifier
/// keeps it; the others take their [`identifier`], or `_2`, `_3`, ... after it when that is
/// taken, in the order given. The same names always get the same identifiers.
pub fn unique_identifiers<S: AsRef<str>>(names: &[S]) -> Vec<String> {
    let mut taken: HashSet<String> = names
        .iter()
        .map(AsRef::as_ref)
        .filter(|name| identifier(name) == *name)
        .map(str::to_string)
        .collect();
    names
        .iter()
        .map(|name| {
            let name = name.as_ref();
            let ident = identifier(name);
            if ident == name {
                return ident;
            }
            let mut candidate = ident.clone();
            let mut n = 2;
            while taken.contains(&candidate) {
                candidate = format!("{ident}_{n}");
                n += 1;
            }
            taken.insert(candidate.clone());
            candidate
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_identifiers() {
        assert_eq!(identifier("get-sum"), "get_sum");
        assert_eq!(identifier("files.read"), "files_read");
        assert_eq!(identifier("read file"), "read_file");
        assert_eq!(identifier("2fa"), "_2fa");
        assert_eq!(identifier("from"), "from_");
        assert_eq!(identifier("class"), "class_");
        assert_eq!(identifier("async"), "async_");
        assert_eq!(identifier(""), "_");
        assert_eq!(identifier("ünï"), "_n_");
    }

    #[test]
    fn collisions_are_resolved_the_same_way_every_time() {
        let names = ["get-sum", "get_sum", "get.sum", "from", "from_"];
        let idents = unique_identifiers(&names);
        assert_eq!(
            idents,
            ["get_sum_2", "get_sum", "get_sum_3", "from__2", "from_"]
        );
        assert_eq!(unique_identifiers(&names), idents);
    }
}
