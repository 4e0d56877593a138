//! A pickle reader that executes no code.
//!
//! It understands the opcodes `torch.save` emits (protocols 2–5) and builds a
//! plain value tree. Calls (`REDUCE`, `NEWOBJ`) are evaluated only for an
//! explicit allow-list of globals — tensor and storage rebuilders, ordered
//! dicts, sizes, sets, byte decoding, and the configuration classes training
//! checkpoints keep (read as opaque names, see [`AllowedGlobal::Inert`]); any
//! other global is refused with its name, before anything it names could
//! matter.
//!
//! Hostile input is bounded: nesting deeper than [`MAX_DEPTH`] is an error
//! as soon as it is built, shared references that would expand the tree far
//! beyond the pickle's size are errors, and no walk over the machine's
//! objects recurses.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use crate::tensor::TensorDtype;

/// Deepest nesting of containers accepted. Checkpoints nest a handful of
/// levels; the bound keeps every recursive walk of the result safe.
pub const MAX_DEPTH: usize = 256;

/// Most opcodes run. Each makes at most one object (and memo entry) of a
/// few hundred bytes at most, so this bounds the machine's memory to some
/// hundreds of MB whatever the pickle holds; Whisper large's object tree
/// takes some tens of thousands of opcodes.
pub const MAX_OPS: usize = 1 << 20;

/// A view of a storage, as `torch._utils._rebuild_tensor_v2` describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorRef {
    pub storage: StorageRef,
    /// In elements.
    pub offset: usize,
    pub shape: Vec<usize>,
    /// In elements.
    pub stride: Vec<usize>,
}

/// A storage record from a persistent id: `data/<key>` in the zip archive,
/// or the storage written under `key` after a legacy file's pickles.
#[derive(Clone, Debug, PartialEq)]
pub struct StorageRef {
    pub key: String,
    pub dtype: TensorDtype,
    pub numel: usize,
}

/// What a pickle can hold once read.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    /// Lists, and sets in pickle order.
    List(Vec<Value>),
    /// Tuples and `torch.Size`.
    Tuple(Vec<Value>),
    /// Insertion-ordered (dict and OrderedDict alike).
    Dict(Vec<(Value, Value)>),
    /// An allow-listed callable or class that was not called.
    Global(AllowedGlobal),
    /// An instance of an inert configuration class (see
    /// [`AllowedGlobal::Inert`]), by class name; its state is not read.
    Opaque(String),
    Storage(StorageRef),
    Tensor(TensorRef),
}

