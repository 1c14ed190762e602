//! Environment substitution exactly like RoadRunner's config plugin (`config/expand.go`,
//! itself Go's `os.Expand`): `$VAR`, `${VAR}` and `${VAR:-default}`, the default being
//! used when the variable is unset **or empty**. Like Go, `$` followed by a shell special
//! character (`$1`, `$$`, `$*`, …) names that variable (normally unset, so it vanishes),
//! `${}` and an unclosed `${` are dropped, and a `$` followed by anything else is kept.
//!
//! One RoadRunner quirk is not reproduced: its default handling looks for `:-` in the
//! *whole* string, so `"${A} ${B:-x}"` expands to an empty string there. Here each
//! reference is expanded on its own.

use serde_yaml::Value;

/// Expands every reference in `s`, looking variables up with `lookup` (`None` = unset).
pub fn expand(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    if !s.contains('$') {
        return s.to_string();
    }
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len() * 2);
    let mut copied = 0; // bytes of `s` already handled
    let mut j = 0;
    while j < bytes.len() {
        if bytes[j] == b'$' && j + 1 < bytes.len() {
            out.push_str(&s[copied..j]);
            let (name, width) = shell_name(&s[j + 1..]);
            if name.is_empty() {
                if width == 0 {
                    // Valid syntax, but no name: keep the dollar.
                    out.push('$');
                }
                // else: bad syntax (`${}` or an unclosed `${`): eaten, like Go.
            } else if let Some((key, default)) = name.split_once(":-") {
                match lookup(key) {
                    Some(v) if !v.is_empty() => out.push_str(&v),
                    _ => out.push_str(default),
                }
            } else {
                out.push_str(&lookup(name).unwrap_or_default());
            }
            j += width;
            copied = j + 1;
        }
        j += 1;
    }
    out.push_str(&s[copied.min(s.len())..]);
    out
}

/// The variable name at the start of `s` (just after a `$`) and how many bytes it takes,
/// braces included. `("", 0)` = no name; `("", n > 0)` = bad syntax to drop.
fn shell_name(s: &str) -> (&str, usize) {
    let b = s.as_bytes();
    if b[0] == b'{' {
        if b.len() > 2 && is_special(b[1]) && b[2] == b'}' {
            return (&s[1..2], 3);
        }
        return match s[1..].find('}') {
            Some(0) => ("", 2),
            Some(i) => (&s[1..=i], i + 2),
            None => ("", 1),
        };
    }
    if is_special(b[0]) {
        return (&s[0..1], 1);
    }
    let n = b
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count();
    (&s[..n], n)
}

fn is_special(c: u8) -> bool {
    matches!(
        c,
        b'*' | b'#' | b'$' | b'@' | b'!' | b'?' | b'-' | b'0'..=b'9'
    )
}

/// Expands every string in the tree: scalars, list items and nested values. (RoadRunner
/// expands every string and string-list value; strings inside lists of mappings are
/// expanded here too, which no key pacer reads depends on.) Keys are left alone.
pub fn expand_tree(value: &mut Value, lookup: &dyn Fn(&str) -> Option<String>) {
    match value {
        Value::String(s) => {
            if s.contains('$') {
                *s = expand(s, lookup);
            }
        }
        Value::Sequence(items) => {
            for item in items {
                expand_tree(item, lookup);
            }
        }
        Value::Mapping(map) => {
            for (_, v) in map.iter_mut() {
                expand_tree(v, lookup);
            }
        }
        Value::Tagged(t) => expand_tree(&mut t.value, lookup),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("db".into()),
            "PORT" => Some("5432".into()),
            "EMPTY" => Some(String::new()),
            "A_1" => Some("x".into()),
            _ => None,
        }
    }

    #[test]
    fn substitution_forms() {
        let cases = [
            ("plain", "plain"),
            ("$HOST", "db"),
            ("${HOST}", "db"),
            ("tcp://${HOST}:$PORT", "tcp://db:5432"),
            ("$HOST.$PORT", "db.5432"),
            ("${UNSET}", ""),
            ("$UNSET", ""),
            ("${UNSET:-fallback}", "fallback"),
            ("${EMPTY:-fallback}", "fallback"),
            ("${HOST:-fallback}", "db"),
            ("${UNSET:-}", ""),
            ("tcp://127.0.0.1:${RPC_PORT:-6001}", "tcp://127.0.0.1:6001"),
            ("${ADDR:-0.0.0.0:8080}", "0.0.0.0:8080"),
            ("${A} ${HOST:-x}", " db"),
            ("$A_1-$A_1", "x-x"),
            ("$HOSTx", ""),
            ("${HOST}x", "dbx"),
            ("cost: 5$", "cost: 5$"),
            ("$", "$"),
            ("$ HOST", "$ HOST"),
            ("a$/b", "a$/b"),
            ("$$", ""),
            ("$1", ""),
            ("${1}", ""),
            ("${}", ""),
            ("x${}y", "xy"),
            ("${HOST", "HOST"),
            ("é$HOST€", "édb€"),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, &env), want, "{input:?}");
        }
    }

    #[test]
    fn expands_strings_in_the_whole_tree_but_not_keys() {
        let mut v: Value =
            serde_yaml::from_str("$HOST: ${HOST}\nlist: [$PORT, 1, true]\nn: 5\nm: {k: x$HOST}")
                .unwrap();
        expand_tree(&mut v, &env);
        let want: Value =
            serde_yaml::from_str("$HOST: db\nlist: ['5432', 1, true]\nn: 5\nm: {k: xdb}").unwrap();
        assert_eq!(v, want);
    }
}
