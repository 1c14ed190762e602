//! `--dotenv FILE` / `DOTENV_PATH`: `KEY=VALUE` lines read before the config is parsed, as
//! RoadRunner does with `godotenv.Load` (variables already in the environment win).
//!
//! Accepted syntax: blank lines and `#` comments; an optional `export ` prefix; `=` (or
//! `: `) between key and value; unquoted values end at ` #` (inline comment) and are
//! trimmed; `'single quotes'` are literal; `"double quotes"` understand `\n`, `\r`, `\t`,
//! `\"`, `\\` and `\$` and may span lines. `$VAR` / `${VAR}` in unquoted and
//! double-quoted values refer to keys defined earlier in the file, then to the
//! environment (godotenv expands from the file only; reading the environment too is
//! what users expect of `${HOME}`).

use super::expand::expand;

/// Parses dotenv text. `lookup` reads the process environment for `$VAR` references.
/// Errors carry the 1-based line number.
pub fn parse_dotenv(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, (usize, String)> {
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((idx, raw_line)) = lines.next() {
        let line_no = idx + 1;
        let line = raw_line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        let (key, rest) = match (line.find('='), line.find(": ")) {
            (Some(e), Some(c)) if c < e => (&line[..c], &line[c + 2..]),
            (Some(e), _) => (&line[..e], &line[e + 1..]),
            (None, Some(c)) => (&line[..c], &line[c + 2..]),
            (None, None) => {
                return Err((line_no, format!("expected KEY=VALUE, got {line:?}")));
            }
        };
        let key = key.trim();
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
        {
            return Err((line_no, format!("{key:?} is not a variable name")));
        }
        let rest = rest.trim_start();
        let known = |name: &str| -> Option<String> {
            vars.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .or_else(|| lookup(name))
        };
        let value = if let Some(body) = rest.strip_prefix('\'') {
            match body.find('\'') {
                Some(end) => body[..end].to_string(),
                None => return Err((line_no, "unterminated single quote".to_string())),
            }
        } else if let Some(body) = rest.strip_prefix('"') {
            // May continue on the next lines until the closing quote.
            let mut collected = body.to_string();
            loop {
                if let Some(v) = double_quoted(&collected) {
                    // The placeholder of an escaped dollar survives `expand` untouched.
                    break expand(&v, &known).replace(ESCAPED_DOLLAR, "$");
                }
                match lines.next() {
                    Some((_, next)) => {
                        collected.push('\n');
                        collected.push_str(next);
                    }
                    None => return Err((line_no, "unterminated double quote".to_string())),
                }
            }
        } else {
            let value = match rest.find(" #") {
                Some(i) => &rest[..i],
                None => rest,
            };
            expand(value.trim(), &known)
        };
        vars.push((key.to_string(), value));
    }
    // Later definitions win, keeping the first position.
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in vars {
        match out.iter_mut().find(|(ok, _)| *ok == k) {
            Some(slot) => slot.1 = v,
            None => out.push((k, v)),
        }
    }
    Ok(out)
}

/// Stands for `\$` until variables are expanded (NUL cannot occur in an env value).
const ESCAPED_DOLLAR: char = '\u{0}';

/// The content of a double-quoted value whose opening quote was already consumed, with
/// escapes applied; `None` while the closing quote is missing.
fn double_quoted(body: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some('"') => out.push('"'),
                Some('\\') => out.push('\\'),
                Some('$') => out.push(ESCAPED_DOLLAR),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => return None,
            },
            other => out.push(other),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "HOME").then(|| "/home/app".to_string())
    }

    fn parse(text: &str) -> Vec<(String, String)> {
        parse_dotenv(text, &env).unwrap()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn dotenv_syntax() {
        let text = r#"
# a comment
PLAIN=value
export EXPORTED=yes
SPACED = padded value   
INLINE=abc # comment
HASH=abc#def
SINGLE='literal $HOME # not a comment'
DOUBLE="line1\nline2 \"q\" \$HOME"
EXPANDED=${HOME}/app
REFER=$PLAIN-2
DEFAULT=${MISSING:-fallback}
EMPTY=
YAMLISH: colon
MULTI="first
second"
PLAIN=override
"#;
        assert_eq!(
            parse(text),
            pairs(&[
                ("PLAIN", "override"),
                ("EXPORTED", "yes"),
                ("SPACED", "padded value"),
                ("INLINE", "abc"),
                ("HASH", "abc#def"),
                ("SINGLE", "literal $HOME # not a comment"),
                ("DOUBLE", "line1\nline2 \"q\" $HOME"),
                ("EXPANDED", "/home/app/app"),
                ("REFER", "value-2"),
                ("DEFAULT", "fallback"),
                ("EMPTY", ""),
                ("YAMLISH", "colon"),
                ("MULTI", "first\nsecond"),
            ])
        );
    }

    #[test]
    fn dotenv_errors_name_the_line() {
        let cases = [
            ("OK=1\nnot a pair\n", 2),
            ("BAD KEY=1", 1),
            ("A='open", 1),
            ("\n\nA=\"open\nstill open", 3),
            ("=value", 1),
        ];
        for (text, line) in cases {
            let err = parse_dotenv(text, &env).unwrap_err();
            assert_eq!(err.0, line, "{text:?}: {}", err.1);
        }
    }
}
