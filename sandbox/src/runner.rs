//! The runner: runs one script and reports what came of it, in native code the script cannot
//! reach.
//!
//! A script can rebind any Python name, `codemode`'s globals, `json` and `builtins` included.
//! So everything after the script (finding its value, turning it into JSON, describing its
//! error) happens here, on the interpreter's own data, never through a Python name looked up
//! after the script ran. Python code of the script still runs where the script asks for it (its
//! objects' `__repr__` and `__str__`); whatever that does, the report is built here and a
//! failure in it is reported as the script's error, never as codemode's.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt::Write as _;
use std::io;

use rustpython_vm::{
    AsObject, Py, PyObject, PyObjectRef, PyRef, VirtualMachine,
    builtins::{
        PyBaseExceptionRef, PyByteArray, PyBytes, PyDict, PyDictRef, PyFloat, PyFrozenSet, PyInt,
        PyList, PySet, PyStr, PyTuple, PyType,
    },
    compiler::Mode,
    scope::Scope,
};
use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq};

/// The script's file name in tracebacks and code objects.
pub(crate) const SCRIPT: &str = "<script>";

/// The most of an error's message, and of its traceback, that is reported.
const MAX_REPORT_TEXT_BYTES: usize = 64 << 10;

/// Nesting deeper than this cannot be a result: the host reads JSON to 128 levels, and a
/// structure that contains itself would never end.
const MAX_RESULT_DEPTH: usize = 100;

/// Exception names only codemode may report: a script's class of that name is reported with its
/// module (`__main__.InternalError`).
const RESERVED_NAMES: [&str; 2] = ["InternalError", "Cancelled"];

/// What the runner keeps from boot: references taken before any script ran.
pub(crate) struct Runner {
    /// `codemode._prepare(code, bindings)`: the script's globals, its servers bound.
    pub(crate) prepare: PyObjectRef,
    /// `codemode.LimitExceeded`.
    pub(crate) limit_exceeded: PyRef<PyType>,
}

impl Runner {
    /// Runs `code` with the servers of `bindings` bound; returns the outcome as JSON.
    pub(crate) fn run(
        &self,
        vm: &VirtualMachine,
        code: &str,
        bindings: &str,
        max_result_bytes: usize,
    ) -> Vec<u8> {
        let globals = match self
            .prepare
            .call((code.to_string(), bindings.to_string()), vm)
            .and_then(|scope| {
                scope
                    .downcast::<PyDict>()
                    .map_err(|_| vm.new_type_error("the script's globals are not a dict"))
            }) {
            Ok(globals) => globals,
            Err(error) => return internal_error(&describe(vm, &error)),
        };
        match execute(vm, code, globals) {
            Ok(value) => result_outcome(vm, &value, max_result_bytes),
            Err(error) => self.error_outcome(vm, &error, code),
        }
    }

    fn error_outcome(
        &self,
        vm: &VirtualMachine,
        error: &PyBaseExceptionRef,
        code: &str,
    ) -> Vec<u8> {
        if error.fast_isinstance(vm.ctx.exceptions.system_exit) && exits_cleanly(vm, error) {
            return ok_outcome(b"null");
        }
        let report = Report {
            kind: type_name(vm, error.class()),
            message: cut(message(vm, error)),
            line: script_line(vm, error),
            traceback: cut(traceback(vm, error, code)),
            limit: self.limit_named(vm, error),
        };
        let outcome = ErrorOutcome {
            ok: false,
            error: report,
        };
        serde_json::to_vec(&outcome)
            .unwrap_or_else(|e| internal_error(&format!("unencodable error report: {e}")))
    }

