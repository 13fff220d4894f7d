//! `_codemode`: the native Python module through which the runtime reaches the host.
//!
//! It is deliberately thin: strings in, strings out. Policy (which tools exist, who may call them,
//! limits) lives on the host; presentation (exceptions, awaitables) lives in `python/codemode.py`.

pub(crate) use _codemode::module_def;

#[rustpython_vm::pymodule]
mod _codemode {
    use rustpython_vm::{
        PyRef, PyResult, VirtualMachine,
        builtins::{PyCode, PyStrRef},
        compiler::Mode,
    };

    use crate::host;

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

    /// Starts a tool call; `request` is `{"client", "tool", "arguments"}` as JSON.
    #[pyfunction]
    fn call_start(request: PyStrRef) -> i32 {
        host::start_call(request.to_string_lossy().as_bytes())
    }

    /// Blocks until call `id` has finished and returns the host's JSON response.
    #[pyfunction]
    fn call_wait(id: i32) -> String {
        String::from_utf8_lossy(&host::wait_call(id)).into_owned()
    }
}
