//! A pickle reader that executes no code.
//!
//! It understands the opcodes `torch.save` emits (protocols 2–5) and builds a
//! plain value tree. Calls (`REDUCE`, `NEWOBJ`) are evaluated only for an
//! explicit allow-list of globals — tensor and storage rebuilders, ordered
//! dicts, byte decoding; any other global is refused with its name, before
//! anything it names could matter.

use crate::tensor::TensorDtype;

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

/// A storage record from a persistent id: `data/<key>` in the zip archive.
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
    List(Vec<Value>),
    Tuple(Vec<Value>),
    /// Insertion-ordered (dict and OrderedDict alike).
    Dict(Vec<(Value, Value)>),
    /// An allow-listed callable or class, waiting for its arguments.
    Global(AllowedGlobal),
    Storage(StorageRef),
    Tensor(TensorRef),
    /// Internal: the MARK opcode's place on the stack.
    Mark,
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
    RebuildParameter,
    RebuildFromTypeV2,
    /// `torch.FloatStorage` and friends: only a dtype tag in persistent ids.
    StorageType(TensorDtype),
    /// `torch.nn.parameter.Parameter` and `torch.Tensor`, as types passed to
    /// `_rebuild_from_type_v2`.
    TensorType,
    CodecsEncode,
}

fn allowed_global(module: &str, name: &str) -> Option<AllowedGlobal> {
    use AllowedGlobal::*;
    Some(match (module, name) {
        ("collections", "OrderedDict") => OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2") => RebuildTensorV2,
        ("torch._utils", "_rebuild_parameter") => RebuildParameter,
        ("torch._tensor", "_rebuild_from_type_v2") => RebuildFromTypeV2,
        ("torch.nn.parameter", "Parameter") | ("torch", "Tensor") => TensorType,
        ("_codecs", "encode") => CodecsEncode,
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

struct Machine<'a> {
    bytes: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    memo: std::collections::HashMap<u32, Value>,
}

type Res<T> = Result<T, String>;

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

    fn pop(&mut self) -> Res<Value> {
        self.stack
            .pop()
            .ok_or_else(|| "pickle stack underflow".to_string())
    }

    /// Everything above the topmost MARK, which is removed.
    fn pop_mark(&mut self) -> Res<Vec<Value>> {
        let mark = self
            .stack
            .iter()
            .rposition(|v| matches!(v, Value::Mark))
            .ok_or("pickle MARK missing")?;
        let items = self.stack.split_off(mark + 1);
        self.stack.pop();
        Ok(items)
    }

    fn top_mut(&mut self) -> Res<&mut Value> {
        self.stack
            .last_mut()
            .ok_or_else(|| "pickle stack underflow".to_string())
    }

    fn string(&mut self, len_bytes: usize) -> Res<String> {
        let len = self.uint(len_bytes)? as usize;
        String::from_utf8(self.take(len)?.to_vec())
            .map_err(|_| "non-UTF-8 string in pickle".to_string())
    }

    fn push_bytes(&mut self, len_bytes: usize) -> Res<()> {
        let len = self.uint(len_bytes)? as usize;
        let b = self.take(len)?.to_vec();
        self.stack.push(Value::Bytes(b));
        Ok(())
    }

    fn set_items(&mut self, items: Vec<Value>) -> Res<()> {
        if !items.len().is_multiple_of(2) {
            return Err("odd number of items for SETITEMS".into());
        }
        let Value::Dict(dict) = self.top_mut()? else {
            return Err("SETITEM(S) on a non-dict".into());
        };
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            dict.push((k, v));
        }
        Ok(())
    }

    fn append(&mut self, items: Vec<Value>) -> Res<()> {
        let Value::List(list) = self.top_mut()? else {
            return Err("APPEND(S) on a non-list".into());
        };
        list.extend(items);
        Ok(())
    }

    fn global(&mut self, module: &str, name: &str) -> Res<()> {
        let g = allowed_global(module, name)
            .ok_or_else(|| format!("refused pickle global {module}.{name}"))?;
        self.stack.push(Value::Global(g));
        Ok(())
    }

    fn run(&mut self) -> Res<Value> {
        loop {
            let op = self.take(1)?[0];
            match op {
                0x80 => drop(self.take(1)?),                       // PROTO
                0x95 => drop(self.take(8)?),                       // FRAME
                b'.' => return self.pop(),                         // STOP
                b'(' => self.stack.push(Value::Mark),              // MARK
                b'N' => self.stack.push(Value::None),              // NONE
                0x88 => self.stack.push(Value::Bool(true)),        // NEWTRUE
                0x89 => self.stack.push(Value::Bool(false)),       // NEWFALSE
                b'}' => self.stack.push(Value::Dict(Vec::new())),  // EMPTY_DICT
                b']' => self.stack.push(Value::List(Vec::new())),  // EMPTY_LIST
                b')' => self.stack.push(Value::Tuple(Vec::new())), // EMPTY_TUPLE
                b'J' => {
                    let v = self.uint(4)? as u32 as i32;
                    self.stack.push(Value::Int(v.into()));
                }
                b'K' => {
                    let v = self.uint(1)?;
                    self.stack.push(Value::Int(v as i64));
                }
                b'M' => {
                    let v = self.uint(2)?;
                    self.stack.push(Value::Int(v as i64));
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
                    self.stack.push(Value::Int(v));
                }
                b'G' => {
                    let b: [u8; 8] = self.take(8)?.try_into().expect("8 bytes");
                    self.stack.push(Value::Float(f64::from_be_bytes(b)));
                }
                b'X' => {
                    let s = self.string(4)?;
                    self.stack.push(Value::Str(s));
                }
                0x8c => {
                    let s = self.string(1)?;
                    self.stack.push(Value::Str(s));
                }
                0x8d => {
                    let s = self.string(8)?;
                    self.stack.push(Value::Str(s));
                }
                b'U' => self.push_bytes(1)?, // SHORT_BINSTRING
                b'T' => self.push_bytes(4)?, // BINSTRING
                b'C' => self.push_bytes(1)?, // SHORT_BINBYTES
                b'B' => self.push_bytes(4)?, // BINBYTES
                0x8e => self.push_bytes(8)?, // BINBYTES8
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err("pickle stack underflow".into());
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.stack.push(Value::Tuple(items));
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::List(items));
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Dict(Vec::new()));
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
                b'q' | b'r' | 0x94 => {
                    let id = match op {
                        b'q' => self.uint(1)? as u32,
                        b'r' => self.uint(4)? as u32,
                        _ => self.memo.len() as u32,
                    };
                    let top = self
                        .stack
                        .last()
                        .ok_or("memoize on an empty stack")?
                        .clone();
                    self.memo.insert(id, top);
                }
                b'h' | b'j' => {
                    let id = if op == b'h' {
                        self.uint(1)?
                    } else {
                        self.uint(4)?
                    } as u32;
                    let v = self
                        .memo
                        .get(&id)
                        .cloned()
                        .ok_or_else(|| format!("pickle memo {id} missing"))?;
                    self.stack.push(v);
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global(&module, &name)?;
                }
                0x93 => {
                    let (Value::Str(name), Value::Str(module)) = (self.pop()?, self.pop()?) else {
                        return Err("STACK_GLOBAL needs two strings".into());
                    };
                    self.global(&module, &name)?;
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let storage = persistent_storage(pid)?;
                    self.stack.push(Value::Storage(storage));
                }
                b'R' | 0x81 => {
                    let Value::Tuple(args) = self.pop()? else {
                        return Err("call arguments are not a tuple".into());
                    };
                    let Value::Global(g) = self.pop()? else {
                        return Err("call of a non-global".into());
                    };
                    let result = call(g, args)?;
                    self.stack.push(result);
                }
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
    }
}

/// `('storage', storage_type, key, location, numel)`.
fn persistent_storage(pid: Value) -> Res<StorageRef> {
    let Value::Tuple(items) = pid else {
        return Err("persistent id is not a tuple".into());
    };
    match items.as_slice() {
        [Value::Str(kind), Value::Global(AllowedGlobal::StorageType(dtype)), Value::Str(key), _, Value::Int(numel)]
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
        (g, args) => Err(format!(
            "unsupported call of {g:?} with {} arguments",
            args.len()
        )),
    }
}

/// Reads one pickle from `bytes`.
pub fn read_pickle(bytes: &[u8]) -> Result<Value, String> {
    let mut m = Machine {
        bytes,
        pos: 0,
        stack: Vec::new(),
        memo: Default::default(),
    };
    m.run()
}
