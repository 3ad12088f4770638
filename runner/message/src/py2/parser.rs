//! Python 2.7's `email.feedparser` as `email.message_from_string(text,
//! Mailman.Message.Message)` runs it on a Mailman 2.1 text entry, with its quirks:
//! a line stack with end-of-part predicates, boundary lines matched by its regex,
//! preamble and epilogue trimmed the way it trims them.

use super::params::{boundary, content_type, split_type, Boundary};
use super::{lstrip, problem, MAX_NESTING};
use crate::model::{Error, HeaderValue, Message, PartPath, Payload, Text};

const CLASS: &str = "Mailman.Message.Message";

/// Parses a 2.1 `_parsemsg` entry's text into the message Mailman would deliver.
pub fn parse(text: &[u8]) -> Result<Message, Error> {
    let mut lines = splitlines_keepends(text);
    lines.reverse();
    let mut parser = Parser { lines, eof: Vec::new() };
    Ok(parser.parsegen(false, &PartPath::default())?.0)
}

/// A predicate that makes the line source look exhausted (`push_eof_matcher`).
enum EndOfPart {
    /// `NLCRE.match`: an empty line ends a delivery-status block.
    BlankLine,
    /// `boundaryre.match`: any boundary line of an enclosing multipart.
    Boundary(Boundary),
}

struct Parser<'a> {
    /// `BufferedSubFile._lines`: a stack, the next line last.
    lines: Vec<&'a [u8]>,
    eof: Vec<EndOfPart>,
}

