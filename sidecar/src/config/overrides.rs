//! `-o key.path=value` overrides, read like RoadRunner's `parseFlag`: leading quotes
//! around the whole argument are dropped, key and value are trimmed, a value that starts
//! with a quote (`"`, `'` or a backtick) is a string with that quote trimmed from both
//! ends; the value is env-expanded. An unquoted value is then read as YAML, so
//! `num_workers=4` is a number and `middleware=[gzip, static]` a list (RoadRunner sets a
//! string that its weak typing converts; the result is the same for every key pacer
//! reads, and a comma-separated string still works for lists).

use serde_yaml::{Mapping, Value};

use super::expand::expand;

/// A parsed override: the lower-cased key path and the value to set there.
#[derive(Debug, PartialEq)]
pub(crate) struct Override {
    pub path: Vec<String>,
    pub value: Value,
}

pub(crate) fn parse_override(
    arg: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Override, String> {
    let trimmed = arg.trim_start_matches([' ', '"', '\'', '`']);
    // A quote around the whole argument (`"key=value"`) closes at the end of the value.
    let outer_quote = arg[..arg.len() - trimmed.len()].chars().find(|c| *c != ' ');
    let Some((key, value)) = trimmed.split_once('=') else {
        return Err("expected key.path=value".to_string());
    };
    let key = key.trim();
    if key.is_empty() {
        return Err("the key is empty".to_string());
    }
    let path: Vec<String> = key.split('.').map(str::to_lowercase).collect();
    if path.iter().any(String::is_empty) {
        return Err(format!(
            "{key:?} is not a dotted key path like http.pool.num_workers"
        ));
    }
    let mut value = value.trim_matches([' ', '\n', '\t']);
    if let Some(q) = outer_quote {
        value = value.strip_suffix(q).unwrap_or(value);
    }
    let Some(first) = value.chars().next() else {
        return Err("the value is empty".to_string());
    };
    let value = if matches!(first, '"' | '\'' | '`') {
        let inner = value.trim_matches(first);
        let unescaped = inner.replace(&format!("\\{first}"), &first.to_string());
        Value::String(expand(&unescaped, lookup))
    } else {
        let expanded = expand(value, lookup);
        match serde_yaml::from_str::<Value>(&expanded) {
            Ok(
                v @ (Value::Null
                | Value::Bool(_)
                | Value::Number(_)
                | Value::String(_)
                | Value::Sequence(_)
                | Value::Mapping(_)),
            ) => v,
            // Tagged values or text that is not YAML: the string as given.
            _ => Value::String(expanded),
        }
    };
    Ok(Override { path, value })
}

/// Sets `value` at `path`, creating sections on the way. Fails when a key on the way
/// holds something other than a section.
pub(crate) fn set_path(root: &mut Value, path: &[String], value: Value) -> Result<(), String> {
    let Some((last, parents)) = path.split_last() else {
        return Err("the key is empty".to_string());
    };
    let mut node = root;
    for (i, key) in parents.iter().enumerate() {
        if node.is_null() {
            *node = Value::Mapping(Mapping::new());
        }
        let Value::Mapping(map) = node else {
            return Err(format!("{} is not a section", path[..i].join(".")));
        };
        let k = Value::String(key.clone());
        if !map.contains_key(&k) {
            map.insert(k.clone(), Value::Mapping(Mapping::new()));
        }
        node = match map.get_mut(&k) {
            Some(n) => n,
            None => return Err(format!("{key} cannot be created")),
        };
    }
    if node.is_null() {
        *node = Value::Mapping(Mapping::new());
    }
    let Value::Mapping(map) = node else {
        return Err(format!("{} is not a section", parents.join(".")));
    };
    map.insert(Value::String(last.clone()), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "WORKERS").then(|| "8".to_string())
    }

    fn yaml(s: &str) -> Value {
        serde_yaml::from_str(s).unwrap()
    }

    #[test]
    fn parses_overrides() {
        let cases: &[(&str, &[&str], Value)] = &[
            (
                "http.pool.num_workers=4",
                &["http", "pool", "num_workers"],
                yaml("4"),
            ),
            (
                "HTTP.Pool.Num_Workers=4",
                &["http", "pool", "num_workers"],
                yaml("4"),
            ),
            (
                " http.address = :8080 ",
                &["http", "address"],
                yaml("':8080'"),
            ),
            (
                "server.command=php w.php",
                &["server", "command"],
                yaml("php w.php"),
            ),
            (
                "server.command=\"php w.php\"",
                &["server", "command"],
                yaml("php w.php"),
            ),
            (
                "\"server.command=php w.php\"",
                &["server", "command"],
                yaml("php w.php"),
            ),
            ("a.b='it\\'s'", &["a", "b"], yaml("\"it's\"")),
            ("a.b=`x`", &["a", "b"], yaml("x")),
            (
                "http.middleware=[gzip, static]",
                &["http", "middleware"],
                yaml("[gzip, static]"),
            ),
            (
                "http.middleware=gzip,static",
                &["http", "middleware"],
                yaml("'gzip,static'"),
            ),
            (
                "http.pool.num_workers=${WORKERS}",
                &["http", "pool", "num_workers"],
                yaml("8"),
            ),
            (
                "http.pool.num_workers=${NONE:-3}",
                &["http", "pool", "num_workers"],
                yaml("3"),
            ),
            ("x=\"${WORKERS}\"", &["x"], yaml("'8'")),
            (
                "http.pool.debug=true",
                &["http", "pool", "debug"],
                yaml("true"),
            ),
            ("a=b=c", &["a"], yaml("b=c")),
            ("a=!custom x", &["a"], yaml("'!custom x'")),
            ("a=x: y: z", &["a"], yaml("'x: y: z'")),
        ];
        for (arg, path, value) in cases {
            let o = parse_override(arg, &env).unwrap();
            assert_eq!(o.path, *path, "{arg}");
            assert_eq!(o.value, *value, "{arg}");
        }
    }

    #[test]
    fn rejects_bad_overrides() {
        for arg in ["novalue", "=4", "a.b=", "a..b=1", ".a=1", "a.=1", "a=   "] {
            assert!(parse_override(arg, &env).is_err(), "{arg}");
        }
    }

    #[test]
    fn sets_paths() {
        let mut root = yaml("http: {pool: {num_workers: 2}}\nserver: {command: php}\nrpc:");
        set_path(
            &mut root,
            &["http".into(), "pool".into(), "num_workers".into()],
            yaml("4"),
        )
        .unwrap();
        set_path(
            &mut root,
            &["status".into(), "address".into()],
            yaml("':2114'"),
        )
        .unwrap();
        set_path(
            &mut root,
            &["rpc".into(), "listen".into()],
            yaml("tcp://127.0.0.1:1"),
        )
        .unwrap();
        assert_eq!(
            root,
            yaml(
                "http: {pool: {num_workers: 4}}\nserver: {command: php}\n\
                 rpc: {listen: 'tcp://127.0.0.1:1'}\nstatus: {address: ':2114'}"
            )
        );
        let err = set_path(
            &mut root,
            &["server".into(), "command".into(), "x".into()],
            yaml("1"),
        );
        assert_eq!(err, Err("server.command is not a section".to_string()));
    }
}
