//! The event-stream format's decoding (the WHATWG `text/event-stream` rules we need): bytes in,
//! each dispatched event's data out. Lines end in LF, CRLF or CR (a CR LF split between reads
//! is one end); `data` lines of one event are joined with LF; comments, `id`, `retry` and
//! `event: keepalive` events are skipped.

/// Incremental event-stream decoder: bytes in, each dispatched event's data out.
#[derive(Default)]
pub(super) struct SseDecoder {
    /// Bytes not yet split into lines.
    pending: Vec<u8>,
    /// The data of the event being read (its `data` lines joined with LF).
    data: Vec<u8>,
    has_data: bool,
    /// The event being read is a keep-alive (`event: keepalive`): dropped when dispatched.
    keepalive: bool,
}

impl SseDecoder {
    /// Feeds the next bytes of the body; `on_data` gets the data of each event they end.
    pub fn push(&mut self, bytes: &[u8], on_data: &mut impl FnMut(&[u8])) {
        if self.pending.is_empty() {
            let used = self.lines(bytes, on_data);
            self.pending.extend_from_slice(&bytes[used..]);
            return;
        }
        let mut pending = std::mem::take(&mut self.pending);
        pending.extend_from_slice(bytes);
        let used = self.lines(&pending, on_data);
        pending.drain(..used);
        self.pending = pending;
    }

    /// Reads the whole lines of `buf`; how many bytes they took.
    fn lines(&mut self, buf: &[u8], on_data: &mut impl FnMut(&[u8])) -> usize {
        let mut start = 0;
        while let Some(offset) = memchr::memchr2(b'\n', b'\r', &buf[start..]) {
            let end = start + offset;
            let next = match buf[end] {
                b'\r' if end + 1 == buf.len() => break, // a CR LF may be split between pushes
                b'\r' if buf[end + 1] == b'\n' => end + 2,
                _ => end + 1,
            };
            self.line(&buf[start..end], on_data);
            start = next;
        }
        start
    }

    /// The body ended: the last line and an event without its closing blank line count
    /// (some servers omit the blank line after the last event).
    pub fn end(&mut self, on_data: &mut impl FnMut(&[u8])) {
        let last = std::mem::take(&mut self.pending);
        let last = last.strip_suffix(b"\r").unwrap_or(&last);
        if !last.is_empty() {
            self.line(last, on_data);
        }
        self.dispatch(on_data);
    }

    fn line(&mut self, line: &[u8], on_data: &mut impl FnMut(&[u8])) {
        if line.is_empty() {
            return self.dispatch(on_data);
        }
        if line[0] == b':' {
            return; // a comment
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => self.keepalive = value == b"keepalive",
            _ => {} // id, retry and unknown fields
        }
    }

    /// The event ends: its data to `on_data` (the buffer is kept for the next event's).
    fn dispatch(&mut self, on_data: &mut impl FnMut(&[u8])) {
        if self.has_data && !self.keepalive {
            on_data(&self.data);
        }
        self.data.clear();
        self.has_data = false;
        self.keepalive = false;
    }
}

#[cfg(test)]
mod tests {
    use super::SseDecoder;

    fn events(pushes: &[&[u8]], end: bool) -> Vec<String> {
        let mut decoder = SseDecoder::default();
        let mut out = Vec::new();
        let mut on_data = |data: &[u8]| out.push(String::from_utf8(data.to_vec()).unwrap());
        for bytes in pushes {
            decoder.push(bytes, &mut on_data);
        }
        if end {
            decoder.end(&mut on_data);
        }
        out
    }

    #[test]
    fn each_blank_line_dispatches_the_data_before_it() {
        let body = b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: [DONE]\n\n";
        assert_eq!(events(&[body], false), ["{\"a\":1}", "{\"b\":2}", "[DONE]"]);
    }

    #[test]
    fn events_split_anywhere_between_reads_come_out_whole() {
        let body = b"event: response.output_text.delta\r\ndata: {\"x\":\"\xc3\xa9\"}\r\n\r\ndata: 2\r\n\r\n";
        let whole = events(&[body], false);
        assert_eq!(whole, ["{\"x\":\"\u{e9}\"}", "2"]);
        for cut in 1..body.len() {
            let (a, b) = body.split_at(cut);
            assert_eq!(events(&[a, b], false), whole, "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(events(&bytes, false), whole);
    }

    #[test]
    fn lf_crlf_and_cr_all_end_lines() {
        assert_eq!(
            events(&[b"data: a\rdata: b\r\rdata: c\n\n"], false),
            ["a\nb", "c"]
        );
        assert_eq!(events(&[b"data: a\r\n\r\n"], false), ["a"]);
        // A CR at the end of a read waits for the next one: a CR LF split in two is one end.
        assert_eq!(events(&[b"data: a\r", b"\n\r\n"], false), ["a"]);
    }

    #[test]
    fn comments_keepalives_and_other_fields_are_skipped() {
        let body = b": ping\n\nevent: keepalive\ndata: {}\n\nid: 7\nretry: 10\nbogus\ndata:x\n\n";
        assert_eq!(events(&[body], false), ["x"]);
    }

    #[test]
    fn data_lines_of_one_event_join_with_lf_and_one_leading_space_goes() {
        assert_eq!(
            events(&[b"data:  two spaces\ndata:\ndata: c\n\n"], false),
            [" two spaces\n\nc"]
        );
    }

    #[test]
    fn an_event_without_its_blank_line_counts_when_the_body_ends() {
        assert_eq!(events(&[b"data: last"], false), Vec::<String>::new());
        assert_eq!(events(&[b"data: last"], true), ["last"]);
        assert_eq!(events(&[b"data: last\r"], true), ["last"]);
        assert_eq!(events(&[b"data: a\n\n"], true), ["a"]);
    }
}
