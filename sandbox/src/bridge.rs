//! `_codemode`: the native Python module through which the runtime reaches the host.
//!
//! It is deliberately thin: strings in, strings out. Policy (which tools exist, who may call them,
//! limits) lives on the host; presentation (exceptions, awaitables) lives in `python/codemode.py`.

pub(crate) use _codemode::module_def;

#[rustpython_vm::pymodule]
mod _codemode {
    use rustpython_vm::{
        PyObjectRef, PyRef, PyResult, VirtualMachine,
        builtins::{PyCode, PyStrRef},
        compiler::Mode,
        py_serde::{PyObjectDeserializer, PyObjectSerializer},
    };
    use serde::de::DeserializeSeed;

    use crate::host;

    /// The JSON request the host's `tool_start` parses.
    #[derive(serde::Serialize)]
    struct ToolRequest<'a> {
        client: &'a str,
        tool: &'a str,
        arguments: PyObjectSerializer<'a>,
    }

    /// Appends `text` to stdout (1) or stderr (2).
    #[pyfunction]
    fn write(stream: i32, text: PyStrRef, vm: &VirtualMachine) -> PyResult<()> {
        if stream != 1 && stream != 2 {
            return Err(vm.new_value_error("stream must be 1 (stdout) or 2 (stderr)"));
        }
        host::write_output(stream, text.to_string_lossy().as_bytes());
        Ok(())
    }

    /// Compiles a script so that running it returns the value of its last expression statement
    /// (RustPython's block-expression mode): no AST round trip through Python is needed.
    #[pyfunction]
    fn compile_script(
        source: PyStrRef,
        filename: PyStrRef,
        vm: &VirtualMachine,
    ) -> PyResult<PyRef<PyCode>> {
        let text = source.to_string_lossy();
        vm.compile(
            &text,
            Mode::BlockExpr,
            filename.to_string_lossy().into_owned(),
        )
        .map_err(|err| err.into_pyexception(vm, Some(&text)))
    }

    /// Calls a tool and waits for it: `(True, value)` or `(False, error dict)`. The synchronous
    /// path in one native call, because every Python-level step costs a microsecond.
    #[pyfunction]
    fn call(
        client: PyStrRef,
        tool: PyStrRef,
        arguments: PyObjectRef,
        vm: &VirtualMachine,
    ) -> PyResult<(bool, PyObjectRef)> {
        let id = call_start(client, tool, arguments, vm)?;
        let response = call_wait(id, vm)?;
        match response.get_item("ok", vm) {
            Ok(value) => Ok((true, value)),
            Err(_) => Ok((false, response.get_item("error", vm)?)),
        }
    }

    /// Starts a tool call with a dict of JSON-compatible `arguments`; returns its call id.
    #[pyfunction]
    fn call_start(
        client: PyStrRef,
        tool: PyStrRef,
        arguments: PyObjectRef,
        vm: &VirtualMachine,
    ) -> PyResult<i32> {
        let (client, tool) = (client.to_string_lossy(), tool.to_string_lossy());
        let request = ToolRequest {
            client: &client,
            tool: &tool,
            arguments: PyObjectSerializer::new(vm, &arguments),
        };
        let bytes = serde_json::to_vec(&request).map_err(|e| {
            vm.new_type_error(format!(
                "arguments of {client}.{tool} are not JSON-serialisable: {e}"
            ))
        })?;
        Ok(host::start_call(&bytes))
    }

    /// Blocks until call `id` has finished; returns the host's response, `{"ok": value}` or
    /// `{"error": {...}}`, as Python objects.
    #[pyfunction]
    fn call_wait(id: i32, vm: &VirtualMachine) -> PyResult {
        let bytes = host::wait_call(id);
        let mut json = serde_json::Deserializer::from_slice(&bytes);
        PyObjectDeserializer::new(vm)
            .deserialize(&mut json)
            .map_err(|e| vm.new_value_error(format!("unreadable tool response: {e}")))
    }
}
