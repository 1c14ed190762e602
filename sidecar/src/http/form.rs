//! The form data tree RoadRunner hands to PHP (docs/wire-protocol.md §3.4, Go's
//! `handler/parse.go`): field names are split on brackets, `a[b][c]` nests objects,
//! `list[]` collects every value into an array, a plain key with several values keeps
//! the last one (data) or the first one (files), spaces in names are ignored and names
//! nested deeper than [`MAX_DEPTH`] are dropped.
//!
//! The same [`TreeBuilder`] builds the uploads tree, whose leaves are file objects
//! (see [`super::uploads`]). Pure: no I/O.
//!
//! Where Go's rules depend on its random map order, this builder is deterministic:
//! fields are mounted in the order their names first appear, and objects keep that
//! order in the JSON (so PHP sees the fields in the order the browser sent them, as
//! php-fpm would; RoadRunner sorts them by name).

use bytes::Bytes;
use indexmap::IndexMap;
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// RoadRunner's `MaxLevel`: names with more segments are silently dropped.
pub const MAX_DEPTH: usize = 127;

/// Why a form could not be turned into a tree.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormError {
    /// The same name is used both for a value and for a nested array
    /// (`a=1&a[b]=2`). RoadRunner refuses such a form too ("invalid multiple values to
    /// key"); the server answers 400.
    #[error("form field {key:?} is used both as a value and as a nested array")]
    Conflict { key: String },
}

/// A leaf of a tree: a string value, or a file object for uploads.
pub trait Leaf {
    /// An empty value never replaces a non-empty one, nor turns a branch into a leaf
    /// (RoadRunner's `isDataEmpty`: the `options=&options[0][id]=…` edge case).
    fn is_blank(&self) -> bool {
        false
    }
}

impl Leaf for String {
    fn is_blank(&self) -> bool {
        self.is_empty()
    }
}

/// Which value a plain key keeps when it was sent several times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pick {
    /// Form values: the last one (RoadRunner `dataTree`, like PHP).
    Last,
    /// Files: the first one (RoadRunner `fileTree`).
    First,
}

/// One node of a tree.
#[derive(Clone, Debug, PartialEq)]
pub enum Node<L> {
    /// A plain key: one value.
    Leaf(L),
    /// `key[]`: every value, in order.
    List(Vec<L>),
    /// `key[sub]…`: a nested object.
    Branch(Tree<L>),
}

/// An ordered tree of form fields; serializes to a JSON object.
#[derive(Clone, Debug, PartialEq)]
pub struct Tree<L> {
    entries: IndexMap<String, Node<L>>,
}

impl<L> Default for Tree<L> {
    fn default() -> Self {
        Tree {
            entries: IndexMap::new(),
        }
    }
}

impl<L> Tree<L> {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn get(&self, key: &str) -> Option<&Node<L>> {
        self.entries.get(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Node<L>)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }
}

impl<L: Serialize> Tree<L> {
    /// The request body PHP receives for a parsed form: the tree as JSON, `{}` for an
    /// empty tree. RoadRunner sends `{}` too, and its PHP library (roadrunner-php/http)
    /// `json_decode`s a parsed body with `JSON_THROW_ON_ERROR`: an empty body would fail
    /// there before the app sees the request (a form with only file fields, an empty
    /// multipart or urlencoded body).
    pub fn to_body(&self) -> Result<Bytes, serde_json::Error> {
        if self.is_empty() {
            return Ok(Bytes::from_static(b"{}"));
        }
        serde_json::to_vec(self).map(Bytes::from)
    }
}

impl<L: Leaf> Tree<L> {
    /// Mounts every value sent under one field `name`, in order. RoadRunner groups a
    /// form's values by name first (Go's `url.Values`), then mounts each name once;
    /// [`TreeBuilder`] does that grouping.
    fn mount_name(&mut self, name: &str, values: Vec<L>, pick: Pick) -> Result<(), FormError> {
        let path = split_name(name);
        if path.len() > MAX_DEPTH {
            return Ok(());
        }
        self.mount(&path, values, pick)
    }

