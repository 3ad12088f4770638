//! An object-aware pickle reader for protocols 0 to 5, for the pickles Mailman writes
//! (Python 2.7 `cPickle` and Python 3 `pickle`). It runs the pickle's stack machine
//! over an arena of objects (see `graph`), so memo sharing and late mutation (`BUILD`,
//! `APPEND`, `SETITEM` on a memoised object) are seen everywhere, as in Python.
//!
//! Nothing is ever imported or called. Classes stay names; the only calls that are
//! interpreted are those whose result is plain data:
//! - `set`/`frozenset` (`__builtin__` or `builtins`) over a list -> `Set`/`FrozenSet`;
//! - `_codecs.encode(text, 'latin1')` (how protocols < 3 store `bytes`) and
//!   `bytes()` -> `Bytes`;
//! - `datetime.datetime` with its 10-byte state (`REDUCE` or `NEWOBJ`) -> `DateTime`.
//!   A datetime that also carries a `tzinfo` stays an `Object` (Mailman stores naive
//!   UTC datetimes only, and dropping the zone would change the value); the `fold`
//!   bit is dropped (naive datetimes compare equal whatever their fold);
//! - `copy_reg._reconstructor(cls, base, state)` (protocol 0/1 new-style instances)
//!   -> an `Object` of `cls`, with `args` `[base, state]` unless the base is `object`
//!   and the state None.
//!
//! Every other `REDUCE`, `NEWOBJ`, `OBJ` and `INST` gives a `Value::Object` and a bare
//! class reference a `Value::Global`, module names as written (`__builtin__` is not
//! renamed `builtins`). Persistent ids, the extension registry and out-of-band buffers
//! are errors: Mailman never writes them.
//!
//! Limits (hostile input is an error, never a panic, hang or unbounded allocation):
//! every length prefix is checked against the bytes that remain before anything is
//! allocated; MARKs and the finished tree nest at most `MAX_DEPTH` (1000) deep, and an
//! object that contains itself is an error; integers have at most `MAX_INT_DIGITS`
//! digits (text) or `MAX_LONG_BYTES` bytes (binary); the arena holds at most one or
//! two objects per opcode; copy work while reading, and the size of the finished tree
//! (memo sharing can make it exponential), are bounded in proportion to the input (see
//! `graph`).

use crate::error::{Error, Part};
use crate::graph::{Arena, Id, Keyed, Node, ObjectNode, MAX_DEPTH};
use crate::text;
use crate::value::{DateTime, PyStr, Value};
use num_bigint::BigInt;
use std::collections::HashMap;

/// Largest `LONG4` integer accepted, in bytes: about as many digits as Python 3.11
/// agrees to print (`MAX_INT_DIGITS`); anything that uses such an integer would
/// otherwise spend quadratic time printing it.
pub const MAX_LONG_BYTES: usize = 2048;

/// One pickle read from the start of a byte slice.
#[derive(Debug, Clone, PartialEq)]
pub struct Pickle {
    pub value: Value,
    /// Bytes consumed: the position just after `STOP`.
    pub len: usize,
    /// The `PROTO` number, or for pickles without one (protocols 0 and 1) the highest
    /// protocol among the opcodes used, as `pickletools` reports it.
    pub protocol: u8,
}

/// Both pickles of a Mailman queue entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub message: Value,
    pub metadata: Value,
    /// Length of the message pickle: where the metadata pickle starts.
    pub message_len: usize,
    pub message_protocol: u8,
    pub metadata_protocol: u8,
}

/// Reads one pickle from the start of `data`; returns it and the bytes consumed.
pub fn read(data: &[u8]) -> Result<(Value, usize), Error> {
    read_pickle(data).map(|p| (p.value, p.len))
}

/// Reads one pickle from the start of `data`, with its protocol.
pub fn read_pickle(data: &[u8]) -> Result<Pickle, Error> {
    read_at(data, 0)
}

