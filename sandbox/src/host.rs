//! The imports of the `codemode` host module: the guest's only ways out of the sandbox.
//!
//! Everything crosses as byte buffers in guest memory; the host checks every pointer and length.
//! A call is started by `tool_start` with three buffers (the client's and the tool's UTF-8 names,
//! the arguments as JSON), so the host can size each before it reads any; it returns a call id at
//! once (the host runs the call concurrently). It is finished by `tool_wait` (block until the
//! response is ready; returns its length) followed by `tool_read` (copy the JSON response into a
//! buffer). `panic` hands the host the interpreter's last words before it aborts.
#![allow(unsafe_code)]

#[link(wasm_import_module = "codemode")]
unsafe extern "C" {
    fn output(stream: i32, ptr: *const u8, len: usize);
    fn result(ptr: *const u8, len: usize);
    fn tool_start(
        client: *const u8,
        client_len: usize,
        tool: *const u8,
        tool_len: usize,
        arguments: *const u8,
        arguments_len: usize,
    ) -> i32;
    fn tool_wait(id: i32) -> i32;
    fn tool_read(id: i32, ptr: *mut u8, len: usize);
    fn panic(ptr: *const u8, len: usize);
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

/// Starts `client`'s `tool` with `arguments` (a JSON object); returns its call id.
pub fn start_call(client: &[u8], tool: &[u8], arguments: &[u8]) -> i32 {
    // SAFETY: as above, reads of live slices.
    unsafe {
        tool_start(
            client.as_ptr(),
            client.len(),
            tool.as_ptr(),
            tool.len(),
            arguments.as_ptr(),
            arguments.len(),
        )
    }
}

/// Waits for a started call and returns its JSON response, or the response's length when the
/// guest has no memory left for it.
pub fn wait_call(id: i32) -> Result<Vec<u8>, usize> {
    // SAFETY: `tool_wait` takes no pointers.
    let len = usize::try_from(unsafe { tool_wait(id) }).unwrap_or(0);
    let mut buffer = Vec::new();
    if buffer.try_reserve_exact(len).is_err() {
        // SAFETY: a read of length 0 writes nothing; it tells the host to drop the response.
        unsafe { tool_read(id, std::ptr::null_mut(), 0) };
        return Err(len);
    }
    buffer.resize(len, 0);
    // SAFETY: `tool_read` writes at most `len` bytes into a buffer of exactly that length.
    unsafe { tool_read(id, buffer.as_mut_ptr(), len) };
    Ok(buffer)
}

/// Tells the host why the interpreter is about to abort.
pub fn report_panic(message: &str) {
    // SAFETY: as above, a read of a live slice.
    unsafe { panic(message.as_ptr(), message.len()) }
}
