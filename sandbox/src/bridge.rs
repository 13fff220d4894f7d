//! `_codemode`: the native Python module through which the runtime reaches the host.
//!
//! It is deliberately thin: strings in, strings out. Policy (which tools exist, who may call them,
//! limits) lives on the host; presentation (exceptions, awaitables) lives in `python/codemode.py`.

pub(crate) use _codemode::module_def;

#[rustpython_vm::pymodule]
mod _codemode {
    use rustpython_vm::{
        PyObject, PyObjectRef, PyRef, PyResult, VirtualMachine,
        builtins::{PyCode, PyDict, PyStrRef},
        compiler::Mode,
        function::{KwArgs, OptionalArg},
        py_serde::{PyObjectDeserializer, PyObjectSerializer},
    };
    use serde::de::DeserializeSeed;

    use crate::host;

    thread_local! {
        /// Ids of the calls started and not yet collected: waiting on any other id is a Python
        /// error, never a breach of the host protocol.
        static RUNNING: std::cell::RefCell<std::collections::HashSet<i32>> =
            std::cell::RefCell::new(std::collections::HashSet::new());
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

    thread_local! {
        /// Turns a host error into the Python exception to raise (`codemode._error_from`).
        static ERROR_FACTORY: std::cell::RefCell<Option<PyObjectRef>> = const { std::cell::RefCell::new(None) };
    }

    /// Registers the function that builds exceptions from host errors; called once at boot.
    #[pyfunction]
    fn set_error_factory(factory: PyObjectRef) {
        ERROR_FACTORY.with(|cell| *cell.borrow_mut() = Some(factory));
    }

    /// `codemode.call_tool(client, tool, arguments=None, **kwargs)`: calls a tool and waits for
    /// its value, raising the matching exception on failure. The synchronous path is one native
    /// call end to end, because every Python-level step costs about a microsecond.
    #[pyfunction]
    fn call_tool(
        client: PyStrRef,
        tool: PyStrRef,
        arguments: OptionalArg<PyObjectRef>,
        kwargs: KwArgs,
        vm: &VirtualMachine,
    ) -> PyResult {
        let base = arguments.into_option().filter(|a| !vm.is_none(a));
        if let Some(base) = &base
            && base.downcast_ref::<PyDict>().is_none()
        {
            return Err(vm.new_type_error("arguments must be a dict of parameter names to values"));
        }
        let arguments = Arguments {
            base: base.as_deref(),
            kwargs: &kwargs,
            vm,
        };
        let id = start(&client, &tool, &arguments, vm)?;
        let response = call_wait(id, vm)?;
        if let Ok(value) = response.get_item("ok", vm) {
            return Ok(value);
        }
        let error = response.get_item("error", vm)?;
        let factory = ERROR_FACTORY.with(|cell| cell.borrow().clone());
        let Some(factory) = factory else {
            return Err(vm.new_runtime_error("codemode's runtime is not initialised"));
        };
        let exception = factory.call((error, client, tool), vm)?;
        Err(exception
            .downcast()
            .map_err(|_| vm.new_type_error("the error factory did not return an exception"))?)
    }

    /// A call's arguments: an optional dict merged with keyword arguments (which win).
    struct Arguments<'a> {
        base: Option<&'a PyObject>,
        kwargs: &'a KwArgs,
        vm: &'a VirtualMachine,
    }

    impl serde::Serialize for Arguments<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            if self.kwargs.is_empty()
                && let Some(base) = self.base
            {
                return PyObjectSerializer::new(self.vm, base).serialize(serializer);
            }
            let mut map = serializer.serialize_map(None)?;
            if let Some(dict) = self.base.and_then(|b| b.downcast_ref::<PyDict>()) {
                for (key, value) in dict.items_vec() {
                    let overridden = key
                        .downcast_ref::<rustpython_vm::builtins::PyStr>()
                        .is_some_and(|k| self.kwargs.contains_key(&k.to_string_lossy()));
                    if !overridden {
                        map.serialize_entry(
                            &PyObjectSerializer::new(self.vm, &key),
                            &PyObjectSerializer::new(self.vm, &value),
                        )?;
                    }
                }
            }
            for (key, value) in self.kwargs.iter() {
                map.serialize_entry(
                    &key.to_string_lossy(),
                    &PyObjectSerializer::new(self.vm, value),
                )?;
            }
            map.end()
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
        start(&client, &tool, &PyObjectSerializer::new(vm, &arguments), vm)
    }

    fn start(
        client: &PyStrRef,
        tool: &PyStrRef,
        arguments: &impl serde::Serialize,
        vm: &VirtualMachine,
    ) -> PyResult<i32> {
        let (client, tool) = (client.to_string_lossy(), tool.to_string_lossy());
        let arguments = serde_json::to_vec(arguments).map_err(|e| {
            vm.new_type_error(format!(
                "arguments of {client}.{tool} are not JSON-serialisable: {e}"
            ))
        })?;
        let id = host::start_call(client.as_bytes(), tool.as_bytes(), &arguments);
        RUNNING.with(|running| running.borrow_mut().insert(id));
        Ok(id)
    }

    /// Parses JSON `text` into Python objects, natively (the bindings' manifest entries).
    #[pyfunction]
    fn loads(text: PyStrRef, vm: &VirtualMachine) -> PyResult {
        let text = text.to_string_lossy();
        let mut json = serde_json::Deserializer::from_str(&text);
        PyObjectDeserializer::new(vm)
            .deserialize(&mut json)
            .map_err(|e| vm.new_value_error(format!("invalid JSON: {e}")))
    }

    /// Blocks until call `id` has finished; returns the host's response, `{"ok": value}` or
    /// `{"error": {...}}`, as Python objects.
    #[pyfunction]
    fn call_wait(id: i32, vm: &VirtualMachine) -> PyResult {
        if !RUNNING.with(|running| running.borrow_mut().remove(&id)) {
            return Err(vm.new_value_error(format!(
                "no tool call {id} is waiting to be collected: it was never started, or its \
                 answer was already read"
            )));
        }
        let bytes = host::wait_call(id).map_err(|len| {
            vm.new_memory_error(format!(
                "the answer of tool call {id} is {len} bytes, more than the sandbox's memory has left"
            ))
        })?;
        let mut json = serde_json::Deserializer::from_slice(&bytes);
        PyObjectDeserializer::new(vm)
            .deserialize(&mut json)
            .map_err(|e| vm.new_value_error(format!("unreadable tool response: {e}")))
    }
}
