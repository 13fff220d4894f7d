//! One run's memory: the guest's linear memory and what the host holds for the run, under one
//! limit.
//!
//! `memory_mb` bounds the run, not only the guest: the parsed arguments of its calls in flight and
//! the answers waiting for it to read them live on the host, and a script could otherwise make
//! the host hold far more than its limit (a thousand slow calls with a megabyte of arguments
//! each). So the host charges those buffers here before it builds them, guest growth is refused
//! when guest and host together would pass the limit, and a host charge is refused likewise.

use wasmtime::ResourceLimiter;

/// Tables hold function references; RustPython's needs a few thousand entries.
pub(crate) const MAX_TABLE_ELEMENTS: usize = 1 << 16;

/// A host charge that did not fit: the run has `available` bytes left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OverBudget {
    pub(crate) available: usize,
}

/// The memory of one run, in bytes.
#[derive(Debug)]
pub(crate) struct RunMemory {
    max_bytes: usize,
    guest_bytes: usize,
    host_bytes: usize,
    peak_bytes: usize,
    refused: bool,
}

impl RunMemory {
    pub(crate) fn new(max_bytes: usize) -> Self {
        RunMemory {
            max_bytes,
            guest_bytes: 0,
            host_bytes: 0,
            peak_bytes: 0,
            refused: false,
        }
    }

    /// Bytes the run may still use, on either side.
    pub(crate) fn available(&self) -> usize {
        self.max_bytes
            .saturating_sub(self.guest_bytes)
            .saturating_sub(self.host_bytes)
    }

    /// Counts `bytes` the host is about to hold for the run, or refuses them.
    pub(crate) fn charge(&mut self, bytes: usize) -> Result<(), OverBudget> {
        let available = self.available();
        if bytes > available {
            self.refused = true;
            return Err(OverBudget { available });
        }
        self.host_bytes += bytes;
        self.peak_bytes = self.peak_bytes.max(self.guest_bytes + self.host_bytes);
        Ok(())
    }

    /// The host no longer holds `bytes` it charged.
    pub(crate) fn release(&mut self, bytes: usize) {
        self.host_bytes = self.host_bytes.saturating_sub(bytes);
    }

    /// The most the run held at once, guest and host together.
    pub(crate) fn peak_bytes(&self) -> usize {
        self.peak_bytes
    }

    /// True once growth or a host charge was refused: the memory limit fired.
    pub(crate) fn refused(&self) -> bool {
        self.refused
    }
}

impl ResourceLimiter for RunMemory {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired.saturating_add(self.host_bytes) > self.max_bytes {
            self.refused = true;
            return Ok(false);
        }
        self.guest_bytes = desired;
        self.peak_bytes = self.peak_bytes.max(desired + self.host_bytes);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    // One module, one instance, one memory, one table: nothing more may ever be created.
    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        1
    }

    fn memories(&self) -> usize {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_and_host_share_one_limit() {
        let mut memory = RunMemory::new(100);
        assert_eq!(memory.memory_growing(0, 60, None).ok(), Some(true));
        assert_eq!(memory.charge(50), Err(OverBudget { available: 40 }));
        assert!(memory.refused());
        assert_eq!(memory.charge(40), Ok(()));
        assert_eq!(memory.memory_growing(60, 61, None).ok(), Some(false));
        memory.release(40);
        assert_eq!(memory.memory_growing(60, 90, None).ok(), Some(true));
        assert_eq!(memory.peak_bytes(), 100);
    }
}
