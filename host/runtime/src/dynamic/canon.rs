//! Calls whose parameters are lowered straight from the JSON mapping's [`Arg`]s and whose result
//! is lifted straight into JSON, so a `list<u8>` crosses as one copy of its bytes.
//!
//! wasmtime's dynamic calls take and return [`wasmtime::component::Val`]s, which hold a
//! `list<u8>` as one `Val` per byte: 24 bytes of host memory for each byte, and the hostcall
//! fuel that bounds what a call may hand the host (128 MiB) runs out at about 4 MB. Here an
//! [`Arg::Bytes`] buffer is copied into the guest by wasmtime's own `[u8]` lowering (one
//! `memcpy`), and a returned `list<u8>` is base64-encoded from the guest's memory directly.
//!
//! The calls are wasmtime typed calls ([`wasmtime::component::TypedFunc`]) with parameter and
//! result types whose shape is only known at run time:
//! - [`FlatArgs`]: parameters that flatten to at most 16 core values, written into a buffer of 16
//!   (the core function reads as many as it takes);
//! - [`HeapArgs`]: longer parameter lists, stored in a block the guest allocates (`realloc`) with
//!   the parameters' real size and alignment and passed as one pointer, as the canonical ABI says;
//! - [`Returned`]: no result (`R = 0`), a result that flattens to at most one core value
//!   (`R = 1`), or a larger one the callee returns through a pointer (`R = 2`).
//!
//! Each `typecheck` checks the callee's real types against that shape (and refuses resources,
//! futures, streams and types nested deeper than [`MAX_DEPTH`]), so a mismatch is an error before
//! anything runs. Every read of guest memory is bounds-checked, and lifting charges the call's
//! hostcall fuel per value produced, as wasmtime's own lifting does.

use std::collections::HashSet;
use std::mem::MaybeUninit;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Number, Value};
use wasmtime::component::__internal::{
    CanonicalAbiInfo, ComponentTypes, InstanceType, InterfaceType, LiftContext, LowerContext,
};
use wasmtime::component::{ComponentNamedList, ComponentType, Func, Lift, Lower, Type};
use wasmtime::{Result, ValRaw, bail, format_err};

use super::{Arg, f32_json};

/// The canonical ABI passes at most this many flat parameters; more go through memory.
const MAX_FLAT_PARAMS: usize = 16;

/// Types nested deeper than this are refused (every walk here recurses once per level).
pub(super) const MAX_DEPTH: usize = 100;

/// How an operation's parameters and result cross, fixed when the operation is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Shape {
    heap_params: bool,
    result: Returns,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Returns {
    Nothing,
    Flat,
    Memory,
}

impl Shape {
    /// The shape of a function with these parameter and result types.
    pub(super) fn of(params: &[(String, Type)], result: Option<&Type>) -> Shape {
        let flat = params.iter().map(|(_, t)| flat_count(t)).fold(0, usize::saturating_add);
        let result = match result.map(flat_count) {
            None => Returns::Nothing,
            Some(0 | 1) => Returns::Flat,
            Some(_) => Returns::Memory,
        };
        Shape { heap_params: flat > MAX_FLAT_PARAMS, result }
    }
}

/// How many core values `ty` flattens to (saturating; the typecheck confirms it).
fn flat_count(ty: &Type) -> usize {
    let sum = |it: &mut dyn Iterator<Item = usize>| it.fold(0, usize::saturating_add);
    match ty {
        Type::String | Type::List(_) | Type::Map(_) => 2,
        Type::FixedLengthList(l) => flat_count(&l.ty()).saturating_mul(l.len() as usize),
        Type::Record(r) => sum(&mut r.fields().map(|f| flat_count(&f.ty))),
        Type::Tuple(t) => sum(&mut t.types().map(|t| flat_count(&t))),
        Type::Variant(v) => 1 + v.cases().map(|c| c.ty.as_ref().map_or(0, flat_count)).max().unwrap_or(0),
        Type::Option(o) => 1 + flat_count(&o.ty()),
        Type::Result(r) => 1 + r.ok().as_ref().map_or(0, flat_count).max(r.err().as_ref().map_or(0, flat_count)),
        Type::Flags(f) => f.names().len().div_ceil(32),
        _ => 1,
    }
}

/// Calls `func` with `args` in the given shape and returns its result as JSON (`null` when it
/// has none). In wasmtime 48 this also runs the export's post-return function.
pub(super) async fn call<S: Send + 'static>(
    store: &mut wasmtime::Store<S>,
    func: Func,
    shape: Shape,
    args: Vec<Arg>,
) -> Result<Value> {
    async fn typed<S, P, R>(store: &mut wasmtime::Store<S>, func: Func, params: P) -> Result<R>
    where
        S: Send + 'static,
        P: ComponentNamedList + Lower + Send + Sync + 'static,
        R: ComponentNamedList + Lift + Send + Sync + 'static,
    {
        let f = func.typed::<P, R>(&*store)?;
        f.call_async(&mut *store, params).await
    }
    Ok(match (shape.heap_params, shape.result) {
        (false, Returns::Nothing) => typed::<S, FlatArgs, Returned<0>>(store, func, FlatArgs(args)).await?.0,
        (false, Returns::Flat) => typed::<S, FlatArgs, Returned<1>>(store, func, FlatArgs(args)).await?.0,
        (false, Returns::Memory) => typed::<S, FlatArgs, Returned<2>>(store, func, FlatArgs(args)).await?.0,
        (true, Returns::Nothing) => typed::<S, HeapArgs, Returned<0>>(store, func, HeapArgs(args)).await?.0,
        (true, Returns::Flat) => typed::<S, HeapArgs, Returned<1>>(store, func, HeapArgs(args)).await?.0,
        (true, Returns::Memory) => typed::<S, HeapArgs, Returned<2>>(store, func, HeapArgs(args)).await?.0,
    })
}

/// Parameters that flatten to at most [`MAX_FLAT_PARAMS`] core values.
pub(super) struct FlatArgs(Vec<Arg>);

