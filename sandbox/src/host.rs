//! The imports of the `codemode` host module: the guest's only ways out of the sandbox.
//!
//! Everything crosses as byte buffers in guest memory; the host checks every pointer and length.
//! Tool requests and responses are UTF-8 JSON. A call is started by `tool_start`, which returns a
//! call id at once (the host runs the call concurrently), and finished by `tool_wait` (block until
//! the response is ready; returns its length) followed by `tool_read` (copy it into a buffer).
#![allow(unsafe_code)]

#[link(wasm_import_module = "codemode")]
unsafe extern "C" {
    fn output(stream: i32, ptr: *const u8, len: usize);
    fn result(ptr: *const u8, len: usize);
    fn tool_start(ptr: *const u8, len: usize) -> i32;
    fn tool_wait(id: i32) -> i32;
    fn tool_read(id: i32, ptr: *mut u8, len: usize);
}

/// Appends text to the execution's stdout (`stream` 1) or stderr (2).
pub fn write_output(stream: i32, bytes: &[u8]) {
    // SAFETY: the host only reads `bytes.len()` bytes from a live slice.
    unsafe { output(stream, bytes.as_ptr(), bytes.len()) }
}

/// Hands the outcome of the run to the host.
pub fn send_result(bytes: &[u8]) {
    // SAFETY: as above, a read of a live slice.
    unsafe { result(bytes.as_ptr(), bytes.len()) }
}

/// Starts a tool call described by a JSON request; returns its call id.
pub fn start_call(request: &[u8]) -> i32 {
    // SAFETY: as above, a read of a live slice.
    unsafe { tool_start(request.as_ptr(), request.len()) }
}

/// Waits for a started call and returns its JSON response.
pub fn wait_call(id: i32) -> Vec<u8> {
    // SAFETY: `tool_wait` takes no pointers; `tool_read` writes at most `len` bytes into a buffer
    // of exactly that length.
    unsafe {
        let len = usize::try_from(tool_wait(id)).unwrap_or(0);
        let mut buffer = vec![0u8; len];
        tool_read(id, buffer.as_mut_ptr(), len);
        buffer
    }
}