impl<'a> Parser<'a> {
    /// `BufferedSubFile.readline`: `b""` at the end or where a predicate holds.
    fn readline(&mut self) -> &'a [u8] {
        let Some(line) = self.lines.pop() else {
            return b"";
        };
        let at_end = self.eof.iter().rev().any(|m| match m {
            EndOfPart::BlankLine => starts_with_newline(line),
            EndOfPart::Boundary(b) => match_boundary(b, line).is_some(),
        });
        if at_end {
            self.lines.push(line);
            return b"";
        }
        line
    }

    fn unreadline(&mut self, line: &'a [u8]) {
        self.lines.push(line);
    }

    /// The lines up to the end of the current part, joined.
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

    /// `FeedParser._parsegen` for one message. Returns it and the path from it to the
    /// last message created inside it (the parser's `_last`), which the enclosing
    /// multipart trims.
    fn parsegen(&mut self, in_digest: bool, part: &PartPath) -> Result<(Message, Vec<usize>), Error> {
        super::with_stack(|| self.parsegen_level(in_digest, part))
    }

    fn parsegen_level(&mut self, in_digest: bool, part: &PartPath) -> Result<(Message, Vec<usize>), Error> {
        if part.0.len() > MAX_NESTING {
            return Err(problem(part, format!("MIME parts are nested more than {MAX_NESTING} deep")));
        }
        let mut msg = Message::new(CLASS, "text/plain");
        msg.default_type = Text::Bytes(if in_digest { b"message/rfc822".to_vec() } else { b"text/plain".to_vec() });
        let mut headers = Vec::new();
        loop {
            let line = self.readline();
            if line.is_empty() {
                break;
            }
            if !is_header_line(line) {
                if !starts_with_newline(line) {
                    self.unreadline(line);
                }
                break;
            }
            headers.push(line);
        }
        self.parse_headers(&mut msg, &headers);
        let ctype = content_type(&msg, part)?;
        if ctype == b"message/delivery-status" {
            return self.delivery_status(msg, part);
        }
        let (main, _) = split_type(&ctype);
        if main == b"message" {
            let (inner, path) = self.parsegen(false, &super::child(part, 0))?;
            msg.payload = Payload::Parts(vec![inner]);
            return Ok((msg, [vec![0], path].concat()));
        }
        if main == b"multipart" {
            self.multipart(&mut msg, ctype == b"multipart/digest", part)?;
            return Ok((msg, Vec::new()));
        }
        msg.payload = Payload::Text(Text::Bytes(self.rest()));
        Ok((msg, Vec::new()))
    }

    /// Blocks of headers separated by empty lines.
    fn delivery_status(&mut self, mut msg: Message, part: &PartPath) -> Result<(Message, Vec<usize>), Error> {
        let mut blocks = Vec::new();
        let last = loop {
            self.eof.push(EndOfPart::BlankLine);
            let parsed = self.parsegen(false, &super::child(part, blocks.len()));
            self.eof.pop();
            let (block, path) = parsed?;
            let last = [vec![blocks.len()], path].concat();
            blocks.push(block);
            // The separating line, whatever it is, then a look at the next one.
            self.readline();
            let line = self.readline();
            if line.is_empty() {
                break last;
            }
            self.unreadline(line);
        };
        msg.payload = Payload::Parts(blocks);
        Ok((msg, last))
    }

    fn multipart(&mut self, msg: &mut Message, is_digest: bool, part: &PartPath) -> Result<(), Error> {
        let Some(boundary) = boundary(msg, part)? else {
            // NoBoundaryInMultipartDefect: the body stays one string.
            msg.payload = Payload::Text(Text::Bytes(self.rest()));
            return Ok(());
        };
        let mut capturing_preamble = true;
        let mut preamble: Vec<&[u8]> = Vec::new();
        let mut close_had_linesep = false;
        let mut parts = Vec::new();
        loop {
            let line = self.readline();
            if line.is_empty() {
                break;
            }
            let Some(close) = match_boundary(&boundary, line) else {
                if !capturing_preamble {
                    return Err(problem(part, "the parser met a line outside any part (Python 2 asserts here)"));
                }
                preamble.push(line);
                continue;
            };
            if let Some(has_linesep) = close {
                close_had_linesep = has_linesep;
                break;
            }
            if capturing_preamble {
                if let Some((last, rest)) = preamble.split_last() {
                    let mut text = rest.concat();
                    text.extend_from_slice(strip_eol(last));
                    msg.preamble = Some(Text::Bytes(text));
                }
                capturing_preamble = false;
                self.unreadline(line);
                continue;
            }
            // Runs of boundary lines (even a closing one) are skipped together.
            loop {
                let next = self.readline();
                if match_boundary(&boundary, next).is_none() {
                    self.unreadline(next);
                    break;
                }
            }
            self.eof.push(EndOfPart::Boundary(boundary.clone()));
            let parsed = self.parsegen(is_digest, &super::child(part, parts.len()));
            self.eof.pop();
            let (mut sub, path) = parsed?;
            if let Some(last) = descend(&mut sub, &path) {
                trim_last(last, part)?;
            }
            parts.push(sub);
        }
        if capturing_preamble {
            // StartBoundaryNotFoundDefect: the lines read become the body; the rest of
            // the part is read and dropped, leaving an empty epilogue.
            msg.payload = Payload::Text(Text::Bytes(preamble.concat()));
            self.rest();
            msg.epilogue = Some(Text::Bytes(Vec::new()));
            return Ok(());
        }
        let mut epilogue = self.rest();
        if !close_had_linesep {
            let cut = leading_eol_len(&epilogue);
            epilogue.drain(..cut);
        }
        msg.epilogue = Some(Text::Bytes(epilogue));
        msg.payload = if parts.is_empty() { Payload::None } else { Payload::Parts(parts) };
        Ok(())
    }

    /// `FeedParser._parse_headers`.
    fn parse_headers(&mut self, msg: &mut Message, lines: &[&'a [u8]]) {
        let mut last: Option<(&[u8], Vec<u8>)> = None;
        for (lineno, &line) in lines.iter().enumerate() {
            if line.first().is_some_and(|&c| c == b' ' || c == b'\t') {
                // A continuation with no header before it is a defect and is dropped.
                if let Some((_, value)) = &mut last {
                    value.extend_from_slice(line);
                }
                continue;
            }
            if let Some((name, value)) = last.take() {
                // Python drops the value's last character, then any CR/LF before it.
                let cut = &value[..value.len().saturating_sub(1)];
                push_header(msg, name, rstrip_newlines(cut));
            }
            if line.starts_with(b"From ") {
                if lineno == 0 {
                    msg.unixfrom = Some(Text::Bytes(strip_eol(line).to_vec()));
                } else if lineno == lines.len() - 1 {
                    self.unreadline(line);
                    return;
                }
                continue;
            }
            match line.iter().position(|&c| c == b':') {
                Some(i) => last = Some((&line[..i], lstrip(&line[i + 1..]).to_vec())),
                None => continue,
            }
        }
        if let Some((name, value)) = last {
            push_header(msg, name, rstrip_newlines(&value));
        }
    }
}