/// Parameters that flatten to more than [`MAX_FLAT_PARAMS`] core values: passed in memory.
pub(super) struct HeapArgs(Vec<Arg>);

/// A function's result as JSON; `R` is how many core values carry it (0, 1, or 2 for "through a
/// pointer": any number above [`wasmtime`]'s one flat result makes it read the result from memory).
pub(super) struct Returned<const R: usize>(Value);

/// Not used by the calls here (their size and alignment come from the callee's real types):
/// parameters are lowered flat or into a block allocated here, and a result read from memory is
/// located from the slice wasmtime hands over, which this empty size keeps in bounds.
const RUNTIME_SHAPED: CanonicalAbiInfo =
    CanonicalAbiInfo { size32: 0, align32: 1, size64: 0, align64: 1, flat_count: None };

// SAFETY: `Lower` is an array of `ValRaw`; `typecheck` admits only parameter lists that flatten
// to at most 16 values, all of which `linear_lower_to_flat` writes (the rest zero).
unsafe impl ComponentType for FlatArgs {
    type Lower = [ValRaw; MAX_FLAT_PARAMS];
    const ABI: CanonicalAbiInfo = RUNTIME_SHAPED;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> Result<()> {
        check_supported(types.types, *ty)?;
        if types.types.canonical_abi(ty).flat_count(MAX_FLAT_PARAMS).is_none() {
            bail!("the parameters flatten to more than {MAX_FLAT_PARAMS} values");
        }
        Ok(())
    }
}

// SAFETY: a marker for parameter lists; the type is only used as one.
unsafe impl ComponentNamedList for FlatArgs {}

// SAFETY: values are written as the canonical ABI lays them out for the callee's real types.
unsafe impl Lower for FlatArgs {
    fn linear_lower_to_flat<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        ty: InterfaceType,
        dst: &mut MaybeUninit<Self::Lower>,
    ) -> Result<()> {
        let types = cx.types;
        let params = tuple_types(types, ty)?;
        if params.len() != self.0.len() {
            bail!("expected {} arguments, got {}", params.len(), self.0.len());
        }
        let mut flat = Vec::with_capacity(MAX_FLAT_PARAMS);
        for (t, arg) in params.iter().zip(&self.0) {
            lower_flat(cx, *t, arg, &mut flat)?;
        }
        let mut out = [ValRaw::u64(0); MAX_FLAT_PARAMS];
        out.get_mut(..flat.len())
            .ok_or_else(|| format_err!("the parameters flatten to {} values", flat.len()))?
            .copy_from_slice(&flat);
        dst.write(out);
        Ok(())
    }

    fn linear_lower_to_memory<T>(&self, cx: &mut LowerContext<'_, T>, ty: InterfaceType, offset: usize) -> Result<()> {
        store_tuple(cx, ty, &self.0, offset)
    }
}

// SAFETY: `Lower` is one `ValRaw`, the pointer to the parameters in memory, which is what a core
// function whose parameters flatten to more than 16 values takes; `typecheck` admits only those.
unsafe impl ComponentType for HeapArgs {
    type Lower = [ValRaw; 1];
    const ABI: CanonicalAbiInfo = RUNTIME_SHAPED;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> Result<()> {
        check_supported(types.types, *ty)?;
        if types.types.canonical_abi(ty).flat_count(MAX_FLAT_PARAMS).is_some() {
            bail!("the parameters flatten to at most {MAX_FLAT_PARAMS} values");
        }
        Ok(())
    }
}

// SAFETY: a marker for parameter lists; the type is only used as one.
unsafe impl ComponentNamedList for HeapArgs {}

// SAFETY: the block is allocated with the parameters' real size and alignment and filled as the
// canonical ABI lays them out.
unsafe impl Lower for HeapArgs {
    fn linear_lower_to_flat<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        ty: InterfaceType,
        dst: &mut MaybeUninit<Self::Lower>,
    ) -> Result<()> {
        let abi = cx.types.canonical_abi(&ty);
        let (align, size) = (abi.align32, usize::try_from(abi.size32)?);
        let ptr = cx.realloc(0, 0, align, size)?;
        store_tuple(cx, ty, &self.0, ptr)?;
        // As wasmtime writes pointers: 64 bits, of which a 32-bit memory reads the low half.
        dst.write([ValRaw::i64(i64::try_from(ptr)?)]);
        Ok(())
    }

    fn linear_lower_to_memory<T>(&self, cx: &mut LowerContext<'_, T>, ty: InterfaceType, offset: usize) -> Result<()> {
        store_tuple(cx, ty, &self.0, offset)
    }
}

// SAFETY: `Lower` is an array of `ValRaw`. `typecheck` admits `R = 0` only for functions without
// result, `R = 1` only for a result of at most one flat value (so wasmtime lifts it from that
// value), and `R = 2` only for a result of more (so the callee returns a pointer and wasmtime
// hands over the memory there, whose real extent `linear_lift_from_memory` checks).
unsafe impl<const R: usize> ComponentType for Returned<R> {
    type Lower = [ValRaw; R];
    const ABI: CanonicalAbiInfo = RUNTIME_SHAPED;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> Result<()> {
        let results = tuple_types(types.types, *ty)?;
        let flat = |t: &InterfaceType| types.types.canonical_abi(t).flat_count(1);
        match (R, results) {
            (0, []) => Ok(()),
            (1, [t]) if flat(t).is_some() => check_supported(types.types, *t),
            (2, [t]) if flat(t).is_none() => check_supported(types.types, *t),
            _ => bail!("the result does not have the shape this call expects"),
        }
    }
}

// SAFETY: a marker for result lists; the type is only used as one.
unsafe impl<const R: usize> ComponentNamedList for Returned<R> {}