    fn mount(&mut self, path: &[String], mut values: Vec<L>, pick: Pick) -> Result<(), FormError> {
        let Some((key, rest)) = path.split_first() else {
            return Ok(());
        };
        let incoming_blank = is_blank(&values);
        let is_list = rest.len() == 1 && rest[0].is_empty();
        let leaf = |values: &mut Vec<L>| -> Node<L> {
            let one = match pick {
                Pick::Last => values.pop(),
                Pick::First if values.is_empty() => None,
                Pick::First => Some(values.swap_remove(0)),
            };
            match one {
                Some(v) => Node::Leaf(v),
                None => Node::List(Vec::new()),
            }
        };

        let Some(existing) = self.entries.get_mut(key.as_str()) else {
            let node = if rest.is_empty() {
                leaf(&mut values)
            } else if is_list {
                Node::List(values)
            } else {
                let mut sub = Tree::default();
                sub.mount(rest, values, pick)?;
                Node::Branch(sub)
            };
            self.entries.insert(key.clone(), node);
            return Ok(());
        };

        match existing {
            Node::Leaf(_) | Node::List(_) => {
                let old_blank = match existing {
                    Node::Leaf(v) => v.is_blank(),
                    Node::List(vs) => is_blank(vs),
                    Node::Branch(_) => false,
                };
                if !old_blank && incoming_blank {
                    return Ok(());
                }
                if rest.is_empty() {
                    *existing = leaf(&mut values);
                } else if is_list {
                    *existing = Node::List(values);
                } else if old_blank {
                    let mut sub = Tree::default();
                    sub.mount(rest, values, pick)?;
                    *existing = Node::Branch(sub);
                } else {
                    return Err(FormError::Conflict { key: key.clone() });
                }
                Ok(())
            }
            Node::Branch(sub) => {
                if !rest.is_empty() && !is_list {
                    sub.mount(rest, values, pick)
                } else if incoming_blank {
                    Ok(())
                } else {
                    Err(FormError::Conflict { key: key.clone() })
                }
            }
        }
    }
}

fn is_blank<L: Leaf>(values: &[L]) -> bool {
    match values {
        [] => true,
        [one] => one.is_blank(),
        _ => false,
    }
}

/// Splits a field name into its segments like RoadRunner's `fetchIndexes`:
/// `a[b][c]` → `a`,`b`,`c`; `list[]` → `list`,``; spaces are dropped anywhere;
/// text after a `]` starts a new segment (`a[b]c` → `a`,`b`,`c`).
pub fn split_name(name: &str) -> Vec<String> {
    if !name.bytes().any(|b| matches!(b, b'[' | b']' | b' ')) {
        return vec![name.to_owned()];
    }
    #[derive(PartialEq)]
    enum Pos {
        Text,
        Open,
        Closed,
    }
    let mut keys = vec![String::new()];
    let mut pos = Pos::Text;
    for c in name.chars() {
        match c {
            ' ' => {}
            '[' => pos = Pos::Open,
            ']' => {
                if pos == Pos::Open {
                    keys.push(String::new());
                }
                pos = Pos::Closed;
            }
            _ => {
                if pos != Pos::Text {
                    keys.push(String::new());
                }
                if let Some(last) = keys.last_mut() {
                    last.push(c);
                }
                pos = Pos::Text;
            }
        }
    }
    keys
}

/// Collects `(name, value)` pairs in arrival order and builds the tree.
#[derive(Debug)]
pub struct TreeBuilder<L> {
    pick: Pick,
    groups: IndexMap<String, Vec<L>>,
}

impl<L: Leaf> TreeBuilder<L> {
    pub fn new(pick: Pick) -> Self {
        Self::with_capacity(pick, 0)
    }

    /// With room for about `fields` distinct names.
    pub fn with_capacity(pick: Pick, fields: usize) -> Self {
        TreeBuilder {
            pick,
            groups: IndexMap::with_capacity(fields),
        }
    }

