//! Python 3.11's `email.feedparser.FeedParser` with the compat32 policy, as Mailman 3's
//! `email.message_from_string(text, Message)` runs it on a text entry. Defects are not
//! kept: none of them changes what is delivered.

use super::params;
use crate::model::{Error, HeaderValue, Message, PartPath, Payload, Text};
use mailqueue_pickle::PyStr;
use std::collections::VecDeque;

/// The class every part of a parsed entry gets (the factory Mailman passes).
const MESSAGE_CLASS: &str = "mailman.email.message.Message";
/// Nesting beyond this is refused rather than risking the stack; Python itself gives up
/// (RecursionError) well before it.
const MAX_DEPTH: usize = 300;

/// Parses a text entry into a message tree, exactly as Mailman 3 does.
pub fn parse(text: &PyStr) -> Result<Message, Error> {
    let data = text.as_wtf8();
    let mut p = Parser {
        lines: split_lines(data),
        eofstack: Vec::new(),
        nodes: Vec::new(),
        stack: Vec::new(),
        cur: None,
        last: None,
    };
    p.parsegen(0)?;
    let root = p.stack.pop().ok_or_else(|| bad("the parser produced no message"))?;
    p.build(root, 0)
}

fn bad(problem: &str) -> Error {
    Error::Unrepresentable { part: PartPath::default(), problem: problem.to_owned() }
}

/// Lines with their endings, split as `StringIO(newline='').readlines()` does: at CRLF,
/// lone CR and LF. WTF-8 keeps these ASCII bytes intact, so bytes are split directly.
fn split_lines(data: &[u8]) -> VecDeque<&[u8]> {
    let mut lines = VecDeque::new();
    let mut start = 0;
    let mut i = 0;
    while i < data.len() {
        let end = match data[i] {
            b'\r' if data.get(i + 1) == Some(&b'\n') => i + 2,
            b'\r' | b'\n' => i + 1,
            _ => {
                i += 1;
                continue;
            }
        };
        lines.push_back(&data[start..end]);
        start = end;
        i = end;
    }
    if start < data.len() {
        lines.push_back(&data[start..]);
    }
    lines
}

/// What makes `BufferedSubFile.readline` report a false end of file.
enum EofMatcher {
    /// `NLCRE.match`: a line starting with a line break (between delivery-status blocks).
    BlankLine,
    /// `boundaryre.match` for this separator (`--` + boundary).
    Boundary(Vec<u8>),
}

impl EofMatcher {
    fn matches(&self, line: &[u8]) -> bool {
        match self {
            EofMatcher::BlankLine => starts_with_newline(line),
            EofMatcher::Boundary(sep) => boundary_match(sep, line).is_some(),
        }
    }
}

struct BoundaryMatch {
    end: bool,
    has_linesep: bool,
}

/// `(?P<sep>--boundary)(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$`, matched at
/// the start of a line (which holds at most one line break, at its end).
fn boundary_match(sep: &[u8], line: &[u8]) -> Option<BoundaryMatch> {
    let rest = line.strip_prefix(sep)?;
    let tail = |r: &[u8]| -> Option<bool> {
        let r = &r[r.iter().take_while(|&&c| c == b' ' || c == b'\t').count()..];
        match r {
            b"" => Some(false),
            b"\r\n" | b"\r" | b"\n" => Some(true),
            _ => None,
        }
    };
    if let Some(after) = rest.strip_prefix(b"--") {
        if let Some(has_linesep) = tail(after) {
            return Some(BoundaryMatch { end: true, has_linesep });
        }
    }
    tail(rest).map(|has_linesep| BoundaryMatch { end: false, has_linesep })
}

fn starts_with_newline(line: &[u8]) -> bool {
    matches!(line.first(), Some(b'\r' | b'\n'))
}

/// `headerRE`: `From `, a field name and colon, or continuation whitespace.
fn is_header_line(line: &[u8]) -> bool {
    if line.starts_with(b"From ") || matches!(line.first(), Some(b' ' | b'\t')) {
        return true;
    }
    let name_len = line.iter().take_while(|&&c| (0x21..=0x7e).contains(&c) && c != b':').count();
    line.get(name_len) == Some(&b':')
}