// SAFETY: values are read as the canonical ABI lays them out for the callee's real types, with
// every access to memory bounds-checked.
unsafe impl<const R: usize> Lift for Returned<R> {
    fn linear_lift_from_flat(cx: &mut LiftContext<'_>, ty: InterfaceType, src: &Self::Lower) -> Result<Self> {
        let types: &ComponentTypes = cx.types;
        match tuple_types(types, ty)? {
            [] => Ok(Returned(Value::Null)),
            [t] => lift_flat(cx, *t, &mut src.iter()).map(Returned),
            _ => bail!("a function has at most one result"),
        }
    }

    fn linear_lift_from_memory(cx: &mut LiftContext<'_>, ty: InterfaceType, bytes: &[u8]) -> Result<Self> {
        let types: &ComponentTypes = cx.types;
        let mem = cx.memory();
        // `bytes` starts where the returned pointer points (wasmtime checked it is in memory).
        let at = (bytes.as_ptr() as usize)
            .checked_sub(mem.as_ptr() as usize)
            .filter(|at| *at <= mem.len())
            .ok_or_else(|| format_err!("the result is outside the guest's memory"))?;
        let [t] = tuple_types(types, ty)? else {
            bail!("a result read from memory is one value");
        };
        let abi = types.canonical_abi(t);
        check_range(mem, at, usize::try_from(abi.size32)?, abi.align32, "result")?;
        lift_mem(cx, *t, at).map(Returned)
    }
}

fn tuple_types(types: &ComponentTypes, ty: InterfaceType) -> Result<&[InterfaceType]> {
    match ty {
        InterfaceType::Tuple(t) => Ok(&types[t].types),
        other => bail!("expected a tuple of parameters or results, found {other:?}"),
    }
}

/// Refuses what has no JSON form and types nested deeper than [`MAX_DEPTH`]. Each type is
/// visited once, however often it is reused.
fn check_supported(types: &ComponentTypes, ty: InterfaceType) -> Result<()> {
    fn walk(
        types: &ComponentTypes,
        ty: InterfaceType,
        depth: usize,
        seen: &mut HashSet<(InterfaceType, usize)>,
    ) -> Result<()> {
        if depth > MAX_DEPTH {
            bail!("types nested deeper than {MAX_DEPTH} levels are not supported");
        }
        // A type already seen at this depth or a shallower one has been checked for deeper uses.
        if !seen.insert((ty, depth)) {
            return Ok(());
        }
        let mut inner = |t: InterfaceType| walk(types, t, depth + 1, seen);
        match ty {
            InterfaceType::Own(_)
            | InterfaceType::Borrow(_)
            | InterfaceType::Future(_)
            | InterfaceType::Stream(_)
            | InterfaceType::ErrorContext(_) => {
                bail!("resources, futures, streams and error-contexts have no JSON form")
            }
            InterfaceType::Record(i) => types[i].fields.iter().try_for_each(|f| inner(f.ty)),
            InterfaceType::Tuple(i) => types[i].types.iter().try_for_each(|t| inner(*t)),
            InterfaceType::Variant(i) => types[i].cases.values().flatten().try_for_each(|t| inner(*t)),
            InterfaceType::List(i) => inner(types[i].element),
            InterfaceType::FixedLengthList(i) => inner(types[i].element),
            InterfaceType::Map(i) => inner(types[i].key).and_then(|()| inner(types[i].value)),
            InterfaceType::Option(i) => inner(types[i].ty),
            InterfaceType::Result(i) => types[i].ok.iter().chain(types[i].err.iter()).try_for_each(|t| inner(*t)),
            _ => Ok(()),
        }
    }
    // Seen (type, depth) pairs: each type is expanded at most once per depth, so a type reused
    // many times (a DAG of records) costs its size times the depth limit, not exponentially.
    walk(types, ty, 0, &mut HashSet::new())
}

fn check_range(mem: &[u8], at: usize, size: usize, align: u32, what: &str) -> Result<()> {
    if !at.is_multiple_of(usize::try_from(align.max(1))?) {
        bail!("{what} pointer {at} is not aligned to {align}");
    }
    match at.checked_add(size) {
        Some(end) if end <= mem.len() => Ok(()),
        _ => bail!("{what} of {size} bytes at {at} is out of bounds of memory"),
    }
}

fn field(mem: &[u8], at: usize, n: usize) -> Result<&[u8]> {
    at.checked_add(n).and_then(|end| mem.get(at..end)).ok_or_else(|| format_err!("read at {at} is out of bounds"))
}

fn read_u32(mem: &[u8], at: usize) -> Result<u32> {
    let b = field(mem, at, 4)?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn read_disc(mem: &[u8], at: usize, width: usize) -> Result<usize> {
    let b = field(mem, at, width)?;
    Ok(match width {
        1 => usize::from(b[0]),
        2 => usize::from(u16::from_le_bytes([b[0], b[1]])),
        _ => usize::try_from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))?,
    })
}

/// How many bytes a flags value of `n` flags takes in memory (one bit per flag, in whole
/// 8-, 16- or 32-bit units).
fn flags_bytes(n: usize) -> usize {
    match n {
        0 => 0,
        1..=8 => 1,
        9..=16 => 2,
        _ => 4 * n.div_ceil(32),
    }
}

fn object1(key: &str, value: Value) -> Value {
    let mut m = Map::with_capacity(1);
    m.insert(key.to_string(), value);
    Value::Object(m)
}

