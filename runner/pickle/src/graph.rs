//! The object graph a pickle builds while it is read. Python objects are mutable and
//! shared through the memo: a list appended to after it was memoised, or an instance
//! that `BUILD` fills in later, must look the same everywhere it is referenced. So the
//! reader keeps every object once, in an arena, refers to it by index, mutates it in
//! place, and only turns the finished graph into a `Value` tree at the end.
//!
//! Limits that keep hostile input harmless (all errors, never panics):
//! - the tree is at most [`MAX_DEPTH`] levels deep (conversion recurses, and so does
//!   dropping a `Value`); an object that contains itself is reported as a cycle;
//! - sharing can make a small pickle expand into an exponentially large tree: the
//!   expansion is charged by approximate heap bytes and stops at
//!   [`expansion_limit`] of the input size;
//! - copies and key comparisons while reading (a `set` built from a list, duplicate
//!   dict keys) are charged to a work budget proportional to the input size.

use crate::error::Error;
use crate::value::{Object, Value};
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

/// Deepest nesting of containers and objects accepted, in the pickle's MARK stack and in
/// the resulting tree. Mailman's messages nest a few levels per MIME level.
pub const MAX_DEPTH: usize = 1000;

/// Bytes of `Value` tree a pickle of `input_len` bytes may expand to: 16 times the input
/// plus 16 MiB. An unshared tree is about as large as its pickle.
pub fn expansion_limit(input_len: usize) -> usize {
    input_len.saturating_mul(16).saturating_add(16 << 20)
}

/// Steps of copy/compare work allowed while reading `input_len` bytes.
pub fn work_limit(input_len: usize) -> usize {
    input_len.saturating_mul(16).saturating_add(1 << 20)
}

pub type Id = usize;

#[derive(Debug)]
pub enum Node {
    /// Scalars, strings, `datetime`s and class references: never mutated.
    Leaf(Value),
    List(Vec<Id>),
    Tuple(Vec<Id>),
    Dict(Keyed<(Id, Id)>),
    Set(Keyed<Id>),
    FrozenSet(Keyed<Id>),
    Object(ObjectNode),
}

#[derive(Debug)]
pub struct ObjectNode {
    pub module: String,
    pub name: String,
    /// A `Tuple` node; shared rather than copied, as Python passes the tuple itself.
    pub args: Option<Id>,
    pub state: Option<Id>,
    pub list_items: Vec<Id>,
    pub dict_items: Vec<(Id, Id)>,
}

impl ObjectNode {
    pub fn new(module: String, name: String, args: Option<Id>) -> Self {
        ObjectNode { module, name, args, state: None, list_items: Vec::new(), dict_items: Vec::new() }
    }
}

/// Items of a dict or set, with a hash index over the keys so that an equal key
/// replaces (dict) or is ignored (set), as in Python, in constant time.
#[derive(Debug, Default)]
pub struct Keyed<T> {
    pub items: Vec<T>,
    index: HashMap<u64, Vec<usize>>,
}

impl Node {
    pub fn kind(&self) -> &'static str {
        match self {
            Node::Leaf(v) => v.kind(),
            Node::List(_) => "list",
            Node::Tuple(_) => "tuple",
            Node::Dict(_) => "dict",
            Node::Set(_) => "set",
            Node::FrozenSet(_) => "frozenset",
            Node::Object(_) => "object",
        }
    }
}

/// All objects of one pickle, with the offset of the opcode that created each.
#[derive(Debug)]
pub struct Arena {
    nodes: Vec<(Node, usize)>,
    work: usize,
    work_limit: usize,
}

impl Arena {
    pub fn new(input_len: usize) -> Self {
        Arena { nodes: Vec::new(), work: 0, work_limit: work_limit(input_len) }
    }

    pub fn add(&mut self, node: Node, at: usize) -> Id {
        self.nodes.push((node, at));
        self.nodes.len() - 1
    }

    pub fn get(&self, id: Id) -> &Node {
        &self.nodes[id].0
    }

    pub fn get_mut(&mut self, id: Id) -> &mut Node {
        &mut self.nodes[id].0
    }

    pub fn charge(&mut self, steps: usize) -> Result<(), Error> {
        self.work = self.work.saturating_add(steps);
        if self.work > self.work_limit {
            return Err(Error::TooMuchWork { limit: self.work_limit });
        }
        Ok(())
    }