impl Value {
    /// The value under a string key of a dict.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(items) => items
                .iter()
                .find(|(k, _)| matches!(k, Value::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

/// The globals a checkpoint may name.
#[derive(Clone, Debug, PartialEq)]
pub enum AllowedGlobal {
    OrderedDict,
    RebuildTensorV2,
    /// `_rebuild_parameter` and `_rebuild_parameter_with_state`: the tensor
    /// is all we keep of a parameter.
    RebuildParameter,
    RebuildFromTypeV2,
    /// `torch.FloatStorage` and friends: only a dtype tag in persistent ids.
    StorageType(TensorDtype),
    /// `torch.nn.parameter.Parameter` and `torch.Tensor`, as types passed to
    /// `_rebuild_from_type_v2`.
    TensorType,
    CodecsEncode,
    /// `torch.Size`, read as a tuple.
    Size,
    /// `set` and `frozenset`, read as lists.
    Set,
    /// `dict` and `collections.defaultdict`, read as dicts.
    DictType,
    /// `list`.
    ListType,
    /// Python 2's `long` (protocol 2 checkpoints), read as an integer.
    Long,
    /// Classes of the configuration objects that training checkpoints keep
    /// beside their weights (Lightning's hyper-parameters: omegaconf
    /// containers, pyannote's task descriptions, `typing.Any`, torch's
    /// version string). Their instances become [`Value::Opaque`]: nothing of
    /// theirs runs, and nothing a converter needs lives in them.
    Inert(String),
}

/// Modules whose classes are [`AllowedGlobal::Inert`].
const INERT_MODULES: [&str; 2] = ["omegaconf.", "pyannote.audio.core."];

fn allowed_global(module: &str, name: &str) -> Option<AllowedGlobal> {
    use AllowedGlobal::*;
    Some(match (module, name) {
        ("collections", "OrderedDict") => OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2") => RebuildTensorV2,
        ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
            RebuildParameter
        }
        ("torch._tensor", "_rebuild_from_type_v2") => RebuildFromTypeV2,
        ("torch.nn.parameter", "Parameter") | ("torch", "Tensor") => TensorType,
        ("_codecs", "encode") => CodecsEncode,
        ("torch", "Size") => Size,
        // Protocol 2 spells `builtins` the Python 2 way.
        ("builtins" | "__builtin__", "set" | "frozenset") => Set,
        ("builtins" | "__builtin__", "dict") | ("collections", "defaultdict") => DictType,
        ("builtins" | "__builtin__", "list") => ListType,
        ("__builtin__", "long") => Long,
        ("torch.torch_version", "TorchVersion") | ("typing", "Any") => {
            Inert(format!("{module}.{name}"))
        }
        (module, _) if INERT_MODULES.iter().any(|m| module.starts_with(m)) => {
            Inert(format!("{module}.{name}"))
        }
        ("torch", storage) => StorageType(match storage {
            "FloatStorage" => TensorDtype::F32,
            "HalfStorage" => TensorDtype::F16,
            "BFloat16Storage" => TensorDtype::BF16,
            "DoubleStorage" => TensorDtype::F64,
            "LongStorage" => TensorDtype::I64,
            "IntStorage" => TensorDtype::I32,
            "ShortStorage" => TensorDtype::I16,
            "CharStorage" => TensorDtype::I8,
            "ByteStorage" => TensorDtype::U8,
            "BoolStorage" => TensorDtype::Bool,
            _ => return None,
        }),
        _ => return None,
    })
}

type Res<T> = Result<T, String>;

/// An object on the machine's stack or in its memo.
#[derive(Clone)]
enum Obj {
    /// Immutable once built.
    Value(Value),
    /// Containers are shared: the memo holds objects by identity, so a dict
    /// memoized while empty must show the items added to it afterwards.
    Node(Rc<Node>),
    Mark,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    List,
    Tuple,
    Dict,
}

/// A container; a dict keeps its items flat: key, value, key, value, ...
struct Node {
    kind: Kind,
    items: RefCell<Vec<Obj>>,
    /// Levels of containers below this one: 0 when it holds none.
    height: Cell<usize>,
    /// Set once this container is an item of another. It then takes no
    /// more items (a pickler fills each container before placing it), so
    /// every height stays exact and nesting is bounded while parsing.
    placed: Cell<bool>,
}

impl Node {
    /// Adds `items`, refusing a container that is already placed or one
    /// that would nest deeper than [`MAX_DEPTH`].
    fn add(&self, items: Vec<Obj>) -> Res<()> {
        if self.placed.get() {
            return Err(format!(
                "pickle adds to a container already inside another, which could nest deeper than {MAX_DEPTH} levels unseen"
            ));
        }
        for item in &items {
            if let Obj::Node(child) = item {
                child.placed.set(true);
                let height = child.height.get() + 1;
                if height > MAX_DEPTH {
                    return Err(too_deep());
                }
                self.height.set(self.height.get().max(height));
            }
        }
        self.items.borrow_mut().extend(items);
        Ok(())
    }
}

fn too_deep() -> String {
    format!("pickle nests deeper than {MAX_DEPTH} levels (or holds a cycle)")
}

impl Obj {
    fn empty(kind: Kind) -> Rc<Node> {
        Rc::new(Node {
            kind,
            items: RefCell::new(Vec::new()),
            height: Cell::new(0),
            placed: Cell::new(false),
        })
    }

    fn node(kind: Kind, items: Vec<Obj>) -> Res<Obj> {
        let node = Obj::empty(kind);
        node.add(items)?;
        Ok(Obj::Node(node))
    }

    /// A call's result: containers become nodes so that SETITEMS can fill
    /// the dict an `OrderedDict()` call returns.
    fn from_value(v: Value) -> Res<Obj> {
        let leaves = |items: Vec<Value>| items.into_iter().map(Obj::Value).collect();
        match v {
            Value::List(items) => Obj::node(Kind::List, leaves(items)),
            Value::Tuple(items) => Obj::node(Kind::Tuple, leaves(items)),
            Value::Dict(pairs) => Obj::node(
                Kind::Dict,
                pairs
                    .into_iter()
                    .flat_map(|(k, v)| [Obj::Value(k), Obj::Value(v)])
                    .collect(),
            ),
            other => Ok(Obj::Value(other)),
        }
    }
}

impl Drop for Node {
    /// Frees nested containers with a work list instead of recursion, so a
    /// hostile chain of a million nested lists cannot overflow the stack.
    fn drop(&mut self) {
        let mut pending = std::mem::take(self.items.get_mut());
        while let Some(obj) = pending.pop() {
            if let Obj::Node(rc) = obj {
                if let Ok(mut node) = Rc::try_unwrap(rc) {
                    pending.append(node.items.get_mut());
                }
            }
        }
    }
}

struct Machine<'a> {
    bytes: &'a [u8],
    pos: usize,
    stack: Vec<Obj>,
    memo: HashMap<u32, Obj>,
    /// Values that may still be produced when turning objects into the
    /// result tree; shared references are copied, so this stops a pickle
    /// of a few bytes from expanding exponentially.
    budget: usize,
}

impl Drop for Machine<'_> {
    /// Empties every reachable container, so reference cycles (a list
    /// appended to itself) are freed too.
    fn drop(&mut self) {
        let mut pending: Vec<Obj> = self.stack.drain(..).collect();
        pending.extend(self.memo.drain().map(|(_, obj)| obj));
        while let Some(obj) = pending.pop() {
            if let Obj::Node(node) = obj {
                pending.append(&mut node.items.borrow_mut());
            }
        }
    }
}