fn f64_json(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// Charges the call's hostcall fuel for `n` JSON values about to be produced.
fn charge(cx: &mut LiftContext<'_>, n: usize) -> Result<()> {
    cx.consume_fuel_array(n, size_of::<Value>())
}

/// Reads a value of type `ty` stored at `at` in the guest's memory, as JSON.
fn lift_mem(cx: &mut LiftContext<'_>, ty: InterfaceType, at: usize) -> Result<Value> {
    let types: &ComponentTypes = cx.types;
    let mem = cx.memory();
    Ok(match ty {
        InterfaceType::Bool => Value::Bool(bool::linear_lift_from_memory(cx, ty, field(mem, at, 1)?)?),
        InterfaceType::S8 => i8::linear_lift_from_memory(cx, ty, field(mem, at, 1)?)?.into(),
        InterfaceType::U8 => u8::linear_lift_from_memory(cx, ty, field(mem, at, 1)?)?.into(),
        InterfaceType::S16 => i16::linear_lift_from_memory(cx, ty, field(mem, at, 2)?)?.into(),
        InterfaceType::U16 => u16::linear_lift_from_memory(cx, ty, field(mem, at, 2)?)?.into(),
        InterfaceType::S32 => i32::linear_lift_from_memory(cx, ty, field(mem, at, 4)?)?.into(),
        InterfaceType::U32 => u32::linear_lift_from_memory(cx, ty, field(mem, at, 4)?)?.into(),
        InterfaceType::S64 => i64::linear_lift_from_memory(cx, ty, field(mem, at, 8)?)?.into(),
        InterfaceType::U64 => u64::linear_lift_from_memory(cx, ty, field(mem, at, 8)?)?.into(),
        InterfaceType::Float32 => f32_json(f32::linear_lift_from_memory(cx, ty, field(mem, at, 4)?)?),
        InterfaceType::Float64 => f64_json(f64::linear_lift_from_memory(cx, ty, field(mem, at, 8)?)?),
        InterfaceType::Char => Value::String(char::linear_lift_from_memory(cx, ty, field(mem, at, 4)?)?.to_string()),
        InterfaceType::String => Value::String(String::linear_lift_from_memory(cx, ty, field(mem, at, 8)?)?),
        InterfaceType::List(i) => {
            let (ptr, len) = (read_u32(mem, at)?, read_u32(mem, at + 4)?);
            lift_list(cx, types[i].element, usize::try_from(ptr)?, usize::try_from(len)?)?
        }
        InterfaceType::Map(i) => {
            let (ptr, len) = (read_u32(mem, at)?, read_u32(mem, at + 4)?);
            lift_map(cx, types, i, usize::try_from(ptr)?, usize::try_from(len)?)?
        }
        InterfaceType::FixedLengthList(i) => {
            let (elem, n) = (types[i].element, usize::try_from(types[i].size)?);
            let size = usize::try_from(types.canonical_abi(&elem).size32)?;
            charge(cx, n)?;
            Value::Array((0..n).map(|k| lift_mem(cx, elem, at + k * size)).collect::<Result<_>>()?)
        }
        InterfaceType::Record(i) => {
            let fields = &types[i].fields;
            charge(cx, fields.len())?;
            let mut offset = 0;
            let mut out = Map::with_capacity(fields.len());
            for f in fields.iter() {
                let o = types.canonical_abi(&f.ty).next_field32_size(&mut offset);
                out.insert(f.name.clone(), lift_mem(cx, f.ty, at + o)?);
            }
            Value::Object(out)
        }
        InterfaceType::Tuple(i) => {
            let items = &types[i].types;
            charge(cx, items.len())?;
            let mut offset = 0;
            let mut out = Vec::with_capacity(items.len());
            for t in items.iter() {
                let o = types.canonical_abi(t).next_field32_size(&mut offset);
                out.push(lift_mem(cx, *t, at + o)?);
            }
            Value::Array(out)
        }
        InterfaceType::Variant(i) => {
            let v = &types[i];
            let disc = read_disc(mem, at, usize::from(v.info.size))?;
            let (name, payload) =
                v.cases.get_index(disc).ok_or_else(|| format_err!("invalid variant discriminant {disc}"))?;
            let payload_at = at + usize::try_from(v.info.payload_offset32)?;
            match payload {
                None => Value::String(name.clone()),
                Some(t) => object1(name, lift_mem(cx, *t, payload_at)?),
            }
        }
        InterfaceType::Enum(i) => {
            let e = &types[i];
            let disc = read_disc(mem, at, usize::from(e.info.size))?;
            Value::String(
                e.names.iter().nth(disc).ok_or_else(|| format_err!("invalid enum discriminant {disc}"))?.clone(),
            )
        }
        InterfaceType::Option(i) => {
            let o = &types[i];
            match read_disc(mem, at, usize::from(o.info.size))? {
                0 => Value::Null,
                1 => lift_mem(cx, o.ty, at + usize::try_from(o.info.payload_offset32)?)?,
                n => bail!("invalid option discriminant {n}"),
            }
        }
        InterfaceType::Result(i) => {
            let r = &types[i];
            let payload_at = at + usize::try_from(r.info.payload_offset32)?;
            let (arm, t) = match read_disc(mem, at, usize::from(r.info.size))? {
                0 => ("ok", r.ok),
                1 => ("err", r.err),
                n => bail!("invalid result discriminant {n}"),
            };
            object1(arm, t.map_or(Ok(Value::Null), |t| lift_mem(cx, t, payload_at))?)
        }
        InterfaceType::Flags(i) => {
            let names = &types[i].names;
            let bytes = field(mem, at, flags_bytes(names.len()))?;
            flags_json(names, |bit| bytes.get(bit / 8).is_some_and(|b| b & (1 << (bit % 8)) != 0))
        }
        InterfaceType::Own(_)
        | InterfaceType::Borrow(_)
        | InterfaceType::Future(_)
        | InterfaceType::Stream(_)
        | InterfaceType::ErrorContext(_) => bail!("{ty:?} has no JSON form"),
    })
}

fn flags_json<'a>(names: impl IntoIterator<Item = &'a String>, set: impl Fn(usize) -> bool) -> Value {
    Value::Array(
        names.into_iter().enumerate().filter(|(bit, _)| set(*bit)).map(|(_, n)| Value::String(n.clone())).collect(),
    )
}

/// A list stored at `ptr` (`len` elements), as JSON: base64 for `list<u8>`, straight from memory.
fn lift_list(cx: &mut LiftContext<'_>, elem: InterfaceType, ptr: usize, len: usize) -> Result<Value> {
    let types: &ComponentTypes = cx.types;
    let mem = cx.memory();
    if matches!(elem, InterfaceType::U8) {
        check_range(mem, ptr, len, 1, "list")?;
        cx.consume_fuel(len)?;
        return Ok(Value::String(STANDARD.encode(&mem[ptr..ptr + len])));
    }
    let abi = types.canonical_abi(&elem);
    let size = usize::try_from(abi.size32)?;
    let total = len.checked_mul(size).ok_or_else(|| format_err!("list of {len} elements overflows"))?;
    check_range(mem, ptr, total, abi.align32, "list")?;
    charge(cx, len)?;
    Ok(Value::Array((0..len).map(|k| lift_mem(cx, elem, ptr + k * size)).collect::<Result<_>>()?))
}