    /// A hash for Python's key equality on the values a dict key can hold here:
    /// text, bytes, numbers (`True == 1 == 1.0`), None. Other keys hash by identity.
    fn key_hash(&self, id: Id) -> u64 {
        let mut h = DefaultHasher::new();
        match self.get(id) {
            Node::Leaf(v) => match v {
                Value::Str(s) => (0u8, s.as_wtf8()).hash(&mut h),
                Value::Bytes(b) => (1u8, b).hash(&mut h),
                Value::Int(i) => (2u8, i).hash(&mut h),
                Value::Bool(b) => (2u8, i64::from(*b)).hash(&mut h),
                Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e18 => (2u8, *f as i64).hash(&mut h),
                Value::None => 3u8.hash(&mut h),
                _ => (4u8, id).hash(&mut h),
            },
            _ => (4u8, id).hash(&mut h),
        }
        h.finish()
    }

    fn keys_equal(&mut self, a: Id, b: Id) -> Result<bool, Error> {
        if a == b {
            return Ok(true);
        }
        let (Node::Leaf(x), Node::Leaf(y)) = (self.get(a), self.get(b)) else {
            return Ok(false);
        };
        let cost = match (x, y) {
            (Value::Str(s), Value::Str(t)) => s.as_wtf8().len().min(t.as_wtf8().len()),
            (Value::Bytes(s), Value::Bytes(t)) => s.len().min(t.len()),
            _ => 1,
        };
        let equal = match (x, y) {
            (Value::Str(s), Value::Str(t)) => s == t,
            (Value::Bytes(s), Value::Bytes(t)) => s == t,
            (Value::None, Value::None) => true,
            _ => match (as_number(x), as_number(y)) {
                (Some(p), Some(q)) => p == q,
                _ => false,
            },
        };
        self.charge(cost)?;
        Ok(equal)
    }

    /// Where `key` already is among `keyed`'s items, by Python equality.
    fn find_key<T>(
        &mut self,
        keyed: &Keyed<T>,
        key: Id,
        key_of: impl Fn(&T) -> Id,
    ) -> Result<(u64, Option<usize>), Error> {
        let hash = self.key_hash(key);
        if let Some(positions) = keyed.index.get(&hash) {
            for &pos in positions {
                if let Some(item) = keyed.items.get(pos) {
                    if self.keys_equal(key_of(item), key)? {
                        return Ok((hash, Some(pos)));
                    }
                }
            }
        }
        Ok((hash, None))
    }

    /// `d[key] = value` on the dict node `dict`.
    pub fn dict_set(&mut self, dict: Id, key: Id, value: Id) -> Result<(), Error> {
        let mut keyed = match self.get_mut(dict) {
            Node::Dict(k) => std::mem::take(k),
            _ => return Ok(()),
        };
        let result = self.find_key(&keyed, key, |(k, _)| *k);
        if let Ok((hash, found)) = result {
            match found.and_then(|pos| keyed.items.get_mut(pos)) {
                Some(item) => item.1 = value,
                None => {
                    keyed.index.entry(hash).or_default().push(keyed.items.len());
                    keyed.items.push((key, value));
                }
            }
        }
        if let Node::Dict(k) = self.get_mut(dict) {
            *k = keyed;
        }
        result.map(|_| ())
    }

    /// `s.add(item)` on the set or frozenset node `set`.
    pub fn set_add(&mut self, set: Id, item: Id) -> Result<(), Error> {
        let mut keyed = match self.get_mut(set) {
            Node::Set(k) | Node::FrozenSet(k) => std::mem::take(k),
            _ => return Ok(()),
        };
        let result = self.find_key(&keyed, item, |k| *k);
        if let Ok((hash, None)) = result {
            keyed.index.entry(hash).or_default().push(keyed.items.len());
            keyed.items.push(item);
        }
        if let Node::Set(k) | Node::FrozenSet(k) = self.get_mut(set) {
            *k = keyed;
        }
        result.map(|_| ())
    }