impl<'a> Machine<'a> {
    fn take(&mut self, n: usize) -> Res<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or("truncated pickle")?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn uint(&mut self, n: usize) -> Res<u64> {
        let b = self.take(n)?;
        Ok(b.iter()
            .rev()
            .fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
    }

    fn line(&mut self) -> Res<String> {
        let rest = &self.bytes[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("truncated pickle (text line)")?;
        let text =
            String::from_utf8(rest[..end].to_vec()).map_err(|_| "non-UTF-8 text in pickle")?;
        self.pos += end + 1;
        Ok(text)
    }

    fn push(&mut self, v: Value) {
        self.stack.push(Obj::Value(v));
    }

    fn pop(&mut self) -> Res<Obj> {
        self.stack
            .pop()
            .ok_or_else(|| "pickle stack underflow".to_string())
    }

    /// Pops an object and turns it into a value.
    fn pop_value(&mut self) -> Res<Value> {
        let obj = self.pop()?;
        self.freeze(&obj, 0)
    }

    /// Everything above the topmost MARK, which is removed.
    fn pop_mark(&mut self) -> Res<Vec<Obj>> {
        let mark = self
            .stack
            .iter()
            .rposition(|v| matches!(v, Obj::Mark))
            .ok_or("pickle MARK missing")?;
        let items = self.stack.split_off(mark + 1);
        self.stack.pop();
        Ok(items)
    }

    /// The container on top of the stack, which must be of `kind`.
    fn top_node(&self, kind: Kind, op: &str) -> Res<Rc<Node>> {
        match self.stack.last() {
            Some(Obj::Node(node)) if node.kind == kind => Ok(node.clone()),
            Some(_) => Err(format!("{op} on the wrong kind of object")),
            None => Err("pickle stack underflow".into()),
        }
    }

    fn string(&mut self, len_bytes: usize) -> Res<String> {
        let len = self.uint(len_bytes)? as usize;
        String::from_utf8(self.take(len)?.to_vec())
            .map_err(|_| "non-UTF-8 string in pickle".to_string())
    }

    fn push_bytes(&mut self, len_bytes: usize) -> Res<()> {
        let len = self.uint(len_bytes)? as usize;
        let b = self.take(len)?.to_vec();
        self.push(Value::Bytes(b));
        Ok(())
    }

    fn set_items(&mut self, items: Vec<Obj>) -> Res<()> {
        if !items.len().is_multiple_of(2) {
            return Err("odd number of items for SETITEMS".into());
        }
        self.top_node(Kind::Dict, "SETITEM(S)")?.add(items)
    }

    fn append(&mut self, items: Vec<Obj>) -> Res<()> {
        self.top_node(Kind::List, "APPEND(S)")?.add(items)
    }

    fn global(&mut self, module: &str, name: &str) -> Res<()> {
        let g = allowed_global(module, name)
            .ok_or_else(|| format!("refused pickle global {module}.{name}"))?;
        self.push(Value::Global(g));
        Ok(())
    }

    /// The value tree of `obj`, bounded in depth and in total size.
    fn freeze(&mut self, obj: &Obj, depth: usize) -> Res<Value> {
        if depth > MAX_DEPTH {
            return Err(too_deep());
        }
        self.budget = self
            .budget
            .checked_sub(1)
            .ok_or("pickle expands to far more values than its size allows (shared references)")?;
        let node = match obj {
            Obj::Value(v) => return Ok(v.clone()),
            Obj::Mark => return Err("pickle MARK inside a value".into()),
            Obj::Node(node) => node.clone(),
        };
        let items = node
            .items
            .borrow()
            .iter()
            .map(|item| self.freeze(item, depth + 1))
            .collect::<Res<Vec<_>>>()?;
        Ok(match node.kind {
            Kind::List => Value::List(items),
            Kind::Tuple => Value::Tuple(items),
            Kind::Dict => {
                let mut it = items.into_iter();
                let mut pairs = Vec::new();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    pairs.push((k, v));
                }
                Value::Dict(pairs)
            }
        })
    }

    fn memo_put(&mut self, id: u32) -> Res<()> {
        let top = self
            .stack
            .last()
            .ok_or("memoize on an empty stack")?
            .clone();
        self.memo.insert(id, top);
        Ok(())
    }

    fn memo_get(&mut self, id: u32) -> Res<()> {
        let obj = self
            .memo
            .get(&id)
            .cloned()
            .ok_or_else(|| format!("pickle memo {id} missing"))?;
        self.stack.push(obj);
        Ok(())
    }

    /// REDUCE and NEWOBJ: an allow-listed global applied to a tuple.
    fn call(&mut self) -> Res<()> {
        let Value::Tuple(args) = self.pop_value()? else {
            return Err("call arguments are not a tuple".into());
        };
        let Obj::Value(Value::Global(g)) = self.pop()? else {
            return Err("call of a non-global".into());
        };
        let result = call(g, args)?;
        self.stack.push(Obj::from_value(result)?);
        Ok(())
    }

    fn run(&mut self) -> Res<Value> {
        for _ in 0..MAX_OPS {
            let op = self.take(1)?[0];
            match op {
                0x80 => drop(self.take(1)?),                                 // PROTO
                0x95 => drop(self.take(8)?),                                 // FRAME
                b'.' => return self.pop_value(),                             // STOP
                b'(' => self.stack.push(Obj::Mark),                          // MARK
                b'0' => drop(self.pop()?),                                   // POP
                b'1' => drop(self.pop_mark()?),                              // POP_MARK
                b'N' => self.push(Value::None),                              // NONE
                0x88 => self.push(Value::Bool(true)),                        // NEWTRUE
                0x89 => self.push(Value::Bool(false)),                       // NEWFALSE
                b'}' => self.stack.push(Obj::Node(Obj::empty(Kind::Dict))),  // EMPTY_DICT
                b']' => self.stack.push(Obj::Node(Obj::empty(Kind::List))),  // EMPTY_LIST
                b')' => self.stack.push(Obj::Node(Obj::empty(Kind::Tuple))), // EMPTY_TUPLE
                b'2' => {
                    // DUP
                    let top = self.stack.last().ok_or("pickle stack underflow")?.clone();
                    self.stack.push(top);
                }
                b'J' => {
                    let v = self.uint(4)? as u32 as i32;
                    self.push(Value::Int(v.into()));
                }
                b'K' => {
                    let v = self.uint(1)?;
                    self.push(Value::Int(v as i64));
                }
                b'M' => {
                    let v = self.uint(2)?;
                    self.push(Value::Int(v as i64));
                }
                0x8a => {
                    // LONG1: little-endian two's complement of n bytes.
                    let n = self.uint(1)? as usize;
                    if n > 8 {
                        return Err(format!("integer of {n} bytes is too large"));
                    }
                    let raw = self.uint(n)?;
                    let shift = 64 - 8 * n as u32;
                    let v = if n == 0 {
                        0
                    } else {
                        ((raw << shift) as i64) >> shift
                    };
                    self.push(Value::Int(v));
                }
                b'G' => {
                    let b: [u8; 8] = self.take(8)?.try_into().expect("8 bytes");
                    self.push(Value::Float(f64::from_be_bytes(b)));
                }
                b'X' => {
                    let s = self.string(4)?;
                    self.push(Value::Str(s));
                }
                0x8c => {
                    let s = self.string(1)?;
                    self.push(Value::Str(s));
                }
                0x8d => {
                    let s = self.string(8)?;
                    self.push(Value::Str(s));
                }
                b'U' => self.push_bytes(1)?, // SHORT_BINSTRING
                b'T' => self.push_bytes(4)?, // BINSTRING
                b'C' => self.push_bytes(1)?, // SHORT_BINBYTES
                b'B' => self.push_bytes(4)?, // BINBYTES
                0x8e => self.push_bytes(8)?, // BINBYTES8
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Obj::node(Kind::Tuple, items)?);
                }
                0x85..=0x87 => {
                    // TUPLE1..TUPLE3
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err("pickle stack underflow".into());
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    if items.iter().any(|o| matches!(o, Obj::Mark)) {
                        return Err("pickle MARK inside a tuple".into());
                    }
                    self.stack.push(Obj::node(Kind::Tuple, items)?);
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Obj::node(Kind::List, items)?);
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Obj::Node(Obj::empty(Kind::Dict)));
                    self.set_items(items)?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?;
                }
                b'a' => {
                    let v = self.pop()?;
                    self.append(vec![v])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.append(items)?;
                }
                b'q' => {
                    let id = self.uint(1)? as u32;
                    self.memo_put(id)?;
                }
                b'r' => {
                    let id = self.uint(4)? as u32;
                    self.memo_put(id)?;
                }
                0x94 => {
                    // MEMOIZE: the next free index.
                    let id = u32::try_from(self.memo.len()).map_err(|_| "pickle memo is full")?;
                    self.memo_put(id)?;
                }
                b'h' => {
                    let id = self.uint(1)? as u32;
                    self.memo_get(id)?;
                }
                b'j' => {
                    let id = self.uint(4)? as u32;
                    self.memo_get(id)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global(&module, &name)?;
                }
                0x93 => {
                    let (Value::Str(name), Value::Str(module)) =
                        (self.pop_value()?, self.pop_value()?)
                    else {
                        return Err("STACK_GLOBAL needs two strings".into());
                    };
                    self.global(&module, &name)?;
                }
                b'Q' => {
                    let pid = self.pop_value()?;
                    let storage = persistent_storage(pid)?;
                    self.push(Value::Storage(storage));
                }
                b'R' | 0x81 => self.call()?, // REDUCE, NEWOBJ
                b'b' => {
                    // BUILD sets object state; plain dicts and tensors keep none we need.
                    self.pop()?;
                }
                other => {
                    return Err(format!(
                        "unsupported pickle opcode 0x{other:02x} at byte {}",
                        self.pos - 1
                    ))
                }
            }
        }
        Err(format!(
            "pickle runs more than {MAX_OPS} operations, far more than a checkpoint's object tree needs"
        ))
    }
}