/// A map stored at `ptr` (`len` entries): an object when its keys are strings (a later duplicate
/// wins), otherwise an array of `[key, value]` pairs.
fn lift_map(
    cx: &mut LiftContext<'_>,
    types: &ComponentTypes,
    ty: wasmtime::component::__internal::wasmtime_environ::component::TypeMapIndex,
    ptr: usize,
    len: usize,
) -> Result<Value> {
    let m = &types[ty];
    let size = usize::try_from(m.entry_abi.size32)?;
    let value_offset = usize::try_from(m.value_offset32)?;
    let total = len.checked_mul(size).ok_or_else(|| format_err!("map of {len} entries overflows"))?;
    check_range(cx.memory(), ptr, total, m.entry_abi.align32, "map")?;
    charge(cx, len.saturating_mul(2))?;
    let entries = (0..len).map(|k| ptr + k * size);
    if matches!(m.key, InterfaceType::String) {
        let mut out = Map::new();
        for at in entries {
            let key = match lift_mem(cx, m.key, at)? {
                Value::String(s) => s,
                other => other.to_string(),
            };
            out.insert(key, lift_mem(cx, m.value, at + value_offset)?);
        }
        Ok(Value::Object(out))
    } else {
        let mut out = Vec::with_capacity(len);
        for at in entries {
            out.push(Value::Array(vec![lift_mem(cx, m.key, at)?, lift_mem(cx, m.value, at + value_offset)?]));
        }
        Ok(Value::Array(out))
    }
}

fn next(src: &mut std::slice::Iter<'_, ValRaw>) -> Result<ValRaw> {
    src.next().copied().ok_or_else(|| format_err!("fewer core values than the type flattens to"))
}

/// Reads a value of type `ty` from its flat core values, as JSON.
fn lift_flat(cx: &mut LiftContext<'_>, ty: InterfaceType, src: &mut std::slice::Iter<'_, ValRaw>) -> Result<Value> {
    let types: &ComponentTypes = cx.types;
    Ok(match ty {
        InterfaceType::Bool => Value::Bool(bool::linear_lift_from_flat(cx, ty, &next(src)?)?),
        InterfaceType::S8 => i8::linear_lift_from_flat(cx, ty, &next(src)?)?.into(),
        InterfaceType::U8 => u8::linear_lift_from_flat(cx, ty, &next(src)?)?.into(),
        InterfaceType::S16 => i16::linear_lift_from_flat(cx, ty, &next(src)?)?.into(),
        InterfaceType::U16 => u16::linear_lift_from_flat(cx, ty, &next(src)?)?.into(),
        InterfaceType::S32 => i32::linear_lift_from_flat(cx, ty, &next(src)?)?.into(),
        InterfaceType::U32 => u32::linear_lift_from_flat(cx, ty, &next(src)?)?.into(),
        InterfaceType::S64 => i64::linear_lift_from_flat(cx, ty, &next(src)?)?.into(),
        InterfaceType::U64 => u64::linear_lift_from_flat(cx, ty, &next(src)?)?.into(),
        InterfaceType::Float32 => f32_json(f32::linear_lift_from_flat(cx, ty, &next(src)?)?),
        InterfaceType::Float64 => f64_json(f64::linear_lift_from_flat(cx, ty, &next(src)?)?),
        InterfaceType::Char => Value::String(char::linear_lift_from_flat(cx, ty, &next(src)?)?.to_string()),
        InterfaceType::String => {
            let pair = [next(src)?, next(src)?];
            Value::String(String::linear_lift_from_flat(cx, ty, &pair)?)
        }
        InterfaceType::List(i) => {
            let (ptr, len) = (next(src)?.get_u32(), next(src)?.get_u32());
            lift_list(cx, types[i].element, usize::try_from(ptr)?, usize::try_from(len)?)?
        }
        InterfaceType::Map(i) => {
            let (ptr, len) = (next(src)?.get_u32(), next(src)?.get_u32());
            lift_map(cx, types, i, usize::try_from(ptr)?, usize::try_from(len)?)?
        }
        InterfaceType::FixedLengthList(i) => {
            let (elem, n) = (types[i].element, usize::try_from(types[i].size)?);
            charge(cx, n)?;
            Value::Array((0..n).map(|_| lift_flat(cx, elem, src)).collect::<Result<_>>()?)
        }
        InterfaceType::Record(i) => {
            let fields = &types[i].fields;
            charge(cx, fields.len())?;
            let mut out = Map::with_capacity(fields.len());
            for f in fields.iter() {
                out.insert(f.name.clone(), lift_flat(cx, f.ty, src)?);
            }
            Value::Object(out)
        }
        InterfaceType::Tuple(i) => {
            let items = &types[i].types;
            charge(cx, items.len())?;
            Value::Array(items.iter().map(|t| lift_flat(cx, *t, src)).collect::<Result<_>>()?)
        }
        InterfaceType::Variant(i) => {
            let v = &types[i];
            let (disc, payload) = variant_flat(src, &v.abi)?;
            let (name, t) =
                v.cases.get_index(disc).ok_or_else(|| format_err!("invalid variant discriminant {disc}"))?;
            match t {
                None => Value::String(name.clone()),
                Some(t) => object1(name, lift_flat(cx, *t, &mut payload.iter())?),
            }
        }
        InterfaceType::Enum(i) => {
            let disc = usize::try_from(next(src)?.get_u32())?;
            let names = &types[i].names;
            Value::String(
                names.iter().nth(disc).ok_or_else(|| format_err!("invalid enum discriminant {disc}"))?.clone(),
            )
        }
        InterfaceType::Option(i) => {
            let o = &types[i];
            match variant_flat(src, &o.abi)? {
                (0, _) => Value::Null,
                (1, payload) => lift_flat(cx, o.ty, &mut payload.iter())?,
                (n, _) => bail!("invalid option discriminant {n}"),
            }
        }
        InterfaceType::Result(i) => {
            let r = &types[i];
            let (disc, payload) = variant_flat(src, &r.abi)?;
            let (arm, t) = match disc {
                0 => ("ok", r.ok),
                1 => ("err", r.err),
                n => bail!("invalid result discriminant {n}"),
            };
            object1(arm, t.map_or(Ok(Value::Null), |t| lift_flat(cx, t, &mut payload.iter()))?)
        }
        InterfaceType::Flags(i) => {
            let names = &types[i].names;
            let words =
                (0..names.len().div_ceil(32)).map(|_| next(src).map(|v| v.get_u32())).collect::<Result<Vec<_>>>()?;
            flags_json(names, |bit| words.get(bit / 32).is_some_and(|w| w & (1 << (bit % 32)) != 0))
        }
        InterfaceType::Own(_)
        | InterfaceType::Borrow(_)
        | InterfaceType::Future(_)
        | InterfaceType::Stream(_)
        | InterfaceType::ErrorContext(_) => bail!("{ty:?} has no JSON form"),
    })
}