/// `NLCRE_eol`: the one line break at the very end, if any.
fn strip_eol(s: &[u8]) -> &[u8] {
    s.strip_suffix(b"\r\n").or_else(|| s.strip_suffix(b"\r")).or_else(|| s.strip_suffix(b"\n")).unwrap_or(s)
}

struct Parser<'a> {
    /// Unread lines; an empty slice is the `''` that `unreadline('')` can push back,
    /// which reads as one more end of file.
    lines: VecDeque<&'a [u8]>,
    eofstack: Vec<EofMatcher>,
    /// Every message created, in creation order; children are linked by index.
    nodes: Vec<Node>,
    stack: Vec<usize>,
    cur: Option<usize>,
    last: Option<usize>,
}

struct Node {
    msg: Message,
    children: Vec<usize>,
}

impl<'a> Parser<'a> {
    /// `readline`: the next line, or empty at the end or where a matcher says so.
    fn readline(&mut self) -> &'a [u8] {
        let Some(line) = self.lines.pop_front() else { return b"" };
        if self.eofstack.iter().rev().any(|m| m.matches(line)) {
            self.lines.push_front(line);
            return b"";
        }
        line
    }

    fn unreadline(&mut self, line: &'a [u8]) {
        self.lines.push_front(line);
    }

    fn rest(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let line = self.readline();
            if line.is_empty() {
                return out;
            }
            out.extend_from_slice(line);
        }
    }

    fn cur(&mut self) -> Result<&mut Message, Error> {
        let i = self.cur.ok_or_else(|| bad("parser state lost its current message"))?;
        self.nodes.get_mut(i).map(|n| &mut n.msg).ok_or_else(|| bad("parser state is inconsistent"))
    }

    fn new_message(&mut self) {
        let mut msg = Message::new(MESSAGE_CLASS, "text/plain");
        msg.policy = Some(super::COMPAT32.to_owned());
        if let Some(c) = self.cur {
            if params::content_type(&self.nodes[c].msg) == "multipart/digest" {
                msg.default_type = Text::from("message/rfc822");
            }
        }
        let idx = self.nodes.len();
        self.nodes.push(Node { msg, children: Vec::new() });
        if let Some(&parent) = self.stack.last() {
            self.nodes[parent].children.push(idx);
        }
        self.stack.push(idx);
        self.cur = Some(idx);
        self.last = Some(idx);
    }

    fn pop_message(&mut self) -> Option<usize> {
        let popped = self.stack.pop();
        self.cur = self.stack.last().copied();
        popped
    }

    fn parsegen(&mut self, depth: usize) -> Result<(), Error> {
        if depth > MAX_DEPTH {
            return Err(bad("message parts are nested too deeply"));
        }
        self.new_message();
        let mut headers = Vec::new();
        loop {
            let line = self.readline();
            if line.is_empty() {
                break;
            }
            if !is_header_line(line) {
                if !starts_with_newline(line) {
                    // MissingHeaderBodySeparatorDefect: the line starts the body.
                    self.unreadline(line);
                }
                break;
            }
            headers.push(line);
        }
        self.parse_headers(&headers)?;
        let ctype = params::content_type(self.cur()?);
        if ctype == "message/delivery-status" {
            loop {
                self.eofstack.push(EofMatcher::BlankLine);
                self.parsegen(depth + 1)?;
                self.pop_message();
                self.eofstack.pop();
                self.readline();
                let line = self.readline();
                if line.is_empty() {
                    break;
                }
                self.unreadline(line);
            }
            return Ok(());
        }
        if ctype.split('/').next() == Some("message") {
            self.parsegen(depth + 1)?;
            self.pop_message();
            return Ok(());
        }
        if ctype.split('/').next() == Some("multipart") {
            return self.parse_multipart(depth);
        }
        let body = self.rest();
        self.cur()?.payload = Payload::Text(text(&body)?);
        Ok(())
    }

    fn parse_multipart(&mut self, depth: usize) -> Result<(), Error> {
        let Some(boundary) = params::boundary(self.cur()?) else {
            // NoBoundaryInMultipartDefect: the body stays one string.
            let body = self.rest();
            self.cur()?.payload = Payload::Text(text(&body)?);
            return Ok(());
        };
        let sep = [b"--".as_slice(), boundary.as_bytes()].concat();
        let mut capturing_preamble = true;
        let mut preamble: Vec<&[u8]> = Vec::new();
        let mut linesep = false;
        let mut close_boundary_seen = false;
        loop {
            let line = self.readline();
            if line.is_empty() {
                break;
            }
            let Some(mo) = boundary_match(&sep, line) else {
                preamble.push(line);
                continue;
            };
            if mo.end {
                close_boundary_seen = true;
                linesep = mo.has_linesep;
                break;
            }
            if capturing_preamble {
                if let Some(last) = preamble.last_mut() {
                    *last = strip_eol(last);
                    let joined = preamble.concat();
                    self.cur()?.preamble = Some(text(&joined)?);
                }
                capturing_preamble = false;
                self.unreadline(line);
                continue;
            }
            // Repeated boundary lines in a row start one part.
            loop {
                let line = self.readline();
                if boundary_match(&sep, line).is_none() {
                    self.unreadline(line);
                    break;
                }
            }
            self.eofstack.push(EofMatcher::Boundary(sep.clone()));
            self.parsegen(depth + 1)?;
            self.trim_last_part()?;
            self.eofstack.pop();
            self.pop_message();
            self.last = self.cur;
        }
        if capturing_preamble {
            // StartBoundaryNotFoundDefect: the body is the text seen so far; the rest
            // is read and dropped, and the epilogue is empty.
            let body = preamble.concat();
            self.cur()?.payload = Payload::Text(text(&body)?);
            self.rest();
            self.cur()?.epilogue = Some(Text::Str(PyStr::new()));
            return Ok(());
        }
        if !close_boundary_seen {
            // CloseBoundaryNotFoundDefect.
            return Ok(());
        }
        let mut epilogue = self.rest();
        if !linesep {
            let first_line_break = match epilogue.as_slice() {
                [b'\r', b'\n', ..] => 2,
                [b'\r' | b'\n', ..] => 1,
                _ => 0,
            };
            epilogue.drain(..first_line_break);
        }
        self.cur()?.epilogue = Some(text(&epilogue)?);
        Ok(())
    }

    /// The line break before a boundary belongs to the boundary: take it off the last
    /// message created (its epilogue if it is a multipart, else its text body).
    fn trim_last_part(&mut self) -> Result<(), Error> {
        let Some(last) = self.last else { return Ok(()) };
        let msg = &mut self.nodes[last].msg;
        if params::content_type(msg).split('/').next() == Some("multipart") {
            match &msg.epilogue {
                Some(Text::Str(e)) if e.is_empty() => msg.epilogue = None,
                Some(Text::Str(e)) => msg.epilogue = Some(text(strip_eol(e.as_wtf8()))?),
                _ => {}
            }
        } else if let Payload::Text(Text::Str(p)) = &msg.payload {
            msg.payload = Payload::Text(text(strip_eol(p.as_wtf8()))?);
        }
        Ok(())
    }

    /// `_parse_headers`: fields with their continuation lines, the Unix From line.
    fn parse_headers(&mut self, lines: &[&'a [u8]]) -> Result<(), Error> {
        let mut current: Vec<&[u8]> = Vec::new();
        for (lineno, &line) in lines.iter().enumerate() {
            if matches!(line.first(), Some(b' ' | b'\t')) {
                // A continuation with no field before it is dropped (a defect).
                if !current.is_empty() {
                    current.push(line);
                }
                continue;
            }
            self.flush_header(&mut current)?;
            if line.starts_with(b"From ") {
                if lineno == 0 {
                    self.cur()?.unixfrom = Some(text(strip_eol(line))?);
                } else if lineno == lines.len() - 1 {
                    self.unreadline(line);
                    return Ok(());
                }
                continue;
            }
            match line.iter().position(|&c| c == b':') {
                Some(i) if i > 0 => current.push(line),
                // A line starting with a colon has no name (a defect); skipped.
                _ => {}
            }
        }
        self.flush_header(&mut current)
    }

    /// compat32 `header_source_parse`: name up to the first colon; value with leading
    /// blanks removed, continuation lines appended as they are, trailing CR/LF removed.
    fn flush_header(&mut self, current: &mut Vec<&[u8]>) -> Result<(), Error> {
        let Some((first, rest)) = current.split_first() else { return Ok(()) };
        let colon = first.iter().position(|&c| c == b':').unwrap_or(first.len());
        let name = &first[..colon];
        let after = first.get(colon + 1..).unwrap_or(b"");
        let mut value: Vec<u8> = after[after.iter().take_while(|&&c| c == b' ' || c == b'\t').count()..].to_vec();
        for l in rest {
            value.extend_from_slice(l);
        }
        while matches!(value.last(), Some(b'\r' | b'\n')) {
            value.pop();
        }
        let header = (text(name)?, HeaderValue::Text(text(&value)?));
        self.cur()?.headers.push(header);
        current.clear();
        Ok(())
    }

    fn build(&mut self, idx: usize, depth: usize) -> Result<Message, Error> {
        if depth > MAX_DEPTH + 1 {
            return Err(bad("message parts are nested too deeply"));
        }
        let children = std::mem::take(&mut self.nodes[idx].children);
        let mut parts = Vec::with_capacity(children.len());
        for c in children {
            parts.push(self.build(c, depth + 1)?);
        }
        let mut msg = std::mem::replace(&mut self.nodes[idx].msg, Message::new(MESSAGE_CLASS, "text/plain"));
        if !parts.is_empty() {
            msg.payload = Payload::Parts(parts);
        }
        Ok(msg)
    }
}