/// Reads a queue entry: the message pickle, then the metadata pickle, then nothing.
/// Error offsets count from the start of `data`.
pub fn read_entry(data: &[u8]) -> Result<Entry, Error> {
    let in_part = |part| move |e| Error::InEntry { part, error: Box::new(e) };
    let message = read_at(data, 0).map_err(in_part(Part::Message))?;
    let rest = data.get(message.len..).unwrap_or_default();
    let metadata = read_at(rest, message.len).map_err(in_part(Part::Metadata))?;
    let end = message.len + metadata.len;
    if end < data.len() {
        return Err(Error::TrailingBytes { count: data.len() - end, at: end });
    }
    Ok(Entry {
        message: message.value,
        metadata: metadata.value,
        message_len: message.len,
        message_protocol: message.protocol,
        metadata_protocol: metadata.protocol,
    })
}

/// Reads one pickle from `data`, which starts at offset `base` of the file.
fn read_at(data: &[u8], base: usize) -> Result<Pickle, Error> {
    let mut reader = Machine {
        data,
        pos: 0,
        base,
        arena: Arena::new(data.len()),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        protocol: 0,
    };
    let root = reader.run()?;
    let value = reader.arena.take_value(root, data.len()).map_err(|e| reader.rebase(e))?;
    Ok(Pickle { value, len: reader.pos, protocol: reader.protocol })
}

/// The unpickler's state: CPython's stack, mark stack and memo, over arena ids.
struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    /// Offset of `data` in the file, added to every offset in errors.
    base: usize,
    arena: Arena,
    stack: Vec<Id>,
    /// The stacks saved by each open MARK.
    marks: Vec<Vec<Id>>,
    memo: HashMap<u64, Id>,
    protocol: u8,
}

impl<'a> Machine<'a> {
    /// Runs opcodes up to `STOP`; returns the object on top of the stack.
    fn run(&mut self) -> Result<Id, Error> {
        self.run_opcodes().map_err(|e| self.rebase(e))
    }

    fn run_opcodes(&mut self) -> Result<Id, Error> {
        loop {
            let at = self.pos;
            let op = self.byte()?;
            self.protocol = self.protocol.max(opcode_protocol(op));
            if op == b'.' {
                return self.pop(at);
            }
            self.step(op, at)?;
        }
    }

    /// Errors are raised with offsets inside `data`; this moves them to file offsets.
    fn rebase(&self, e: Error) -> Error {
        let base = self.base;
        match e {
            Error::Truncated { at } => Error::Truncated { at: at + base },
            Error::UnknownOpcode { opcode, at } => Error::UnknownOpcode { opcode, at: at + base },
            Error::MemoKeyMissing { key, at } => Error::MemoKeyMissing { key, at: at + base },
            Error::LengthTooLarge { what, len, at, remaining } => {
                Error::LengthTooLarge { what, len, at: at + base, remaining }
            }
            Error::Malformed { what, at } => Error::Malformed { what, at: at + base },
            Error::Unsupported { what, at } => Error::Unsupported { what, at: at + base },
            Error::Cycle { at } => Error::Cycle { at: at + base },
            other => other,
        }
    }