    /// The finished tree under `root`, built without recursion (a deep tree must give
    /// `TooDeep`, not overflow the thread's stack).
    ///
    /// A large string or byte string that appears exactly once in the tree (referred to
    /// once, by a container that appears once, up to the root) is moved into it rather
    /// than copied, so a message body is held once, not twice, while an entry is read.
    pub fn take_value(&mut self, root: Id, input_len: usize) -> Result<Value, Error> {
        let owned = self.take_unique_large_leaves(root);
        let mut expander = Expander {
            arena: self,
            owned,
            on_path: vec![false; self.nodes.len()],
            spent: 0,
            limit: expansion_limit(input_len),
        };
        expander.expand(root)
    }

    /// Takes out of the arena the large leaves that the expansion of `root` visits
    /// exactly once (see [`Arena::take_value`]).
    fn take_unique_large_leaves(&mut self, root: Id) -> Vec<Option<Value>> {
        const LARGE: usize = 4096;
        let n = self.nodes.len();
        let mut refs = vec![0u32; n];
        let mut parent = vec![usize::MAX; n];
        if let Some(r) = refs.get_mut(root) {
            *r += 1;
        }
        for (id, (node, _)) in self.nodes.iter().enumerate() {
            for child in children(node) {
                if let Some(r) = refs.get_mut(child) {
                    *r = r.saturating_add(1);
                    parent[child] = id;
                }
            }
        }
        // Unique: referred to once, and so is every container up to the root.
        let unique = |mut id: Id| {
            for _ in 0..n {
                if refs[id] != 1 {
                    return false;
                }
                if id == root {
                    return true;
                }
                id = parent[id];
                if id >= n {
                    return false;
                }
            }
            false
        };
        let mut owned: Vec<Option<Value>> = Vec::new();
        owned.resize_with(n, || None);
        for (id, slot) in owned.iter_mut().enumerate() {
            let large = match &self.nodes[id].0 {
                Node::Leaf(Value::Str(s)) => s.as_wtf8().len() >= LARGE,
                Node::Leaf(Value::Bytes(b)) => b.len() >= LARGE,
                _ => false,
            };
            if large && unique(id) {
                if let Node::Leaf(v) = &mut self.nodes[id].0 {
                    *slot = Some(std::mem::replace(v, Value::None));
                }
            }
        }
        owned
    }
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

struct Expander<'a> {
    arena: &'a Arena,
    /// Leaves moved out of the arena, visited once (see `Arena::take_value`).
    owned: Vec<Option<Value>>,
    /// Nodes being expanded (the current path from the root): seeing one again is a cycle.
    on_path: Vec<bool>,
    spent: usize,
    limit: usize,
}

/// A container being expanded: its children in order, and the values made of them so far.
struct Frame {
    id: Id,
    children: Vec<Id>,
    values: Vec<Value>,
}

impl<'a> Expander<'a> {
    fn spend(&mut self, bytes: usize) -> Result<(), Error> {
        self.spent = self.spent.saturating_add(bytes).saturating_add(size_of::<Value>());
        if self.spent > self.limit {
            return Err(Error::TooLarge { limit: self.limit });
        }
        Ok(())
    }

    fn expand(&mut self, root: Id) -> Result<Value, Error> {
        let mut stack: Vec<Frame> = Vec::new();
        let mut next = Some(root);
        loop {
            if let Some(id) = next.take() {
                if stack.len() > MAX_DEPTH {
                    return Err(Error::TooDeep { limit: MAX_DEPTH });
                }
                let (node, at) = self.node(id)?;
                match node {
                    Node::Leaf(v) => {
                        let v = match self.owned.get_mut(id).and_then(Option::take) {
                            Some(moved) => {
                                self.spend(match &moved {
                                    Value::Bytes(b) => b.len(),
                                    Value::Str(s) => s.as_wtf8().len(),
                                    _ => 0,
                                })?;
                                moved
                            }
                            None => self.leaf(v)?,
                        };
                        match stack.last_mut() {
                            Some(parent) => parent.values.push(v),
                            None => return Ok(v),
                        }
                    }
                    _ => {
                        if std::mem::replace(&mut self.on_path[id], true) {
                            return Err(Error::Cycle { at });
                        }
                        self.spend(0)?;
                        let mut children = children(node);
                        children.reverse(); // popped from the end, in order
                        stack.push(Frame { id, children, values: Vec::new() });
                    }
                }
            }
            let Some(frame) = stack.last_mut() else {
                return Err(Error::malformed("empty pickle tree", 0));
            };
            if let Some(child) = frame.children.pop() {
                next = Some(child);
                continue;
            }
            let Some(frame) = stack.pop() else { continue };
            self.on_path[frame.id] = false;
            let (node, _) = self.node(frame.id)?;
            let value = assemble(node, frame.values);
            match stack.last_mut() {
                Some(parent) => parent.values.push(value),
                None => return Ok(value),
            }
        }
    }