    /// The `limit` a `codemode.LimitExceeded` names, when it is a string (the host decides
    /// whether that limit fired).
    fn limit_named(&self, vm: &VirtualMachine, error: &PyBaseExceptionRef) -> Option<String> {
        if !error.fast_isinstance(&self.limit_exceeded) {
            return None;
        }
        let dict = error.as_object().dict()?;
        let limit = dict.get_item_opt("limit", vm).ok()??;
        let limit = limit.downcast_ref::<PyStr>()?;
        Some(limit.to_string_lossy().chars().take(64).collect())
    }
}

/// Compiles and runs the script in `globals`; its value is its `result` global, else the value
/// of its last expression statement.
fn execute(
    vm: &VirtualMachine,
    code: &str,
    globals: PyDictRef,
) -> Result<PyObjectRef, PyBaseExceptionRef> {
    let compiled = vm
        .compile(code, Mode::BlockExpr, SCRIPT.to_string())
        .map_err(|error| error.into_pyexception(vm, Some(code)))?;
    let scope = Scope::with_builtins(None, globals.clone(), vm);
    let value = vm.run_code_obj(compiled, scope)?;
    Ok(globals.get_item_opt("result", vm)?.unwrap_or(value))
}

/// True for `sys.exit()`, `sys.exit(None)` and `sys.exit(0)`: the script finished.
fn exits_cleanly(vm: &VirtualMachine, error: &PyBaseExceptionRef) -> bool {
    let args = error.args();
    match args.as_slice() {
        [] => true,
        [code] => {
            vm.is_none(code)
                || code
                    .downcast_ref::<PyInt>()
                    .is_some_and(|int| int.try_to_primitive::<i64>(vm).ok() == Some(0))
        }
        _ => false,
    }
}

/// The exception's type name; a script's class that takes a name only codemode may report is
/// named with its module.
fn type_name(vm: &VirtualMachine, class: &Py<PyType>) -> String {
    let name = class.name().to_string();
    if !RESERVED_NAMES.contains(&name.as_str()) {
        return name;
    }
    let module = class
        .as_object()
        .get_attr("__module__", vm)
        .ok()
        .and_then(|module| module.downcast::<PyStr>().ok())
        .map_or_else(
            || "__main__".to_string(),
            |m| m.to_string_lossy().into_owned(),
        );
    format!("{module}.{name}")
}

/// `str(error)`, or a placeholder when that fails.
fn message(vm: &VirtualMachine, error: &PyBaseExceptionRef) -> String {
    match error.as_object().str(vm) {
        Ok(text) => text.to_string_lossy().into_owned(),
        Err(_) => format!("<unprintable {}>", error.class().name()),
    }
}

/// The script's line where `error` was raised: its innermost frame of the script, or, for a
/// syntax error in the script, the line the compiler named.
fn script_line(vm: &VirtualMachine, error: &PyBaseExceptionRef) -> Option<u32> {
    if let Some(traceback) = error.traceback() {
        let line = traceback
            .iter()
            .filter(|entry| entry.frame.iframe().code().source_path().as_str() == SCRIPT)
            .last()
            .map(|entry| entry.lineno.get() as u32);
        if line.is_some() {
            return line;
        }
    }
    if !error.fast_isinstance(vm.ctx.exceptions.syntax_error) {
        return None;
    }
    let attribute = |name: &'static str| error.as_object().get_attr(name, vm).ok();
    let filename = attribute("filename")?;
    if filename.downcast_ref::<PyStr>()?.to_string_lossy() != SCRIPT {
        return None;
    }
    let line = attribute("lineno")?
        .downcast_ref::<PyInt>()?
        .try_to_primitive::<i64>(vm)
        .ok()?;
    u32::try_from(line).ok().filter(|line| *line > 0)
}

/// The traceback of `error` and of the exceptions it was raised from, CPython's way, with the
/// script's source lines.
fn traceback(vm: &VirtualMachine, error: &PyBaseExceptionRef, code: &str) -> String {
    let lines: Vec<&str> = code.lines().collect();
    let mut text = String::new();
    write_chain(vm, error, &lines, &mut text, &mut HashSet::new());
    text
}

