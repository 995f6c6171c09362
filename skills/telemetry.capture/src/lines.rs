//! Reading `events.jsonl` one line at a time, forwards or backwards, in constant memory.
//!
//! Both readers hand out borrowed slices of a fixed-size buffer, so a 1 GB file costs the same
//! memory as a 1 KB one. A line longer than the limit is not buffered: it is skipped and reported
//! as [`Item::TooLong`]. A last line without its newline (a writer killed mid-write) is reported
//! with `complete: false`, so callers can tell a torn record from a whole one.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// How much is read from the file at a time.
const CHUNK: usize = 1 << 20;

/// One thing a reader found.
#[derive(Debug)]
pub enum Item<'a> {
    /// A line without its newline. `complete` is false for a last line that has no newline.
    Line {
        bytes: &'a [u8],
        offset: u64,
        complete: bool,
    },
    /// A line over the length limit, skipped without being buffered.
    TooLong { offset: u64, len: u64 },
}

/// Reads lines front to back from a byte offset.
pub struct ForwardLines {
    file: File,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// File offset of `buf[start]`.
    pos: u64,
    eof: bool,
    max_line: usize,
}

impl ForwardLines {
    pub fn open(path: &Path, offset: u64, max_line: usize) -> std::io::Result<ForwardLines> {
        let mut file = betty_core::fsx::open_regular_io(path)?;
        file.seek(SeekFrom::Start(offset))?;
        Ok(ForwardLines {
            file,
            buf: vec![0; CHUNK.max(max_line + 1)],
            start: 0,
            end: 0,
            pos: offset,
            eof: false,
            max_line,
        })
    }

    /// Offset of the first byte not yet handed out.
    pub fn position(&self) -> u64 {
        self.pos
    }

    fn fill(&mut self) -> std::io::Result<usize> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            return Ok(0);
        }
        let n = self.file.read(&mut self.buf[self.end..])?;
        if n == 0 {
            self.eof = true;
        }
        self.end += n;
        Ok(n)
    }

    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> std::io::Result<Option<Item<'_>>> {
        loop {
            let avail = &self.buf[self.start..self.end];
            if let Some(i) = memchr::memchr(b'\n', avail) {
                let offset = self.pos;
                let s = self.start;
                self.start += i + 1;
                self.pos += i as u64 + 1;
                if i > self.max_line {
                    return Ok(Some(Item::TooLong {
                        offset,
                        len: i as u64,
                    }));
                }
                return Ok(Some(Item::Line {
                    bytes: &self.buf[s..s + i],
                    offset,
                    complete: true,
                }));
            }
            if self.eof {
                if self.start == self.end {
                    return Ok(None);
                }
                let (s, e) = (self.start, self.end);
                let offset = self.pos;
                self.start = e;
                self.pos += (e - s) as u64;
                if e - s > self.max_line {
                    return Ok(Some(Item::TooLong {
                        offset,
                        len: (e - s) as u64,
                    }));
                }
                return Ok(Some(Item::Line {
                    bytes: &self.buf[s..e],
                    offset,
                    complete: false,
                }));
            }
            if self.end - self.start > self.max_line {
                // Too long: skip to the next newline without keeping the bytes.
                let offset = self.pos;
                let mut len = (self.end - self.start) as u64;
                self.start = 0;
                self.end = 0;
                loop {
                    let n = self.file.read(&mut self.buf[..])?;
                    if n == 0 {
                        self.eof = true;
                        self.pos = offset + len;
                        return Ok(Some(Item::TooLong { offset, len }));
                    }
                    if let Some(i) = memchr::memchr(b'\n', &self.buf[..n]) {
                        len += i as u64;
                        self.start = i + 1;
                        self.end = n;
                        self.pos = offset + len + 1;
                        return Ok(Some(Item::TooLong { offset, len }));
                    }
                    len += n as u64;
                }
            }
            self.fill()?;
        }
    }
}

/// Reads lines back to front, ending at `end` (a file length or a line start).
pub struct ReverseLines {
    file: File,
    /// Holds file bytes `[buf_off, buf_off + len)`, not yet handed out.
    buf: Vec<u8>,
    len: usize,
    buf_off: u64,
    /// Whether the next line handed out is the file's last (which may lack its newline).
    at_end: bool,
    max_line: usize,
    spare: Vec<u8>,
}

impl ReverseLines {
    pub fn open(path: &Path, end: u64, max_line: usize) -> std::io::Result<ReverseLines> {
        let file = betty_core::fsx::open_regular_io(path)?;
        let file_len = file.metadata()?.len();
        Ok(ReverseLines {
            file,
            buf: Vec::with_capacity(CHUNK),
            len: 0,
            buf_off: end.min(file_len),
            at_end: end >= file_len,
            max_line,
            spare: Vec::with_capacity(CHUNK),
        })
    }