    fn step(&mut self, op: u8, at: usize) -> Result<(), Error> {
        match op {
            // Stack and memo.
            b'(' => {
                if self.marks.len() >= MAX_DEPTH {
                    return Err(Error::TooDeep { limit: MAX_DEPTH });
                }
                self.marks.push(std::mem::take(&mut self.stack));
            }
            b'0' => {
                // CPython pops a MARK when the stack above it is empty.
                if self.stack.pop().is_none() {
                    self.pop_mark(at)?;
                }
            }
            b'1' => {
                self.pop_mark(at)?;
            }
            b'2' => {
                let top = self.top(at)?;
                self.stack.push(top);
            }
            b'p' => {
                let key = self.memo_key_line(at)?;
                self.put(key, at)?;
            }
            b'q' => {
                let key = self.byte()?;
                self.put(key.into(), at)?;
            }
            b'r' => {
                let key = u32::from_le_bytes(self.fixed::<4>()?);
                self.put(key.into(), at)?;
            }
            0x94 => {
                let key = self.memo.len() as u64;
                self.put(key, at)?;
            }
            b'g' => {
                let key = self.memo_key_line(at)?;
                self.get(key, at)?;
            }
            b'h' => {
                let key = self.byte()?;
                self.get(key.into(), at)?;
            }
            b'j' => {
                let key = u32::from_le_bytes(self.fixed::<4>()?);
                self.get(key.into(), at)?;
            }
            0x80 => {
                let proto = self.byte()?;
                if proto > 5 {
                    return Err(Error::unsupported(format!("pickle protocol {proto}"), at));
                }
                self.protocol = self.protocol.max(proto);
            }
            0x95 => {
                // A frame only groups opcodes for buffered reading; check its length.
                let len = u64::from_le_bytes(self.fixed::<8>()?);
                self.check_len("frame", len, at)?;
            }

            // Scalars.
            b'N' => self.push_leaf(Value::None, at),
            0x88 => self.push_leaf(Value::Bool(true), at),
            0x89 => self.push_leaf(Value::Bool(false), at),
            b'I' => {
                let line = self.line()?;
                let v = text::parse_int(line).map_err(|e| Error::malformed(e, at))?;
                self.push_leaf(v, at);
            }
            b'J' => {
                let v = i32::from_le_bytes(self.fixed::<4>()?);
                self.push_leaf(Value::Int(v.into()), at);
            }
            b'K' => {
                let v = self.byte()?;
                self.push_leaf(Value::Int(v.into()), at);
            }
            b'M' => {
                let v = u16::from_le_bytes(self.fixed::<2>()?);
                self.push_leaf(Value::Int(v.into()), at);
            }
            b'L' => {
                let line = self.line()?;
                let v = text::parse_long(line).map_err(|e| Error::malformed(e, at))?;
                self.push_leaf(v, at);
            }
            0x8a => {
                let len = self.byte()?;
                let bytes = self.take("long", len.into(), at)?;
                self.push_leaf(long_from_le(bytes), at);
            }
            0x8b => {
                let len = i32::from_le_bytes(self.fixed::<4>()?);
                let len = u64::try_from(len).map_err(|_| Error::malformed("negative LONG4 length", at))?;
                let bytes = self.take("long", len, at)?;
                if bytes.len() > MAX_LONG_BYTES {
                    return Err(Error::unsupported(
                        format!("integer of {} bytes (at most {MAX_LONG_BYTES})", bytes.len()),
                        at,
                    ));
                }
                self.push_leaf(long_from_le(bytes), at);
            }
            b'F' => {
                let line = self.line()?;
                let v = text::parse_float(line).map_err(|e| Error::malformed(e, at))?;
                self.push_leaf(Value::Float(v), at);
            }
            b'G' => {
                let v = f64::from_be_bytes(self.fixed::<8>()?);
                self.push_leaf(Value::Float(v), at);
            }

            // Byte strings (Python 2 `str`, Python 3 `bytes`).
            b'S' => {
                let line = self.line()?;
                let v = text::parse_string(line).map_err(|e| Error::malformed(e, at))?;
                self.push_leaf(Value::Bytes(v), at);
            }
            b'T' => {
                let len = i32::from_le_bytes(self.fixed::<4>()?);
                let len = u64::try_from(len).map_err(|_| Error::malformed("negative BINSTRING length", at))?;
                self.push_bytes(len, at)?;
            }
            b'U' | b'C' => {
                let len = self.byte()?;
                self.push_bytes(len.into(), at)?;
            }
            b'B' => {
                let len = u32::from_le_bytes(self.fixed::<4>()?);
                self.push_bytes(len.into(), at)?;
            }
            0x8e => {
                let len = u64::from_le_bytes(self.fixed::<8>()?);
                self.push_bytes(len, at)?;
            }
            0x96 => {
                let len = u64::from_le_bytes(self.fixed::<8>()?);
                let bytes = Value::Bytes(self.take("bytearray", len, at)?.to_vec());
                let args = self.arena.add(Node::Leaf(bytes), at);
                let args = self.arena.add(Node::Tuple(vec![args]), at);
                let obj = ObjectNode::new("builtins".into(), "bytearray".into(), Some(args));
                self.push_node(Node::Object(obj), at);
            }

            // Text strings.
            b'V' => {
                let line = self.line()?;
                let v = text::parse_unicode(line).map_err(|e| Error::malformed(e, at))?;
                self.push_leaf(Value::Str(v), at);
            }
            b'X' => {
                let len = u32::from_le_bytes(self.fixed::<4>()?);
                self.push_text(len.into(), at)?;
            }
            0x8c => {
                let len = self.byte()?;
                self.push_text(len.into(), at)?;
            }
            0x8d => {
                let len = u64::from_le_bytes(self.fixed::<8>()?);
                self.push_text(len, at)?;
            }

            // Lists.
            b']' => self.push_node(Node::List(Vec::new()), at),
            b'l' => {
                let items = self.pop_mark(at)?;
                self.push_node(Node::List(items), at);
            }
            b'a' => {
                let item = self.pop(at)?;
                let target = self.top(at)?;
                self.append(target, vec![item], at)?;
            }
            b'e' => {
                let items = self.pop_mark(at)?;
                let target = self.top(at)?;
                self.append(target, items, at)?;
            }

            // Tuples.
            b')' => self.push_node(Node::Tuple(Vec::new()), at),
            b't' => {
                let items = self.pop_mark(at)?;
                self.push_node(Node::Tuple(items), at);
            }
            0x85..=0x87 => {
                let n = usize::from(op - 0x84);
                if self.stack.len() < n {
                    return Err(stack_underflow(at));
                }
                let items = self.stack.split_off(self.stack.len() - n);
                self.push_node(Node::Tuple(items), at);
            }

            // Dicts.
            b'}' => self.push_node(Node::Dict(Keyed::default()), at),
            b'd' => {
                let items = self.pop_mark(at)?;
                let dict = self.arena.add(Node::Dict(Keyed::default()), at);
                self.set_items(dict, items, at)?;
                self.stack.push(dict);
            }
            b's' => {
                let value = self.pop(at)?;
                let key = self.pop(at)?;
                let target = self.top(at)?;
                self.set_items(target, vec![key, value], at)?;
            }
            b'u' => {
                let items = self.pop_mark(at)?;
                let target = self.top(at)?;
                self.set_items(target, items, at)?;
            }

            // Sets.
            0x8f => self.push_node(Node::Set(Keyed::default()), at),
            0x90 => {
                let items = self.pop_mark(at)?;
                let target = self.top(at)?;
                match self.arena.get_mut(target) {
                    Node::Set(_) => self.add_all(target, &items)?,
                    Node::Object(o) => o.list_items.extend(items),
                    other => return Err(Error::malformed(format!("ADDITEMS to a {}", other.kind()), at)),
                }
            }
            0x91 => {
                let items = self.pop_mark(at)?;
                let set = self.arena.add(Node::FrozenSet(Keyed::default()), at);
                self.add_all(set, &items)?;
                self.stack.push(set);
            }

            // Classes and instances.
            b'c' => {
                let module = self.name_line(at)?;
                let name = self.name_line(at)?;
                self.push_leaf(Value::Global { module, name }, at);
            }
            0x93 => {
                let name = self.pop(at)?;
                let module = self.pop(at)?;
                let (Some(module), Some(name)) = (self.text_of(module), self.text_of(name)) else {
                    return Err(Error::malformed("STACK_GLOBAL needs two text strings", at));
                };
                self.push_leaf(Value::Global { module, name }, at);
            }
            b'R' => {
                let args = self.pop(at)?;
                let callable = self.pop(at)?;
                let result = self.reduce(callable, args, at)?;
                self.stack.push(result);
            }
            0x81 => {
                let args = self.pop(at)?;
                let class = self.pop(at)?;
                let result = self.new_object(class, args, at)?;
                self.stack.push(result);
            }
            0x92 => {
                let kwargs = self.pop(at)?;
                let args = self.pop(at)?;
                let class = self.pop(at)?;
                match self.arena.get(kwargs) {
                    Node::Dict(k) if k.items.is_empty() => {}
                    _ => return Err(Error::unsupported("NEWOBJ_EX with keyword arguments", at)),
                }
                let result = self.new_object(class, args, at)?;
                self.stack.push(result);
            }
            b'o' => {
                let mut items = self.pop_mark(at)?;
                if items.is_empty() {
                    return Err(Error::malformed("OBJ without a class", at));
                }
                let class = items.remove(0);
                let (module, name) = self.class_of(class, "OBJ", at)?;
                let args = self.arena.add(Node::Tuple(items), at);
                self.push_node(Node::Object(ObjectNode::new(module, name, Some(args))), at);
            }
            b'i' => {
                let module = self.name_line(at)?;
                let name = self.name_line(at)?;
                let items = self.pop_mark(at)?;
                let args = self.arena.add(Node::Tuple(items), at);
                self.push_node(Node::Object(ObjectNode::new(module, name, Some(args))), at);
            }
            b'b' => {
                let state = self.pop(at)?;
                let target = self.top(at)?;
                self.build(target, state, at)?;
            }

            b'P' | b'Q' => return Err(Error::unsupported("persistent id (PERSID)", at)),
            0x82..=0x84 => return Err(Error::unsupported("extension registry code (EXT)", at)),
            0x97 | 0x98 => return Err(Error::unsupported("out-of-band buffer", at)),
            _ => return Err(Error::UnknownOpcode { opcode: op, at }),
        }
        Ok(())
    }