fn push_header(msg: &mut Message, name: &[u8], value: &[u8]) {
    msg.headers.push((Text::Bytes(name.to_vec()), HeaderValue::Text(Text::Bytes(value.to_vec()))));
}

/// What the enclosing multipart does to the last message its sub-part created: a
/// multipart loses an empty epilogue or its epilogue's last line break, anything
/// else its payload's last line break.
fn trim_last(last: &mut Message, part: &PartPath) -> Result<(), Error> {
    let ctype = content_type(last, part)?;
    if split_type(&ctype).0 == b"multipart" {
        last.epilogue = match last.epilogue.take() {
            Some(Text::Bytes(e)) if e.is_empty() => None,
            Some(Text::Bytes(e)) => Some(Text::Bytes(strip_eol(&e).to_vec())),
            other => other,
        };
    } else if let Payload::Text(Text::Bytes(p)) = &mut last.payload {
        let keep = strip_eol(p).len();
        p.truncate(keep);
    }
    Ok(())
}

fn descend<'m>(msg: &'m mut Message, path: &[usize]) -> Option<&'m mut Message> {
    let Some((&first, rest)) = path.split_first() else {
        return Some(msg);
    };
    match &mut msg.payload {
        Payload::Parts(parts) => descend(parts.get_mut(first)?, rest),
        _ => None,
    }
}

/// The `boundaryre` match: `None` if the line is no boundary line; else `Some(None)`
/// for a separator and `Some(Some(has_line_ending))` for the closing delimiter.
fn match_boundary(b: &Boundary, line: &[u8]) -> Option<Option<bool>> {
    let sep_len = 2 + b.chars.len();
    if line.len() < sep_len || &line[..2] != b"--" {
        return None;
    }
    if !b.chars.iter().zip(&line[2..sep_len]).all(|(&c, &o)| c == o as u32) {
        return None;
    }
    let rest = &line[sep_len..];
    if let Some(after) = rest.strip_prefix(b"--") {
        if let Some(linesep) = tail(after) {
            return Some(Some(linesep));
        }
    }
    tail(rest).map(|_| None)
}

/// `(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$`: whether it matches, and with a line ending.
fn tail(s: &[u8]) -> Option<bool> {
    let rest = &s[s.iter().position(|&c| c != b' ' && c != b'\t').unwrap_or(s.len())..];
    match rest {
        b"" => Some(false),
        b"\r\n" | b"\r" | b"\n" => Some(true),
        _ => None,
    }
}

/// `headerRE = r'^(From |[\041-\071\073-\176]{1,}:|[\t ])'`.
fn is_header_line(line: &[u8]) -> bool {
    if line.starts_with(b"From ") || line.starts_with(b" ") || line.starts_with(b"\t") {
        return true;
    }
    let name_len = line.iter().take_while(|&&c| (0x21..=0x7e).contains(&c) && c != b':').count();
    name_len > 0 && line.get(name_len) == Some(&b':')
}

fn starts_with_newline(line: &[u8]) -> bool {
    matches!(line.first(), Some(b'\r' | b'\n'))
}

/// `NLCRE_eol`: the line without one final CRLF, CR or LF.
fn strip_eol(s: &[u8]) -> &[u8] {
    if let Some(t) = s.strip_suffix(b"\r\n") {
        t
    } else if let Some(t) = s.strip_suffix(b"\r").or_else(|| s.strip_suffix(b"\n")) {
        t
    } else {
        s
    }
}

/// `NLCRE_bol.match`: the length of one leading CRLF, CR or LF.
fn leading_eol_len(s: &[u8]) -> usize {
    if s.starts_with(b"\r\n") {
        2
    } else if starts_with_newline(s) {
        1
    } else {
        0
    }
}

/// `s.rstrip('\r\n')`.
fn rstrip_newlines(s: &[u8]) -> &[u8] {
    let end = s.iter().rposition(|&c| c != b'\r' && c != b'\n').map_or(0, |i| i + 1);
    &s[..end]
}

/// Python 2 `str.splitlines(True)`: lines with their CRLF, CR or LF kept.
fn splitlines_keepends(s: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\r' || s[i] == b'\n' {
            if s[i] == b'\r' && s.get(i + 1) == Some(&b'\n') {
                i += 1;
            }
            out.push(&s[start..=i]);
            start = i + 1;
        }
        i += 1;
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}