/// A flattened variant's discriminant and the core values its payload may use (the variant's
/// flat width less one; a payload reads the ones it needs, in joined types that `ValRaw` reads
/// back bit-exactly).
fn variant_flat(src: &mut std::slice::Iter<'_, ValRaw>, abi: &CanonicalAbiInfo) -> Result<(usize, Vec<ValRaw>)> {
    let width = usize::from(abi.flat_count.ok_or_else(|| format_err!("a flat variant has a flat width"))?);
    let disc = usize::try_from(next(src)?.get_u32())?;
    let payload = (1..width).map(|_| next(src)).collect::<Result<Vec<_>>>()?;
    Ok((disc, payload))
}

fn mismatch(ty: InterfaceType, arg: &Arg) -> wasmtime::Error {
    format_err!("the value {} does not fit the type {ty:?}", arg.kind())
}

/// Appends the flat core values of `arg` (of type `ty`) to `out`, allocating in the guest for
/// strings and lists.
fn lower_flat<T>(cx: &mut LowerContext<'_, T>, ty: InterfaceType, arg: &Arg, out: &mut Vec<ValRaw>) -> Result<()> {
    let types: &ComponentTypes = cx.types;
    let v = match (ty, arg) {
        (InterfaceType::Bool, Arg::Bool(b)) => ValRaw::i32(i32::from(*b)),
        (InterfaceType::S8, Arg::S8(n)) => ValRaw::i32(i32::from(*n)),
        (InterfaceType::U8, Arg::U8(n)) => ValRaw::u32(u32::from(*n)),
        (InterfaceType::S16, Arg::S16(n)) => ValRaw::i32(i32::from(*n)),
        (InterfaceType::U16, Arg::U16(n)) => ValRaw::u32(u32::from(*n)),
        (InterfaceType::S32, Arg::S32(n)) => ValRaw::i32(*n),
        (InterfaceType::U32, Arg::U32(n)) => ValRaw::u32(*n),
        (InterfaceType::S64, Arg::S64(n)) => ValRaw::i64(*n),
        (InterfaceType::U64, Arg::U64(n)) => ValRaw::u64(*n),
        (InterfaceType::Float32, Arg::F32(f)) => ValRaw::f32(f.to_bits()),
        (InterfaceType::Float64, Arg::F64(f)) => ValRaw::f64(f.to_bits()),
        (InterfaceType::Char, Arg::Char(c)) => ValRaw::u32(u32::from(*c)),
        (InterfaceType::String, Arg::String(s)) => {
            let mut pair = MaybeUninit::new([ValRaw::u64(0); 2]);
            s.as_str().linear_lower_to_flat(cx, ty, &mut pair)?;
            // SAFETY: initialized by `MaybeUninit::new` (and overwritten with whole values).
            out.extend(unsafe { pair.assume_init() });
            return Ok(());
        }
        (InterfaceType::List(_), Arg::Bytes(b)) => {
            let mut pair = MaybeUninit::new([ValRaw::u64(0); 2]);
            b.as_slice().linear_lower_to_flat(cx, ty, &mut pair)?;
            // SAFETY: initialized by `MaybeUninit::new` (and overwritten with whole values).
            out.extend(unsafe { pair.assume_init() });
            return Ok(());
        }
        (InterfaceType::List(i), Arg::List(items)) => {
            let (ptr, len) = store_list(cx, types[i].element, items)?;
            out.extend([ValRaw::i64(i64::try_from(ptr)?), ValRaw::i64(i64::try_from(len)?)]);
            return Ok(());
        }
        (InterfaceType::Map(i), Arg::Map(pairs)) => {
            let (ptr, len) = store_map(cx, types, i, pairs)?;
            out.extend([ValRaw::i64(i64::try_from(ptr)?), ValRaw::i64(i64::try_from(len)?)]);
            return Ok(());
        }
        (InterfaceType::FixedLengthList(i), Arg::FixedList(items)) => {
            let l = &types[i];
            if items.len() != usize::try_from(l.size)? {
                return Err(mismatch(ty, arg));
            }
            return items.iter().try_for_each(|x| lower_flat(cx, l.element, x, out));
        }
        (InterfaceType::Record(i), Arg::Record(fields)) => {
            let r = &types[i];
            if r.fields.len() != fields.len() {
                return Err(mismatch(ty, arg));
            }
            return r.fields.iter().zip(fields).try_for_each(|(f, (_, x))| lower_flat(cx, f.ty, x, out));
        }
        (InterfaceType::Tuple(i), Arg::Tuple(items)) => {
            let t = &types[i];
            if t.types.len() != items.len() {
                return Err(mismatch(ty, arg));
            }
            return t.types.iter().zip(items).try_for_each(|(t, x)| lower_flat(cx, *t, x, out));
        }
        (InterfaceType::Variant(i), Arg::Variant(name, payload)) => {
            let v = &types[i];
            let (disc, _, case) = v.cases.get_full(name.as_str()).ok_or_else(|| mismatch(ty, arg))?;
            return lower_variant_flat(cx, &v.abi, disc, *case, payload.as_deref(), out);
        }
        (InterfaceType::Enum(i), Arg::Enum(name)) => {
            let disc = types[i].names.get_index_of(name.as_str()).ok_or_else(|| mismatch(ty, arg))?;
            ValRaw::u32(u32::try_from(disc)?)
        }
        (InterfaceType::Option(i), Arg::Option(x)) => {
            let o = &types[i];
            let (disc, t) = if x.is_some() { (1, Some(o.ty)) } else { (0, None) };
            return lower_variant_flat(cx, &o.abi, disc, t, x.as_deref(), out);
        }
        (InterfaceType::Result(i), Arg::Result(res)) => {
            let r = &types[i];
            let (disc, t, x) = match res {
                Ok(x) => (0, r.ok, x),
                Err(x) => (1, r.err, x),
            };
            return lower_variant_flat(cx, &r.abi, disc, t, x.as_deref(), out);
        }
        (InterfaceType::Flags(i), Arg::Flags(set)) => {
            let names = &types[i].names;
            let mut words = vec![0u32; names.len().div_ceil(32)];
            for name in set {
                let bit = names.get_index_of(name.as_str()).ok_or_else(|| mismatch(ty, arg))?;
                words[bit / 32] |= 1 << (bit % 32);
            }
            out.extend(words.into_iter().map(ValRaw::u32));
            return Ok(());
        }
        _ => return Err(mismatch(ty, arg)),
    };
    out.push(v);
    Ok(())
}