fn write_chain(
    vm: &VirtualMachine,
    error: &PyBaseExceptionRef,
    lines: &[&str],
    text: &mut String,
    seen: &mut HashSet<usize>,
) {
    seen.insert(error.get_id());
    let earlier = match (error.__cause__(), error.__context__()) {
        (Some(cause), _) => Some((
            cause,
            "\nThe above exception was the direct cause of the following exception:\n\n",
        )),
        (None, Some(context)) => Some((
            context,
            "\nDuring handling of the above exception, another exception occurred:\n\n",
        )),
        (None, None) => None,
    };
    if let Some((earlier, joint)) = earlier
        && !seen.contains(&earlier.get_id())
        && text.len() < MAX_REPORT_TEXT_BYTES
    {
        write_chain(vm, &earlier, lines, text, seen);
        text.push_str(joint);
    }
    write_one(vm, error, lines, text);
}

fn write_one(vm: &VirtualMachine, error: &PyBaseExceptionRef, lines: &[&str], text: &mut String) {
    let source = |text: &mut String, line: usize| {
        if let Some(source) = line.checked_sub(1).and_then(|index| lines.get(index)) {
            let _ = writeln!(text, "    {}", source.trim());
        }
    };
    if let Some(traceback) = error.traceback() {
        text.push_str("Traceback (most recent call last):\n");
        for entry in traceback.iter() {
            if text.len() > MAX_REPORT_TEXT_BYTES {
                break;
            }
            let code = entry.frame.iframe().code();
            let file = code.source_path().as_str();
            let line = entry.lineno.get();
            let _ = writeln!(text, "  File \"{file}\", line {line}, in {}", code.obj_name);
            if file == SCRIPT {
                source(text, line);
            }
        }
    } else if let Some(line) = script_line(vm, error) {
        let _ = writeln!(text, "  File \"{SCRIPT}\", line {line}");
        source(text, line as usize);
    }
    let name = type_name(vm, error.class());
    match message(vm, error) {
        message if message.is_empty() => {
            let _ = writeln!(text, "{name}");
        }
        message => {
            let _ = writeln!(text, "{name}: {message}");
        }
    }
}

/// `text`, cut to [`MAX_REPORT_TEXT_BYTES`] on a character boundary, with a marker saying so.
fn cut(mut text: String) -> String {
    if text.len() <= MAX_REPORT_TEXT_BYTES {
        return text;
    }
    let total = text.len();
    let mut end = MAX_REPORT_TEXT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    let _ = write!(text, "…[cut: {total} bytes in all]");
    text
}