/// `('storage', storage_type, key, location, numel)`, and in legacy
/// (non-zip) files the same with a sixth entry, `None` unless the storage
/// is a view of another (which torch stopped writing long ago).
fn persistent_storage(pid: Value) -> Res<StorageRef> {
    let Value::Tuple(items) = pid else {
        return Err("persistent id is not a tuple".into());
    };
    match items.as_slice() {
        [Value::Str(kind), Value::Global(AllowedGlobal::StorageType(dtype)), Value::Str(key), _, Value::Int(numel)]
        | [Value::Str(kind), Value::Global(AllowedGlobal::StorageType(dtype)), Value::Str(key), _, Value::Int(numel), Value::None]
            if kind == "storage" =>
        {
            Ok(StorageRef {
                key: key.clone(),
                dtype: *dtype,
                numel: usize::try_from(*numel).map_err(|_| "negative storage size")?,
            })
        }
        _ => Err(format!("unsupported persistent id {items:?}")),
    }
}

fn usizes(v: &Value, what: &str) -> Res<Vec<usize>> {
    match v {
        Value::Tuple(items) | Value::List(items) => items
            .iter()
            .map(|i| match i {
                Value::Int(n) if *n >= 0 => Ok(*n as usize),
                _ => Err(format!("{what} holds a non-size value {i:?}")),
            })
            .collect(),
        _ => Err(format!("{what} is not a tuple")),
    }
}