    /// Adds one value of field `name`.
    pub fn push(&mut self, name: impl Into<String>, value: L) {
        let name = name.into();
        match self.groups.get_mut(&name) {
            Some(values) => values.push(value),
            None => {
                self.groups.insert(name, vec![value]);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    pub fn build(self) -> Result<Tree<L>, FormError> {
        let mut tree = Tree {
            entries: IndexMap::with_capacity(self.groups.len()),
        };
        for (name, values) in self.groups {
            tree.mount_name(&name, values, self.pick)?;
        }
        Ok(tree)
    }
}

/// Parses an `application/x-www-form-urlencoded` body into the data tree.
///
/// Decoding is lenient like PHP's (and the WHATWG parser's): `+` is a space, a `%` not
/// followed by two hex digits stays as it is, invalid UTF-8 becomes U+FFFD, and `;` is
/// an ordinary character. (Go refuses a form with a bad escape or a `;`, and RoadRunner
/// then fails the request; nobody relies on that.)
pub fn parse_urlencoded(body: &[u8]) -> Result<Tree<String>, FormError> {
    // Sized for the pairs present (bounded: a hint, not a promise).
    let pairs = body.iter().filter(|&&b| b == b'&').count() + 1;
    let mut builder = TreeBuilder::with_capacity(Pick::Last, pairs.min(1024));
    for (name, value) in form_urlencoded::parse(body) {
        builder.push(name.into_owned(), value.into_owned());
    }
    builder.build()
}

/// The body PHP receives for an urlencoded form: the data tree as JSON (`{}` if empty).
pub fn urlencoded_to_json(body: &[u8]) -> Result<Bytes, FormBodyError> {
    Ok(parse_urlencoded(body)?.to_body()?)
}

/// [`urlencoded_to_json`] failed.
#[derive(Debug, thiserror::Error)]
pub enum FormBodyError {
    #[error(transparent)]
    Form(#[from] FormError),
    #[error("encoding the form tree: {0}")]
    Encode(#[from] serde_json::Error),
}

impl<L: Serialize> Serialize for Tree<L> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.entries.len()))?;
        for (k, v) in &self.entries {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<L: Serialize> Serialize for Node<L> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::Leaf(v) => v.serialize(serializer),
            Node::List(vs) => {
                let mut seq = serializer.serialize_seq(Some(vs.len()))?;
                for v in vs {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Node::Branch(t) => t.serialize(serializer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn tree(body: &str) -> Value {
        let t = parse_urlencoded(body.as_bytes()).unwrap();
        serde_json::to_value(&t).unwrap()
    }

    #[test]
    fn split_name_follows_fetch_indexes() {
        let cases: &[(&str, &[&str])] = &[
            ("a", &["a"]),
            ("a[b][c]", &["a", "b", "c"]),
            ("list[]", &["list", ""]),
            ("a[][]", &["a", "", ""]),
            ("a[b]c", &["a", "b", "c"]),
            ("a[]b", &["a", "", "b"]),
            ("[a]", &["", "a"]),
            ("a[", &["a"]),
            ("a]", &["a"]),
            ("a[[b]]", &["a", "b"]),
            (" a [ b ] ", &["a", "b"]),
            ("first name", &["firstname"]),
            ("", &[""]),
            ("ü[ß]", &["ü", "ß"]),
        ];
        for (name, want) in cases {
            assert_eq!(split_name(name), *want, "{name:?}");
        }
    }

    #[test]
    fn data_tree_table() {
        let cases: &[(&str, Value)] = &[
            ("", json!({})),
            ("a=1", json!({"a": "1"})),
            ("a=1&a=2&a=3", json!({"a": "3"})),
            ("a[]=1&a[]=2", json!({"a": ["1", "2"]})),
            ("a[b]=1&a[c]=2", json!({"a": {"b": "1", "c": "2"}})),
            ("a[b][c][d]=x", json!({"a": {"b": {"c": {"d": "x"}}}})),
            (
                "a[b][]=1&a[b][]=2&a[c]=3",
                json!({"a": {"b": ["1", "2"], "c": "3"}}),
            ),
            ("a[b]=1&a[b]=2", json!({"a": {"b": "2"}})),
            ("first name=x", json!({"firstname": "x"})),
            ("a[ b ]=x", json!({"a": {"b": "x"}})),
            ("a=x+y%20z", json!({"a": "x y z"})),
            ("a=%zz", json!({"a": "%zz"})),
            ("a;b=1", json!({"a;b": "1"})),
            ("flag", json!({"flag": ""})),
            ("&&a=1&&", json!({"a": "1"})),
            // an empty value never clobbers data (RoadRunner's `options=` edge case)
            (
                "options=&options[0][id]=97&options[0][name]=n&id=5",
                json!({"options": {"0": {"id": "97", "name": "n"}}, "id": "5"}),
            ),
            (
                "options[0][id]=97&options=",
                json!({"options": {"0": {"id": "97"}}}),
            ),
            ("a=1&a[]=", json!({"a": "1"})),
            ("a=&a[]=1", json!({"a": ["1"]})),
            // a plain key after `key[]`: the whole group decides (Go: last value)
            ("a=x&a=", json!({"a": ""})),
            ("a[]=&a[]=", json!({"a": ["", ""]})),
            ("b=2&a=1", json!({"b": "2", "a": "1"})),
        ];
        for (body, want) in cases {
            assert_eq!(&tree(body), want, "{body:?}");
        }
    }

    #[test]
    fn object_keys_keep_arrival_order() {
        let t = parse_urlencoded(b"z=1&a=2&m[y]=3&m[b]=4").unwrap();
        let json = String::from_utf8(serde_json::to_vec(&t).unwrap()).unwrap();
        assert_eq!(json, r#"{"z":"1","a":"2","m":{"y":"3","b":"4"}}"#);
    }

    #[test]
    fn conflicting_shapes_are_refused() {
        for body in ["a=1&a[b]=2", "a[b]=2&a=1", "a[b]=2&a[]=1", "a=1&a[b][c]=2"] {
            assert_eq!(
                parse_urlencoded(body.as_bytes()),
                Err(FormError::Conflict { key: "a".into() }),
                "{body:?}"
            );
        }
    }

    #[test]
    fn depth_limit_drops_deeper_names() {
        let ok = format!("a{}=v", "[x]".repeat(MAX_DEPTH - 1));
        let t = tree(&ok);
        let mut node = &t["a"];
        for _ in 0..MAX_DEPTH - 1 {
            node = &node["x"];
        }
        assert_eq!(node, "v");

        let deep = format!("a{}=v&b=1", "[x]".repeat(MAX_DEPTH));
        assert_eq!(tree(&deep), json!({"b": "1"}));
    }

    #[test]
    fn empty_tree_is_an_empty_body() {
        assert_eq!(urlencoded_to_json(b"").unwrap(), "{}");
        assert_eq!(urlencoded_to_json(b"&&").unwrap(), "{}");
        assert_eq!(
            &urlencoded_to_json(b"a[]=1&b=%2F").unwrap()[..],
            br#"{"a":["1"],"b":"/"}"#
        );
    }

    #[derive(Debug, Clone, PartialEq, serde::Serialize)]
    struct F(u32);
    impl Leaf for F {}

    #[test]
    fn file_trees_keep_the_first_file() {
        let mut b = TreeBuilder::new(Pick::First);
        b.push("one", F(1));
        b.push("one", F(2));
        b.push("many[]", F(3));
        b.push("many[]", F(4));
        b.push("deep[a][b]", F(5));
        let t = b.build().unwrap();
        assert_eq!(
            serde_json::to_value(&t).unwrap(),
            json!({"one": 1, "many": [3, 4], "deep": {"a": {"b": 5}}})
        );
    }
}