    /// Reads the chunk before what is buffered and puts it in front. Returns false at offset 0.
    fn prepend(&mut self) -> std::io::Result<bool> {
        if self.buf_off == 0 {
            return Ok(false);
        }
        let n = (self.buf_off as usize).min(CHUNK);
        let from = self.buf_off - n as u64;
        self.spare.clear();
        self.spare.resize(n, 0);
        self.file.seek(SeekFrom::Start(from))?;
        self.file.read_exact(&mut self.spare)?;
        self.spare.extend_from_slice(&self.buf[..self.len]);
        std::mem::swap(&mut self.buf, &mut self.spare);
        self.len = self.buf.len();
        self.buf_off = from;
        Ok(true)
    }

    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> std::io::Result<Option<Item<'_>>> {
        // The buffered region ends at a line end (after its newline) or at the file end.
        loop {
            if self.len == 0 && !self.prepend()? {
                return Ok(None);
            }
            let has_nl = self.buf[self.len - 1] == b'\n';
            let content_end = if has_nl { self.len - 1 } else { self.len };
            if let Some(i) = memchr::memrchr(b'\n', &self.buf[..content_end]) {
                let complete = has_nl || !self.at_end;
                self.at_end = false;
                let offset = self.buf_off + i as u64 + 1;
                let line_len = content_end - (i + 1);
                self.len = i + 1;
                if line_len > self.max_line {
                    return Ok(Some(Item::TooLong {
                        offset,
                        len: line_len as u64,
                    }));
                }
                return Ok(Some(Item::Line {
                    bytes: &self.buf[i + 1..content_end],
                    offset,
                    complete,
                }));
            }
            if self.buf_off == 0 {
                let complete = has_nl || !self.at_end;
                self.at_end = false;
                self.len = 0;
                if content_end > self.max_line {
                    return Ok(Some(Item::TooLong {
                        offset: 0,
                        len: content_end as u64,
                    }));
                }
                return Ok(Some(Item::Line {
                    bytes: &self.buf[..content_end],
                    offset: 0,
                    complete,
                }));
            }
            if content_end > self.max_line {
                // Too long: walk back to the previous newline without keeping the bytes.
                let line_end = self.buf_off + content_end as u64;
                self.at_end = false;
                loop {
                    let n = (self.buf_off as usize).min(CHUNK);
                    let from = self.buf_off - n as u64;
                    self.buf.clear();
                    self.buf.resize(n, 0);
                    self.file.seek(SeekFrom::Start(from))?;
                    self.file.read_exact(&mut self.buf)?;
                    self.buf_off = from;
                    if let Some(i) = memchr::memrchr(b'\n', &self.buf) {
                        self.len = i + 1;
                        let offset = from + i as u64 + 1;
                        return Ok(Some(Item::TooLong {
                            offset,
                            len: line_end - offset,
                        }));
                    }
                    if from == 0 {
                        self.len = 0;
                        return Ok(Some(Item::TooLong {
                            offset: 0,
                            len: line_end,
                        }));
                    }
                }
            }
            self.prepend()?;
        }
    }
}

/// The 1-based line number of the line starting at `offset` (counts newlines before it).
pub fn line_number_at(path: &Path, offset: u64) -> std::io::Result<u64> {
    let mut f = betty_core::fsx::open_regular_io(path)?.take(offset);
    let mut buf = vec![0u8; CHUNK];
    let mut lines = 1u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(lines);
        }
        lines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
    }
}

/// The offset of the first line that starts at or after `offset`.
pub fn next_line_start(file: &mut File, offset: u64) -> std::io::Result<u64> {
    if offset == 0 {
        return Ok(0);
    }
    file.seek(SeekFrom::Start(offset - 1))?;
    let mut buf = [0u8; 4096];
    let mut pos = offset - 1;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(pos);
        }
        if let Some(i) = memchr::memchr(b'\n', &buf[..n]) {
            return Ok(pos + i as u64 + 1);
        }
        pos += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forward(text: &[u8], max: usize) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, text).unwrap();
        let mut r = ForwardLines::open(&p, 0, max).unwrap();
        let mut out = Vec::new();
        while let Some(item) = r.next().unwrap() {
            out.push(describe(item));
        }
        out
    }

    fn reverse(text: &[u8], max: usize) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, text).unwrap();
        let mut r = ReverseLines::open(&p, text.len() as u64, max).unwrap();
        let mut out = Vec::new();
        while let Some(item) = r.next().unwrap() {
            out.push(describe(item));
        }
        out.reverse();
        out
    }

    fn describe(item: Item<'_>) -> String {
        match item {
            Item::Line {
                bytes,
                offset,
                complete,
            } => format!(
                "{offset}:{}{}",
                String::from_utf8_lossy(bytes),
                if complete { "" } else { "(torn)" }
            ),
            Item::TooLong { offset, len } => format!("{offset}:long{len}"),
        }
    }

    #[test]
    fn both_directions_agree() {
        let cases: Vec<(Vec<u8>, usize)> = vec![
            (b"a\nbb\nccc\n".to_vec(), 10),
            (b"a\nbb\nccc".to_vec(), 10),
            (b"\n\na\n".to_vec(), 10),
            (b"a\nxxxxxxxxxxxxxxxxxxxx\nb\n".to_vec(), 5),
            (b"xxxxxxxxxxxxxxxx".to_vec(), 5),
            (b"".to_vec(), 5),
        ];
        for (text, max) in cases {
            assert_eq!(forward(&text, max), reverse(&text, max), "{text:?}");
        }
        assert_eq!(
            forward(b"a\nbb\nccc", 10),
            vec!["0:a", "2:bb", "5:ccc(torn)"]
        );
        assert_eq!(
            forward(b"a\nxxxxxxx\nb\n", 3),
            vec!["0:a", "2:long7", "10:b"]
        );
    }

    #[test]
    fn large_file_across_chunks() {
        let mut text = Vec::new();
        for i in 0..300_000 {
            text.extend_from_slice(format!("line {i}\n").as_bytes());
        }
        let f = forward(&text, 100);
        assert_eq!(f.len(), 300_000);
        assert_eq!(f, reverse(&text, 100));
    }

    #[test]
    fn line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"a\nbb\nccc\n").unwrap();
        assert_eq!(line_number_at(&p, 0).unwrap(), 1);
        assert_eq!(line_number_at(&p, 5).unwrap(), 3);
        let mut f = File::open(&p).unwrap();
        assert_eq!(next_line_start(&mut f, 1).unwrap(), 2);
        assert_eq!(next_line_start(&mut f, 2).unwrap(), 2);
        assert_eq!(next_line_start(&mut f, 3).unwrap(), 5);
    }
}