    fn node(&self, id: Id) -> Result<(&'a Node, usize), Error> {
        let arena: &'a Arena = self.arena;
        match arena.nodes.get(id) {
            Some((node, at)) => Ok((node, *at)),
            None => Err(Error::malformed("reference to an object that was never created", 0)),
        }
    }

    fn leaf(&mut self, v: &Value) -> Result<Value, Error> {
        self.spend(match v {
            Value::Bytes(b) => b.len(),
            Value::Str(s) => s.as_wtf8().len(),
            Value::Global { module, name } => module.len() + name.len(),
            _ => 0,
        })?;
        Ok(v.clone())
    }
}

/// The nodes a container refers to, in the order `assemble` takes their values.
fn children(node: &Node) -> Vec<Id> {
    match node {
        Node::Leaf(_) => Vec::new(),
        Node::List(items) | Node::Tuple(items) => items.clone(),
        Node::Set(k) | Node::FrozenSet(k) => k.items.clone(),
        Node::Dict(k) => k.items.iter().flat_map(|&(a, b)| [a, b]).collect(),
        Node::Object(o) => o
            .args
            .iter()
            .chain(&o.state)
            .copied()
            .chain(o.list_items.iter().copied())
            .chain(o.dict_items.iter().flat_map(|&(a, b)| [a, b]))
            .collect(),
    }
}

fn pairs(mut values: impl Iterator<Item = Value>) -> Vec<(Value, Value)> {
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (values.next(), values.next()) {
        out.push((k, v));
    }
    out
}

/// The value of a container node from the values of its `children`.
fn assemble(node: &Node, values: Vec<Value>) -> Value {
    let mut values = values.into_iter();
    match node {
        Node::Leaf(v) => v.clone(),
        Node::List(_) => Value::List(values.collect()),
        Node::Tuple(_) => Value::Tuple(values.collect()),
        Node::Set(_) => Value::Set(values.collect()),
        Node::FrozenSet(_) => Value::FrozenSet(values.collect()),
        Node::Dict(_) => Value::Dict(pairs(values)),
        Node::Object(o) => {
            let args = match o.args.and_then(|_| values.next()) {
                Some(Value::Tuple(items)) => items,
                Some(other) => vec![other],
                None => Vec::new(),
            };
            let state = o.state.and_then(|_| values.next());
            let list_items = values.by_ref().take(o.list_items.len()).collect();
            Value::Object(Box::new(Object {
                module: o.module.clone(),
                name: o.name.clone(),
                args,
                state,
                list_items,
                dict_items: pairs(values),
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::value::Value;

    /// `pickle.dumps([d, d, 'y' * 5000], 2)` with `d = {'k': 'x' * 5000}`: the large
    /// string inside `d` is referred to once, but `d` twice; the other one is unique.
    fn shared_container_pickle() -> Vec<u8> {
        let mut p = b"\x80\x02]q\x00(}q\x01X\x01\x00\x00\x00kq\x02X\x88\x13\x00\x00".to_vec();
        p.extend(std::iter::repeat_n(b'x', 5000));
        p.extend_from_slice(b"q\x03sh\x01X\x88\x13\x00\x00");
        p.extend(std::iter::repeat_n(b'y', 5000));
        p.extend_from_slice(b"q\x04e.");
        p
    }

    #[test]
    fn a_large_string_under_a_shared_container_is_in_every_copy() {
        let (v, _) = crate::read(&shared_container_pickle()).expect("pickle");
        let Value::List(items) = v else { panic!("{v:?}") };
        assert_eq!(items.len(), 3);
        for d in &items[..2] {
            let text = d.get("k").and_then(Value::as_text).expect("k");
            assert_eq!(text, "x".repeat(5000));
        }
        assert_eq!(items[2].as_text().expect("y"), "y".repeat(5000));
    }
}
