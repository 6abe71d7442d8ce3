//! The body of an `xhr_streaming` response (pusher-js's HTTP fallback) as it arrives: HTTP/1.1
//! chunked encoding around SockJS lines — `o`, `h`, `a["message",…]`, `c[code,"reason"]`.
//! [`Lines`] takes the bytes of each read, whatever their boundaries, and hands out each complete
//! line. Pure.

/// Where the decoder is in the chunked encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a chunk-size line.
    Size,
    /// Inside a chunk: this many data bytes left.
    Data(usize),
    /// After a chunk's data: this many bytes of its CRLF left.
    DataEnd(u8),
    /// The last chunk came: the response has ended.
    Done,
}

/// A chunked body split into lines, across reads.
#[derive(Debug)]
pub struct Lines {
    state: State,
    /// The chunk-size line so far.
    size: Vec<u8>,
    /// The current line so far.
    line: Vec<u8>,
}

/// What one SockJS line says.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    Open,
    Heartbeat,
    /// The messages of an `a` line (each a Pusher message's JSON text).
    Messages(Vec<String>),
    Close(String),
}

impl Default for Lines {
    fn default() -> Self {
        Lines {
            state: State::Size,
            size: Vec::new(),
            line: Vec::new(),
        }
    }
}

impl Lines {
    /// Feeds `bytes`, calling `on_line` with each complete line (without its `\n`). `Err` when
    /// the encoding is broken or the response has ended.
    pub fn feed(&mut self, mut bytes: &[u8], mut on_line: impl FnMut(&[u8])) -> Result<(), String> {
        while !bytes.is_empty() {
            match self.state {
                State::Size => {
                    let end = bytes.iter().position(|b| *b == b'\n');
                    let take = end.map_or(bytes.len(), |i| i + 1);
                    self.size.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    if end.is_some() {
                        let size = chunk_size(&self.size)?;
                        self.size.clear();
                        self.state = if size == 0 {
                            State::Done
                        } else {
                            State::Data(size)
                        };
                    } else if self.size.len() > 64 {
                        return Err("chunk-size line too long".to_owned());
                    }
                }
                State::Data(left) => {
                    let take = left.min(bytes.len());
                    for &b in &bytes[..take] {
                        if b == b'\n' {
                            on_line(&self.line);
                            self.line.clear();
                        } else {
                            self.line.push(b);
                        }
                    }
                    bytes = &bytes[take..];
                    self.state = if take == left {
                        State::DataEnd(2)
                    } else {
                        State::Data(left - take)
                    };
                }
                State::DataEnd(left) => {
                    let take = (left as usize).min(bytes.len());
                    bytes = &bytes[take..];
                    self.state = if take == left as usize {
                        State::Size
                    } else {
                        State::DataEnd(left - take as u8)
                    };
                }
                State::Done => return Err("the response ended".to_owned()),
            }
        }
        if self.state == State::Done {
            return Err("the response ended".to_owned());
        }
        Ok(())
    }
}

/// The size in a chunk-size line (`hex[;extensions]\r\n`).
fn chunk_size(line: &[u8]) -> Result<usize, String> {
    let text = std::str::from_utf8(line).map_err(|_| "chunk size not ASCII".to_owned())?;
    let hex = text.trim_end().split(';').next().unwrap_or_default().trim();
    usize::from_str_radix(hex, 16).map_err(|_| format!("bad chunk size {text:?}"))
}

/// Reads one line.
pub fn frame(line: &[u8]) -> Result<Frame, String> {
    let text = std::str::from_utf8(line).map_err(|_| "line not UTF-8".to_owned())?;
    match text.split_at_checked(1) {
        Some(("o", "")) => Ok(Frame::Open),
        Some(("h", "")) => Ok(Frame::Heartbeat),
        Some(("a", array)) => serde_json::from_str(array)
            .map(Frame::Messages)
            .map_err(|e| format!("bad a frame: {e}")),
        Some(("c", close)) => Ok(Frame::Close(close.to_owned())),
        _ => Err(format!("not a SockJS frame: {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(reads: &[&[u8]]) -> (Vec<String>, Result<(), String>) {
        let mut lines = Lines::default();
        let mut out = Vec::new();
        let mut result = Ok(());
        for read in reads {
            result = lines.feed(read, |l| out.push(String::from_utf8(l.to_vec()).unwrap()));
            if result.is_err() {
                break;
            }
        }
        (out, result)
    }

    #[test]
    fn lines_across_any_read_boundaries() {
        let body: &[u8] = b"2\r\no\n\r\nb\r\na[\"x\"]\nh\na[\r\n4\r\n\"y\"]\r\n1\r\n\n\r\n";
        let want = ["o", "a[\"x\"]", "h", "a[\"y\"]"];
        assert_eq!(lines_of(&[body]), (want.map(String::from).to_vec(), Ok(())));
        for split in 1..body.len() {
            let (a, b) = body.split_at(split);
            assert_eq!(lines_of(&[a, b]).0, want, "split at {split}");
        }
        let one_by_one: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(lines_of(&one_by_one).0, want);
    }

    #[test]
    fn the_last_chunk_ends_it() {
        let (lines, result) = lines_of(&[b"2\r\nh\n\r\n0\r\n\r\n"]);
        assert_eq!(lines, ["h"]);
        assert!(result.is_err());
        assert!(lines_of(&[b"zz\r\n"]).1.is_err());
    }

    #[test]
    fn frames() {
        assert_eq!(frame(b"o"), Ok(Frame::Open));
        assert_eq!(frame(b"h"), Ok(Frame::Heartbeat));
        assert_eq!(
            frame(br#"a["{\"event\":\"e\"}","b"]"#),
            Ok(Frame::Messages(vec![r#"{"event":"e"}"#.into(), "b".into()]))
        );
        assert_eq!(
            frame(b"c[4100,\"x\"]"),
            Ok(Frame::Close("[4100,\"x\"]".into()))
        );
        assert!(frame(b"").is_err() && frame(b"x").is_err());
    }
}