fn is_scalar(v: &Value) -> bool {
    matches!(
        v,
        Value::None
            | Value::Bool(_)
            | Value::Int(_)
            | Value::Float(_)
            | Value::Str(_)
            | Value::Bytes(_)
    )
}

/// Evaluates an allow-listed call.
fn call(g: AllowedGlobal, args: Vec<Value>) -> Res<Value> {
    match (g, args.as_slice()) {
        (AllowedGlobal::OrderedDict, []) => Ok(Value::Dict(Vec::new())),
        (
            AllowedGlobal::RebuildTensorV2,
            [Value::Storage(storage), Value::Int(offset), size, stride, ..],
        ) => {
            let shape = usizes(size, "tensor size")?;
            let stride = usizes(stride, "tensor stride")?;
            if shape.len() != stride.len() {
                return Err(format!(
                    "tensor size {shape:?} and stride {stride:?} differ in rank"
                ));
            }
            let offset = usize::try_from(*offset).map_err(|_| "negative storage offset")?;
            Ok(Value::Tensor(TensorRef {
                storage: storage.clone(),
                offset,
                shape,
                stride,
            }))
        }
        (AllowedGlobal::RebuildParameter, [tensor @ Value::Tensor(_), ..]) => Ok(tensor.clone()),
        (
            AllowedGlobal::RebuildFromTypeV2,
            [Value::Global(inner), Value::Global(AllowedGlobal::TensorType), Value::Tuple(inner_args), ..],
        ) => call(inner.clone(), inner_args.clone()),
        (AllowedGlobal::CodecsEncode, [Value::Str(s), Value::Str(encoding)])
            if encoding == "latin1" =>
        {
            // Protocol 2 stores bytes as latin-1 text: each char is one byte.
            s.chars()
                .map(|c| u8::try_from(u32::from(c)).map_err(|_| "non-latin-1 char".to_string()))
                .collect::<Res<_>>()
                .map(Value::Bytes)
        }
        // Results hold scalars only, so no call can deepen the tree unseen.
        (AllowedGlobal::Size, [Value::Tuple(dims) | Value::List(dims)])
            if dims.iter().all(|d| matches!(d, Value::Int(_))) =>
        {
            Ok(Value::Tuple(dims.clone()))
        }
        (AllowedGlobal::Inert(class), _) => Ok(Value::Opaque(class)),
        // A defaultdict's one argument is its factory, not content.
        (AllowedGlobal::DictType, [] | [Value::Global(_)]) => Ok(Value::Dict(Vec::new())),
        (AllowedGlobal::ListType, []) => Ok(Value::List(Vec::new())),
        (AllowedGlobal::ListType, [Value::List(items) | Value::Tuple(items)]) => {
            Ok(Value::List(items.clone()))
        }
        (AllowedGlobal::Long, []) => Ok(Value::Int(0)),
        (AllowedGlobal::Long, [Value::Int(v)]) => Ok(Value::Int(*v)),
        (AllowedGlobal::Set, []) => Ok(Value::List(Vec::new())),
        (AllowedGlobal::Set, [Value::List(items) | Value::Tuple(items)])
            if items.iter().all(is_scalar) =>
        {
            Ok(Value::List(items.clone()))
        }
        (g, args) => Err(format!(
            "unsupported call of {g:?} with {} arguments",
            args.len()
        )),
    }
}

/// Reads one pickle from `bytes`.
pub fn read_pickle(bytes: &[u8]) -> Result<Value, String> {
    read_pickle_prefix(bytes).map(|(value, _)| value)
}

/// Reads the pickle at the start of `bytes` and says how many bytes it
/// took: a legacy torch file is several pickles in a row, then its storages.
pub fn read_pickle_prefix(bytes: &[u8]) -> Result<(Value, usize), String> {
    let mut m = Machine {
        bytes,
        pos: 0,
        stack: Vec::new(),
        memo: HashMap::new(),
        budget: bytes.len().saturating_mul(4).saturating_add(4096),
    };
    let value = m.run()?;
    Ok((value, m.pos))
}
