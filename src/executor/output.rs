//! Capped capture of a script's stdout and stderr.
//!
//! Both streams share one byte budget. Past it, writes are counted and dropped, and each stream
//! that lost bytes ends with a visible marker, so a reader can never mistake a truncated
//! output for a complete one.

/// The two captured streams of one execution.
#[derive(Debug)]
pub struct CapturedOutput {
    streams: [Vec<u8>; 2],
    dropped: [u64; 2],
    remaining: usize,
}

/// Which stream a write goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout = 0,
    /// Standard error.
    Stderr = 1,
}

impl CapturedOutput {
    /// An empty capture that keeps at most `cap` bytes in all.
    pub fn new(cap: u64) -> Self {
        CapturedOutput {
            streams: [Vec::new(), Vec::new()],
            dropped: [0, 0],
            remaining: usize::try_from(cap).unwrap_or(usize::MAX),
        }
    }

    /// Appends `bytes` to `stream`, keeping what fits in the budget.
    pub fn write(&mut self, stream: Stream, bytes: &[u8]) {
        let index = stream as usize;
        let keep = floor_char_boundary(bytes, bytes.len().min(self.remaining));
        self.streams[index].extend_from_slice(&bytes[..keep]);
        self.remaining -= keep;
        self.dropped[index] += (bytes.len() - keep) as u64;
    }

    /// Bytes written to both streams, dropped ones included.
    pub fn total_bytes(&self) -> u64 {
        let kept: usize = self.streams.iter().map(Vec::len).sum();
        kept as u64 + self.dropped.iter().sum::<u64>()
    }

    /// True when a write was cut.
    pub fn truncated(&self) -> bool {
        self.dropped.iter().any(|&d| d > 0)
    }

    /// The text of `stream`, with a truncation marker when bytes were dropped.
    pub fn text(&self, stream: Stream) -> String {
        let index = stream as usize;
        let mut text = String::from_utf8_lossy(&self.streams[index]).into_owned();
        if self.dropped[index] > 0 {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&format!(
                "[codemode: output truncated, {} more bytes dropped]\n",
                self.dropped[index]
            ));
        }
        text
    }
}

/// The largest `n <= limit` that does not split a UTF-8 sequence of `bytes`.
fn floor_char_boundary(bytes: &[u8], limit: usize) -> usize {
    if limit >= bytes.len() {
        return bytes.len();
    }
    let mut n = limit;
    // Continuation bytes are 0b10xx_xxxx; back up to the start of the sequence.
    while n > 0 && (bytes[n] & 0xC0) == 0x80 {
        n -= 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_past_the_cap_is_dropped_and_marked() {
        let mut output = CapturedOutput::new(5);
        output.write(Stream::Stdout, b"hello world");
        assert_eq!(output.total_bytes(), 11);
        assert!(output.truncated());
        assert_eq!(
            output.text(Stream::Stdout),
            "hello\n[codemode: output truncated, 6 more bytes dropped]\n"
        );
    }

    #[test]
    fn both_streams_share_the_budget() {
        let mut output = CapturedOutput::new(4);
        output.write(Stream::Stdout, b"abc");
        output.write(Stream::Stderr, b"def");
        assert_eq!(output.text(Stream::Stdout), "abc");
        assert!(
            output
                .text(Stream::Stderr)
                .starts_with("d\n[codemode: output truncated, 2")
        );
    }

    #[test]
    fn truncation_never_splits_a_character() {
        let mut output = CapturedOutput::new(2);
        output.write(Stream::Stdout, "é€".as_bytes());
        assert!(output.text(Stream::Stdout).starts_with("é\n"));
    }
}