    // ---- input ----

    fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    fn byte(&mut self) -> Result<u8, Error> {
        let [b] = self.fixed::<1>()?;
        Ok(b)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let bytes = self.data.get(self.pos..self.pos + N).ok_or(Error::Truncated { at: self.data.len() })?;
        self.pos += N;
        let mut out = [0; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn check_len(&self, what: &'static str, len: u64, at: usize) -> Result<usize, Error> {
        let remaining = self.remaining();
        match usize::try_from(len) {
            Ok(n) if n <= remaining => Ok(n),
            _ => Err(Error::LengthTooLarge { what, len, at, remaining }),
        }
    }

    /// The next `len` bytes, after checking that they are there.
    fn take(&mut self, what: &'static str, len: u64, at: usize) -> Result<&'a [u8], Error> {
        let n = self.check_len(what, len, at)?;
        let start = self.pos;
        self.pos += n;
        Ok(&self.data[start..start + n])
    }

    /// A protocol-0 argument: the bytes up to the next `\n`, which is consumed.
    fn line(&mut self) -> Result<&'a [u8], Error> {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let n = rest.iter().position(|&b| b == b'\n').ok_or(Error::Truncated { at: self.data.len() })?;
        let start = self.pos;
        self.pos += n + 1;
        Ok(&self.data[start..start + n])
    }

    fn name_line(&mut self, at: usize) -> Result<String, Error> {
        let line = self.line()?;
        String::from_utf8(line.to_vec()).map_err(|_| Error::malformed("class name is not UTF-8", at))
    }

    fn memo_key_line(&mut self, at: usize) -> Result<u64, Error> {
        let line = self.line()?;
        std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.trim_ascii().parse::<u64>().ok())
            .ok_or_else(|| Error::malformed(format!("invalid memo key {:?}", String::from_utf8_lossy(line)), at))
    }

    // ---- stack ----

    fn push_node(&mut self, node: Node, at: usize) {
        let id = self.arena.add(node, at);
        self.stack.push(id);
    }

    fn push_leaf(&mut self, value: Value, at: usize) {
        self.push_node(Node::Leaf(value), at);
    }

    fn push_bytes(&mut self, len: u64, at: usize) -> Result<(), Error> {
        let bytes = self.take("string", len, at)?.to_vec();
        self.push_leaf(Value::Bytes(bytes), at);
        Ok(())
    }

    fn push_text(&mut self, len: u64, at: usize) -> Result<(), Error> {
        let bytes = self.take("string", len, at)?.to_vec();
        let text = PyStr::from_wtf8(bytes).map_err(|e| Error::malformed(e.to_string(), at))?;
        self.push_leaf(Value::Str(text), at);
        Ok(())
    }

    fn pop(&mut self, at: usize) -> Result<Id, Error> {
        self.stack.pop().ok_or_else(|| stack_underflow(at))
    }

    fn top(&self, at: usize) -> Result<Id, Error> {
        self.stack.last().copied().ok_or_else(|| stack_underflow(at))
    }

    /// The items pushed since the last MARK, which is closed.
    fn pop_mark(&mut self, at: usize) -> Result<Vec<Id>, Error> {
        let outer = self.marks.pop().ok_or_else(|| Error::malformed("no MARK to close", at))?;
        Ok(std::mem::replace(&mut self.stack, outer))
    }

    fn put(&mut self, key: u64, at: usize) -> Result<(), Error> {
        let top = self.top(at)?;
        self.memo.insert(key, top);
        Ok(())
    }

    fn get(&mut self, key: u64, at: usize) -> Result<(), Error> {
        let id = *self.memo.get(&key).ok_or(Error::MemoKeyMissing { key, at })?;
        self.stack.push(id);
        Ok(())
    }

    // ---- containers ----

    fn append(&mut self, target: Id, items: Vec<Id>, at: usize) -> Result<(), Error> {
        match self.arena.get_mut(target) {
            Node::List(list) => list.extend(items),
            Node::Object(o) => o.list_items.extend(items),
            other => return Err(Error::malformed(format!("APPEND to a {}", other.kind()), at)),
        }
        Ok(())
    }

    fn set_items(&mut self, target: Id, items: Vec<Id>, at: usize) -> Result<(), Error> {
        if items.len() & 1 == 1 {
            return Err(Error::malformed("odd number of items for a dict", at));
        }
        let pairs = items.chunks_exact(2).map(|p| (p[0], p[1]));
        match self.arena.get_mut(target) {
            Node::Dict(_) => {
                for (key, value) in pairs {
                    self.arena.dict_set(target, key, value)?;
                }
            }
            Node::Object(o) => o.dict_items.extend(pairs),
            other => return Err(Error::malformed(format!("SETITEM on a {}", other.kind()), at)),
        }
        Ok(())
    }

    fn add_all(&mut self, set: Id, items: &[Id]) -> Result<(), Error> {
        for &item in items {
            self.arena.set_add(set, item)?;
        }
        Ok(())
    }

    fn build(&mut self, target: Id, state: Id, at: usize) -> Result<(), Error> {
        if matches!(self.arena.get(state), Node::Leaf(Value::None)) {
            // Python's default __setstate__ ignores a false state.
            return Ok(());
        }
        let previous = match self.arena.get(target) {
            Node::Object(o) => o.state,
            other => return Err(Error::malformed(format!("BUILD on a {}", other.kind()), at)),
        };
        // A second BUILD updates the instance dict: keep both, later keys winning.
        let merged = match previous.map(|p| (self.arena.get(p), self.arena.get(state))) {
            Some((Node::Dict(old), Node::Dict(new))) => {
                let pairs: Vec<(Id, Id)> = old.items.iter().chain(&new.items).copied().collect();
                self.arena.charge(pairs.len())?;
                let dict = self.arena.add(Node::Dict(Keyed::default()), at);
                for (k, v) in pairs {
                    self.arena.dict_set(dict, k, v)?;
                }
                dict
            }
            _ => state,
        };
        if let Node::Object(o) = self.arena.get_mut(target) {
            o.state = Some(merged);
        }
        Ok(())
    }

    // ---- calls ----

    fn text_of(&self, id: Id) -> Option<String> {
        match self.arena.get(id) {
            Node::Leaf(Value::Str(s)) => s.as_str().map(str::to_owned),
            _ => None,
        }
    }

    fn class_of(&self, id: Id, opcode: &str, at: usize) -> Result<(String, String), Error> {
        match self.arena.get(id) {
            Node::Leaf(Value::Global { module, name }) => Ok((module.clone(), name.clone())),
            other => Err(Error::malformed(format!("{opcode} on a {} instead of a class", other.kind()), at)),
        }
    }

    fn tuple_items(&self, id: Id, opcode: &str, at: usize) -> Result<Vec<Id>, Error> {
        match self.arena.get(id) {
            Node::Tuple(items) => Ok(items.clone()),
            other => Err(Error::malformed(format!("{opcode} arguments are a {}, not a tuple", other.kind()), at)),
        }
    }

    /// `callable(*args)`: plain data for the known forms, else an `Object`.
    fn reduce(&mut self, callable: Id, args: Id, at: usize) -> Result<Id, Error> {
        let (module, name) = self.class_of(callable, "REDUCE", at)?;
        let items = self.tuple_items(args, "REDUCE", at)?;
        self.arena.charge(items.len())?;
        let builtin = module == "__builtin__" || module == "builtins";
        match (module.as_str(), name.as_str(), items.as_slice()) {
            (_, "set" | "frozenset", [] | [_]) if builtin => {
                let source = match items.first() {
                    None => Some(Vec::new()),
                    Some(&src) => match self.arena.get(src) {
                        Node::List(v) | Node::Tuple(v) => Some(v.clone()),
                        Node::Set(k) | Node::FrozenSet(k) => Some(k.items.clone()),
                        _ => None,
                    },
                };
                if let Some(source) = source {
                    self.arena.charge(source.len())?;
                    let set =
                        if name == "set" { Node::Set(Keyed::default()) } else { Node::FrozenSet(Keyed::default()) };
                    let set = self.arena.add(set, at);
                    self.add_all(set, &source)?;
                    return Ok(set);
                }
            }
            (_, "bytes", []) if builtin => return Ok(self.arena.add(Node::Leaf(Value::Bytes(Vec::new())), at)),
            ("_codecs", "encode", [text, encoding]) => {
                if let Some(bytes) = self.latin1_encode(*text, *encoding, at)? {
                    return Ok(self.arena.add(Node::Leaf(Value::Bytes(bytes)), at));
                }
            }
            ("datetime", "datetime", [state]) => return self.datetime(*state, at),
            ("copy_reg" | "copyreg", "_reconstructor", [class, base, state]) => {
                let (module, name) = self.class_of(*class, "copyreg._reconstructor", at)?;
                let plain_object = matches!(self.arena.get(*base),
                    Node::Leaf(Value::Global { module, name }) if (module == "__builtin__" || module == "builtins") && name == "object")
                    && matches!(self.arena.get(*state), Node::Leaf(Value::None));
                let args = if plain_object { None } else { Some(self.arena.add(Node::Tuple(vec![*base, *state]), at)) };
                return Ok(self.arena.add(Node::Object(ObjectNode::new(module, name, args)), at));
            }
            _ => {}
        }
        Ok(self.arena.add(Node::Object(ObjectNode::new(module, name, Some(args))), at))
    }

    /// `cls.__new__(cls, *args)`.
    fn new_object(&mut self, class: Id, args: Id, at: usize) -> Result<Id, Error> {
        let (module, name) = self.class_of(class, "NEWOBJ", at)?;
        let only_arg = match self.arena.get(args) {
            Node::Tuple(items) if items.len() == 1 => items.first().copied(),
            Node::Tuple(_) => None,
            other => return Err(Error::malformed(format!("NEWOBJ arguments are a {}, not a tuple", other.kind()), at)),
        };
        if let (("datetime", "datetime"), Some(state)) = ((module.as_str(), name.as_str()), only_arg) {
            return self.datetime(state, at);
        }
        Ok(self.arena.add(Node::Object(ObjectNode::new(module, name, Some(args))), at))
    }

    /// `text.encode(encoding)` when the encoding is latin-1; `None` for other encodings.
    fn latin1_encode(&self, text: Id, encoding: Id, at: usize) -> Result<Option<Vec<u8>>, Error> {
        let latin1 = self.text_of(encoding).is_some_and(|e| {
            matches!(
                e.to_ascii_lowercase().replace('_', "-").as_str(),
                "latin1" | "latin-1" | "iso-8859-1" | "iso8859-1" | "l1"
            )
        });
        let Node::Leaf(Value::Str(text)) = self.arena.get(text) else {
            return Ok(None);
        };
        if !latin1 {
            return Ok(None);
        }
        text.code_points()
            .map(|cp| {
                u8::try_from(cp).map_err(|_| Error::malformed(format!("U+{cp:04X} cannot be encoded as latin-1"), at))
            })
            .collect::<Result<Vec<u8>, Error>>()
            .map(Some)
    }

    /// `datetime(state)`: the 10-byte pickled state gives a naive `DateTime`.
    fn datetime(&mut self, state: Id, at: usize) -> Result<Id, Error> {
        let Node::Leaf(Value::Bytes(b)) = self.arena.get(state) else {
            return Err(Error::malformed(
                format!("datetime state is a {}, not 10 bytes", self.arena.get(state).kind()),
                at,
            ));
        };
        let d = datetime_from_state(b).ok_or_else(|| Error::malformed("invalid datetime state", at))?;
        Ok(self.arena.add(Node::Leaf(Value::DateTime(d)), at))
    }
}

/// Decodes `datetime.datetime`'s pickled state: year (2 bytes, big-endian), month (high
/// bit: `fold`), day, hour, minute, second, microsecond (3 bytes, big-endian).
fn datetime_from_state(b: &[u8]) -> Option<DateTime> {
    let &[y0, y1, month, day, hour, minute, second, u0, u1, u2] = b else {
        return None;
    };
    let d = DateTime {
        year: u16::from_be_bytes([y0, y1]),
        month: month & 0x7F,
        day,
        hour,
        minute,
        second,
        microsecond: u32::from_be_bytes([0, u0, u1, u2]),
    };
    let valid = (1..=9999).contains(&d.year)
        && (1..=12).contains(&d.month)
        && (1..=31).contains(&d.day)
        && d.hour < 24
        && d.minute < 60
        && d.second < 60
        && d.microsecond < 1_000_000;
    valid.then_some(d)
}

/// `LONG1`/`LONG4`: little-endian two's complement.
fn long_from_le(bytes: &[u8]) -> Value {
    let big = BigInt::from_signed_bytes_le(bytes);
    match i64::try_from(&big) {
        Ok(i) => Value::Int(i),
        Err(_) => Value::BigInt(big),
    }
}

fn stack_underflow(at: usize) -> Error {
    Error::malformed("stack underflow (opcode needs more values)", at)
}

/// The protocol that introduced `op`, for pickles without `PROTO`.
fn opcode_protocol(op: u8) -> u8 {
    match op {
        b'J' | b'K' | b'M' | b'G' | b'T' | b'U' | b'X' | b'}' | b']' | b')' | b'e' | b'u' | b'1' | b'h' | b'j'
        | b'q' | b'r' | b'o' | b'Q' => 1,
        0x80..=0x8b => 2,
        b'B' | b'C' => 3,
        0x8c..=0x95 => 4,
        0x96..=0x98 => 5,
        _ => 0,
    }
}