fn text(bytes: &[u8]) -> Result<Text, Error> {
    PyStr::from_wtf8(bytes.to_vec()).map(Text::Str).map_err(|e| bad(&format!("parsed text is not valid: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> Message {
        parse(&PyStr::from(s)).unwrap()
    }

    fn body(m: &Message) -> String {
        match &m.payload {
            Payload::Text(t) => t.to_string_lossy(),
            _ => panic!("not a text payload: {:?}", m.payload),
        }
    }

    #[test]
    fn headers_and_body() {
        let m = parse_str("From someone Mon Jan 1\nSubject: a\n  b\nTo: x\n\nbody\n");
        assert_eq!(m.unixfrom, Some(Text::from("From someone Mon Jan 1")));
        assert_eq!(m.headers.len(), 2);
        assert_eq!(m.headers[0].1, HeaderValue::Text(Text::from("a\n  b")));
        assert_eq!(body(&m), "body\n");
    }

    #[test]
    fn multipart_with_preamble_and_epilogue() {
        let m = parse_str(
            "Content-Type: multipart/mixed; boundary=XX\n\npre\n--XX\n\none\n--XX\nContent-Type: text/html\n\ntwo\n--XX--\nepi\n",
        );
        assert_eq!(m.preamble, Some(Text::from("pre")));
        assert_eq!(m.epilogue, Some(Text::from("epi\n")));
        let Payload::Parts(parts) = &m.payload else { panic!("not multipart") };
        assert_eq!(parts.len(), 2);
        assert_eq!(body(&parts[0]), "one");
        assert_eq!(body(&parts[1]), "two");
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing() {
        let text = "Content-Type: message/rfc822\n\n".repeat(MAX_DEPTH + 10) + "body\n";
        assert!(parse(&PyStr::from(text.as_str())).is_err());
        let text = "Content-Type: message/rfc822\n\n".repeat(MAX_DEPTH - 10) + "body\n";
        assert!(parse(&PyStr::from(text.as_str())).is_ok());
    }

    #[test]
    fn missing_start_boundary_keeps_text() {
        let m = parse_str("Content-Type: multipart/mixed; boundary=XX\n\nno parts\nhere\n");
        assert_eq!(body(&m), "no parts\nhere\n");
        assert_eq!(m.epilogue, Some(Text::from("")));
    }
}