/// A variant's flat form: the discriminant, the payload's values, zeros up to the variant's width.
fn lower_variant_flat<T>(
    cx: &mut LowerContext<'_, T>,
    abi: &CanonicalAbiInfo,
    disc: usize,
    payload_ty: Option<InterfaceType>,
    payload: Option<&Arg>,
    out: &mut Vec<ValRaw>,
) -> Result<()> {
    let width = usize::from(abi.flat_count.ok_or_else(|| format_err!("a flat variant has a flat width"))?);
    let start = out.len();
    out.push(ValRaw::u32(u32::try_from(disc)?));
    match (payload_ty, payload) {
        (Some(t), Some(x)) => lower_flat(cx, t, x, out)?,
        (None, None) => {}
        (Some(_), None) => bail!("case {disc} needs a payload"),
        (None, Some(_)) => bail!("case {disc} has no payload"),
    }
    if out.len() > start + width {
        bail!("a variant's payload flattens wider than the variant");
    }
    out.resize(start + width, ValRaw::u64(0));
    Ok(())
}

/// Stores the members of a tuple of parameters at `at`.
fn store_tuple<T>(cx: &mut LowerContext<'_, T>, ty: InterfaceType, args: &[Arg], at: usize) -> Result<()> {
    let types: &ComponentTypes = cx.types;
    let members = tuple_types(types, ty)?;
    if members.len() != args.len() {
        bail!("expected {} arguments, got {}", members.len(), args.len());
    }
    let mut offset = 0;
    for (t, arg) in members.iter().zip(args) {
        let o = types.canonical_abi(t).next_field32_size(&mut offset);
        store(cx, *t, arg, at + o)?;
    }
    Ok(())
}

/// Allocates a list in the guest and stores its elements; returns its pointer and length.
fn store_list<T>(cx: &mut LowerContext<'_, T>, elem: InterfaceType, items: &[Arg]) -> Result<(usize, usize)> {
    let abi = cx.types.canonical_abi(&elem);
    let (align, size) = (abi.align32, usize::try_from(abi.size32)?);
    let total = items.len().checked_mul(size).ok_or_else(|| format_err!("list too large"))?;
    let ptr = cx.realloc(0, 0, align, total)?;
    for (k, item) in items.iter().enumerate() {
        store(cx, elem, item, ptr + k * size)?;
    }
    Ok((ptr, items.len()))
}

/// Allocates a map's entries in the guest and stores them; returns its pointer and length.
fn store_map<T>(
    cx: &mut LowerContext<'_, T>,
    types: &ComponentTypes,
    ty: wasmtime::component::__internal::wasmtime_environ::component::TypeMapIndex,
    pairs: &[(Arg, Arg)],
) -> Result<(usize, usize)> {
    let m = &types[ty];
    let size = usize::try_from(m.entry_abi.size32)?;
    let value_offset = usize::try_from(m.value_offset32)?;
    let total = pairs.len().checked_mul(size).ok_or_else(|| format_err!("map too large"))?;
    let ptr = cx.realloc(0, 0, m.entry_abi.align32, total)?;
    for (k, (key, value)) in pairs.iter().enumerate() {
        let at = ptr + k * size;
        store(cx, m.key, key, at)?;
        store(cx, m.value, value, at + value_offset)?;
    }
    Ok((ptr, pairs.len()))
}

fn store_pair<T>(cx: &mut LowerContext<'_, T>, at: usize, ptr: usize, len: usize) -> Result<()> {
    u32::try_from(ptr)?.linear_lower_to_memory(cx, InterfaceType::U32, at)?;
    u32::try_from(len)?.linear_lower_to_memory(cx, InterfaceType::U32, at + 4)
}

fn store_disc<T>(cx: &mut LowerContext<'_, T>, at: usize, width: usize, disc: usize) -> Result<()> {
    match width {
        1 => u8::try_from(disc)?.linear_lower_to_memory(cx, InterfaceType::U8, at),
        2 => u16::try_from(disc)?.linear_lower_to_memory(cx, InterfaceType::U16, at),
        _ => u32::try_from(disc)?.linear_lower_to_memory(cx, InterfaceType::U32, at),
    }
}