/// The outcome of a script that finished with `value`: its JSON, unless that passes
/// `max_result_bytes`.
fn result_outcome(vm: &VirtualMachine, value: &PyObject, max_result_bytes: usize) -> Vec<u8> {
    let failure = RefCell::new(None);
    let mut writer = Capped {
        bytes: Vec::new(),
        cap: max_result_bytes,
        over: None,
    };
    let json = Json {
        vm,
        object: value,
        depth: 0,
        failure: &failure,
    };
    let written = json.serialize(&mut serde_json::Serializer::new(&mut writer));
    if let Some(observed) = writer.over {
        return format!(r#"{{"ok":false,"oversized_result":{observed}}}"#).into_bytes();
    }
    match (written, failure.into_inner()) {
        (Ok(()), _) => ok_outcome(&writer.bytes),
        (Err(_), Some(error)) => error_report(vm, &error),
        (Err(error), None) => internal_error(&format!("the result could not be encoded: {error}")),
    }
}

/// The error outcome of an exception raised while the result was turned into JSON (a
/// `__repr__` that fails, a structure that contains itself).
fn error_report(vm: &VirtualMachine, error: &PyBaseExceptionRef) -> Vec<u8> {
    let outcome = ErrorOutcome {
        ok: false,
        error: Report {
            kind: type_name(vm, error.class()),
            message: cut(message(vm, error)),
            line: None,
            traceback: String::new(),
            limit: None,
        },
    };
    serde_json::to_vec(&outcome)
        .unwrap_or_else(|e| internal_error(&format!("unencodable error report: {e}")))
}

pub(crate) fn ok_outcome(result: &[u8]) -> Vec<u8> {
    let mut outcome = Vec::with_capacity(result.len() + 32);
    outcome.extend_from_slice(br#"{"ok":true,"result":"#);
    outcome.extend_from_slice(result);
    outcome.push(b'}');
    outcome
}

/// An outcome for a failure of the runtime itself, never of the script.
pub(crate) fn internal_error(message: &str) -> Vec<u8> {
    let outcome = ErrorOutcome {
        ok: false,
        error: Report {
            kind: "InternalError".to_string(),
            message: cut(message.to_string()),
            line: None,
            traceback: String::new(),
            limit: None,
        },
    };
    serde_json::to_vec(&outcome).unwrap_or_else(|_| {
        br#"{"ok":false,"error":{"type":"InternalError","message":"unencodable","line":null,"traceback":""}}"#.to_vec()
    })
}

/// A Python error as text, traceback included: for failures of codemode's own Python.
pub(crate) fn describe(vm: &VirtualMachine, error: &PyBaseExceptionRef) -> String {
    let mut text = String::new();
    let _ = vm.write_exception(&mut text, error);
    text
}

#[derive(Serialize)]
struct ErrorOutcome {
    ok: bool,
    error: Report,
}

/// A failed run as the host reads it (`GuestError` in `src/executor/protocol.rs`).
#[derive(Serialize)]
struct Report {
    #[serde(rename = "type")]
    kind: String,
    message: String,
    line: Option<u32>,
    traceback: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<String>,
}

/// A writer that refuses to grow past `cap` bytes and remembers how far it got.
struct Capped {
    bytes: Vec<u8>,
    cap: usize,
    /// Bytes asked for when the cap was passed.
    over: Option<usize>,
}

impl io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let total = self.bytes.len() + buf.len();
        if total > self.cap {
            self.over = Some(total);
            return Err(io::Error::other("the result passed max_result_bytes"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A Python value as the JSON of a result. What JSON cannot say gets a defined value rather
/// than an error: tuples and sets are lists, bytes are text (UTF-8, invalid bytes replaced),
/// integers beyond 64 bits and the floats `nan`, `inf` and `-inf` are strings (`"NaN"`,
/// `"Infinity"`, `"-Infinity"`), mapping keys are text, anything else is its `repr()`.
struct Json<'a> {
    vm: &'a VirtualMachine,
    object: &'a PyObject,
    depth: usize,
    /// The Python exception that stopped the encoding, if one did.
    failure: &'a RefCell<Option<PyBaseExceptionRef>>,
}

impl Json<'_> {
    fn nested<'b>(&'b self, object: &'b PyObject) -> Json<'b> {
        Json {
            vm: self.vm,
            object,
            depth: self.depth + 1,
            failure: self.failure,
        }
    }

    fn fail<E: serde::ser::Error>(&self, error: PyBaseExceptionRef) -> E {
        let message = format!("{}", error.class().name());
        self.failure.borrow_mut().get_or_insert(error);
        E::custom(message)
    }

    /// `repr(object)`, the text of what JSON has no form for.
    fn repr<E: serde::ser::Error>(&self, object: &PyObject) -> Result<String, E> {
        match object.repr(self.vm) {
            Ok(text) => Ok(text.to_string_lossy().into_owned()),
            Err(error) => Err(self.fail(error)),
        }
    }

    fn key<E: serde::ser::Error>(&self, key: &PyObject) -> Result<String, E> {
        let vm = self.vm;
        if let Some(text) = key.downcast_ref::<PyStr>() {
            return Ok(text.to_string_lossy().into_owned());
        }
        if vm.is_none(key) {
            return Ok("null".to_string());
        }
        if key.fast_isinstance(vm.ctx.types.bool_type) {
            let truth = key
                .downcast_ref::<PyInt>()
                .is_some_and(|i| i.try_to_primitive::<i64>(vm).ok() != Some(0));
            return Ok(if truth { "true" } else { "false" }.to_string());
        }
        if let Some(int) = key.downcast_ref::<PyInt>() {
            return Ok(int.as_bigint().to_string());
        }
        self.repr(key)
    }
}

impl Serialize for Json<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (vm, object) = (self.vm, self.object);
        if self.depth > MAX_RESULT_DEPTH {
            let error = vm.new_value_error(format!(
                "the result is nested more than {MAX_RESULT_DEPTH} levels deep; does it contain \
                 itself?"
            ));
            return Err(self.fail(error));
        }
        if vm.is_none(object) {
            return serializer.serialize_unit();
        }
        if let Some(text) = object.downcast_ref::<PyStr>() {
            return serializer.serialize_str(&text.to_string_lossy());
        }
        if object.fast_isinstance(vm.ctx.types.bool_type) {
            let truth = object
                .downcast_ref::<PyInt>()
                .is_some_and(|i| i.try_to_primitive::<i64>(vm).ok() != Some(0));
            return serializer.serialize_bool(truth);
        }
        if let Some(int) = object.downcast_ref::<PyInt>() {
            if let Ok(small) = int.try_to_primitive::<i64>(vm) {
                return serializer.serialize_i64(small);
            }
            if let Ok(large) = int.try_to_primitive::<u64>(vm) {
                return serializer.serialize_u64(large);
            }
            return serializer.serialize_str(&int.as_bigint().to_string());
        }
        if let Some(float) = object.downcast_ref::<PyFloat>() {
            let value = float.to_f64();
            return match value {
                v if v.is_finite() => serializer.serialize_f64(v),
                v if v.is_nan() => serializer.serialize_str("NaN"),
                v if v > 0.0 => serializer.serialize_str("Infinity"),
                _ => serializer.serialize_str("-Infinity"),
            };
        }
        if let Some(list) = object.downcast_ref::<PyList>() {
            // A copy of the references: an element's `__repr__` may change the list.
            let items = list.borrow_vec().to_vec();
            return self.sequence(serializer, &items);
        }
        if let Some(tuple) = object.downcast_ref::<PyTuple>() {
            return self.sequence(serializer, tuple.as_slice());
        }
        if let Some(dict) = object.downcast_ref::<PyDict>() {
            let items = dict.items_vec();
            let mut map = serializer.serialize_map(Some(items.len()))?;
            for (key, value) in &items {
                map.serialize_entry(&self.key::<S::Error>(key)?, &self.nested(value))?;
            }
            return map.end();
        }
        if let Some(set) = object.downcast_ref::<PySet>() {
            return self.sequence(serializer, &set.elements());
        }
        if let Some(set) = object.downcast_ref::<PyFrozenSet>() {
            return self.sequence(serializer, &set.elements());
        }
        if let Some(bytes) = object.downcast_ref::<PyBytes>() {
            return serializer.serialize_str(&String::from_utf8_lossy(bytes.as_bytes()));
        }
        if let Some(bytes) = object.downcast_ref::<PyByteArray>() {
            let text = String::from_utf8_lossy(&bytes.borrow_buf()).into_owned();
            return serializer.serialize_str(&text);
        }
        serializer.serialize_str(&self.repr::<S::Error>(object)?)
    }
}

impl Json<'_> {
    fn sequence<S: serde::Serializer>(
        &self,
        serializer: S,
        items: &[PyObjectRef],
    ) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(items.len()))?;
        for item in items {
            seq.serialize_element(&self.nested(item))?;
        }
        seq.end()
    }
}