/// Stores `arg` (of type `ty`) at `at` in the guest's memory (a block allocated for it).
fn store<T>(cx: &mut LowerContext<'_, T>, ty: InterfaceType, arg: &Arg, at: usize) -> Result<()> {
    let types: &ComponentTypes = cx.types;
    match (ty, arg) {
        (InterfaceType::Bool, Arg::Bool(b)) => b.linear_lower_to_memory(cx, ty, at),
        (InterfaceType::S8, Arg::S8(n)) => n.linear_lower_to_memory(cx, ty, at),
        (InterfaceType::U8, Arg::U8(n)) => n.linear_lower_to_memory(cx, ty, at),
        (InterfaceType::S16, Arg::S16(n)) => n.linear_lower_to_memory(cx, ty, at),
        (InterfaceType::U16, Arg::U16(n)) => n.linear_lower_to_memory(cx, ty, at),
        (InterfaceType::S32, Arg::S32(n)) => n.linear_lower_to_memory(cx, ty, at),
        (InterfaceType::U32, Arg::U32(n)) => n.linear_lower_to_memory(cx, ty, at),
        (InterfaceType::S64, Arg::S64(n)) => n.linear_lower_to_memory(cx, ty, at),
        (InterfaceType::U64, Arg::U64(n)) => n.linear_lower_to_memory(cx, ty, at),
        (InterfaceType::Float32, Arg::F32(f)) => f.linear_lower_to_memory(cx, ty, at),
        (InterfaceType::Float64, Arg::F64(f)) => f.linear_lower_to_memory(cx, ty, at),
        (InterfaceType::Char, Arg::Char(c)) => c.linear_lower_to_memory(cx, ty, at),
        (InterfaceType::String, Arg::String(s)) => s.as_str().linear_lower_to_memory(cx, ty, at),
        (InterfaceType::List(_), Arg::Bytes(b)) => b.as_slice().linear_lower_to_memory(cx, ty, at),
        (InterfaceType::List(i), Arg::List(items)) => {
            let (ptr, len) = store_list(cx, types[i].element, items)?;
            store_pair(cx, at, ptr, len)
        }
        (InterfaceType::Map(i), Arg::Map(pairs)) => {
            let (ptr, len) = store_map(cx, types, i, pairs)?;
            store_pair(cx, at, ptr, len)
        }
        (InterfaceType::FixedLengthList(i), Arg::FixedList(items)) => {
            let l = &types[i];
            if items.len() != usize::try_from(l.size)? {
                return Err(mismatch(ty, arg));
            }
            let size = usize::try_from(types.canonical_abi(&l.element).size32)?;
            items.iter().enumerate().try_for_each(|(k, x)| store(cx, l.element, x, at + k * size))
        }
        (InterfaceType::Record(i), Arg::Record(fields)) => {
            let r = &types[i];
            if r.fields.len() != fields.len() {
                return Err(mismatch(ty, arg));
            }
            let mut offset = 0;
            for (f, (_, x)) in r.fields.iter().zip(fields) {
                let o = types.canonical_abi(&f.ty).next_field32_size(&mut offset);
                store(cx, f.ty, x, at + o)?;
            }
            Ok(())
        }
        (InterfaceType::Tuple(i), Arg::Tuple(items)) => {
            let t = &types[i];
            if t.types.len() != items.len() {
                return Err(mismatch(ty, arg));
            }
            let mut offset = 0;
            for (t, x) in t.types.iter().zip(items) {
                let o = types.canonical_abi(t).next_field32_size(&mut offset);
                store(cx, *t, x, at + o)?;
            }
            Ok(())
        }
        (InterfaceType::Variant(i), Arg::Variant(name, payload)) => {
            let v = &types[i];
            let (disc, _, case) = v.cases.get_full(name.as_str()).ok_or_else(|| mismatch(ty, arg))?;
            store_disc(cx, at, usize::from(v.info.size), disc)?;
            let payload_at = at + usize::try_from(v.info.payload_offset32)?;
            match (case, payload) {
                (Some(t), Some(x)) => store(cx, *t, x, payload_at),
                (None, None) => Ok(()),
                _ => Err(mismatch(ty, arg)),
            }
        }
        (InterfaceType::Enum(i), Arg::Enum(name)) => {
            let e = &types[i];
            let disc = e.names.get_index_of(name.as_str()).ok_or_else(|| mismatch(ty, arg))?;
            store_disc(cx, at, usize::from(e.info.size), disc)
        }
        (InterfaceType::Option(i), Arg::Option(x)) => {
            let o = &types[i];
            store_disc(cx, at, usize::from(o.info.size), usize::from(x.is_some()))?;
            match x {
                Some(x) => store(cx, o.ty, x, at + usize::try_from(o.info.payload_offset32)?),
                None => Ok(()),
            }
        }
        (InterfaceType::Result(i), Arg::Result(res)) => {
            let r = &types[i];
            let (disc, t, x) = match res {
                Ok(x) => (0, r.ok, x),
                Err(x) => (1, r.err, x),
            };
            store_disc(cx, at, usize::from(r.info.size), disc)?;
            let payload_at = at + usize::try_from(r.info.payload_offset32)?;
            match (t, x) {
                (Some(t), Some(x)) => store(cx, t, x, payload_at),
                (None, None) => Ok(()),
                _ => Err(mismatch(ty, arg)),
            }
        }
        (InterfaceType::Flags(i), Arg::Flags(set)) => {
            let names = &types[i].names;
            let mut bytes = vec![0u8; flags_bytes(names.len())];
            for name in set {
                let bit = names.get_index_of(name.as_str()).ok_or_else(|| mismatch(ty, arg))?;
                bytes[bit / 8] |= 1 << (bit % 8);
            }
            bytes.iter().enumerate().try_for_each(|(k, b)| b.linear_lower_to_memory(cx, InterfaceType::U8, at + k))
        }
        _ => Err(mismatch(ty, arg)),
    }
}
