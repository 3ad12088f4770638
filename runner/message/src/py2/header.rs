//! Python 2.7's `email.header.Header.encode()`: chunks split to fit the line (ASCII at
//! `;`, `,` and spaces; other charsets by characters), RFC 2047 encoded, and joined
//! with newline plus continuation whitespace.

use super::charset::{HeaderCharset, Unit};
use super::{ascii_bytes, lstrip, problem, MAX_SPLIT_LINES_AT_TOP};
use crate::model::{Charset, Error, HeaderObj, PartPath, Text};

/// `Header.encode`'s default `splitchars`.
const SPLITCHARS: &[u8] = b";, ";

/// The state of a Python 2 `Header` that `encode()` reads.
pub(super) struct Header {
    chunks: Vec<(Vec<u8>, Charset)>,
    /// `_firstlinelen`: room on the first line.
    firstlinelen: i64,
    /// `_maxlinelen`: room on later lines (less the continuation whitespace).
    maxlinelen: i64,
    continuation_ws: Vec<u8>,
}

impl Header {
    /// A pickled `email.header.Header`.
    pub fn from_obj(h: &HeaderObj, part: &PartPath) -> Result<Self, Error> {
        let missing = |attr: &str| problem(part, format!("a pickled Header object has no {attr}"));
        let chunks = h
            .chunks
            .iter()
            .map(|(t, cs)| match t {
                Text::Bytes(b) => Ok((b.clone(), cs.clone())),
                Text::Str(_) => Err(problem(
                    part,
                    "a pickled Header object holds a unicode chunk, which Python 2's Header never stores",
                )),
            })
            .collect::<Result<_, _>>()?;
        Ok(Header {
            chunks,
            firstlinelen: h.firstlinelen.ok_or_else(|| missing("_firstlinelen"))?,
            maxlinelen: h.maxlinelen.ok_or_else(|| missing("_maxlinelen"))?,
            continuation_ws: ascii_bytes(&h.continuation_ws, part, "a Header's continuation whitespace")?.into_owned(),
        })
    }

    /// `Header(value, maxlinelen=maxlinelen, header_name=name)` as the generator builds
    /// it for a plain value: us-ascii, or (unicode that is not ASCII) UTF-8.
    pub fn for_value(value: &Text, name_len: usize, maxlinelen: i64) -> Self {
        let chunk = match value {
            Text::Bytes(b) => (b.clone(), Charset::us_ascii()),
            Text::Str(s) if s.as_wtf8().is_ascii() => (s.as_wtf8().to_vec(), Charset::us_ascii()),
            Text::Str(s) => (s.as_wtf8().to_vec(), Charset::utf8()),
        };
        Header {
            chunks: vec![chunk],
            firstlinelen: maxlinelen - name_len as i64 - 2,
            maxlinelen: maxlinelen - 1,
            continuation_ws: b" ".to_vec(),
        }
    }

    /// `Header.encode()` for a header of a part nested `depth` levels deep (for the
    /// recursion limit Python meets when a chunk folds into very many lines).
    pub fn encode(&self, part: &PartPath, depth: usize) -> Result<Vec<u8>, Error> {
        let max_lines = MAX_SPLIT_LINES_AT_TOP.saturating_sub(4 * depth);
        let mut newchunks: Vec<(Vec<u8>, &Charset)> = Vec::new();
        let maxlinelen = self.firstlinelen;
        let mut lastlen = 0;
        for (s, charset) in &self.chunks {
            let cs = HeaderCharset::new(charset, part);
            let mut targetlen = maxlinelen.saturating_sub(lastlen).saturating_sub(1);
            if targetlen < cs.encoded_header_len(b"") {
                targetlen = maxlinelen;
            }
            newchunks.extend(self.split(s, &cs, targetlen, max_lines, part)?.into_iter().map(|c| (c, charset)));
            let (lastchunk, lastcharset) = newchunks
                .last()
                .ok_or_else(|| problem(part, "a header chunk splits into nothing (Python 2 fails on it)"))?;
            lastlen = HeaderCharset::new(lastcharset, part).encoded_header_len(lastchunk);
        }
        let value = self.encode_chunks(&newchunks, maxlinelen, part)?;
        if has_embedded_header(&value) {
            return Err(problem(part, "a header value contains what looks like another header after a line break"));
        }
        Ok(value)
    }

    /// `Header._split`, its recursion unrolled.
    fn split(
        &self,
        s: &[u8],
        cs: &HeaderCharset,
        maxlinelen: i64,
        max_lines: usize,
        part: &PartPath,
    ) -> Result<Vec<Vec<u8>>, Error> {
        let too_deep = || {
            problem(
                part,
                format!(
                    "a header folds into more than {max_lines} encoded lines; Python 2 \
                     exceeds its recursion limit there"
                ),
            )
        };
        let mut out = Vec::new();
        let mut s = s.to_vec();
        let mut maxlen = maxlinelen;
        loop {
            if out.len() >= max_lines {
                return Err(too_deep());
            }
            let splittable = cs.read_chars(&s)?;
            let encoded = cs.write_chars(&splittable, true)?;
            let elen = cs.encoded_header_len(&encoded);
            if elen <= maxlen {
                out.push(encoded);
                return Ok(out);
            }
            if cs.is("8bit") {
                out.push(s);
                return Ok(out);
            }
            if cs.is("us-ascii") {
                let lines = split_ascii(&s, maxlen, self.maxlinelen, &self.continuation_ws, SPLITCHARS)
                    .ok_or_else(|| problem(part, "an ASCII header value cannot be folded (Python 2 fails on it)"))?;
                out.extend(lines);
                return Ok(out);
            }
            // Every line holds at most its width of output octets: fail early rather
            // than fold a huge value line by line only to fail at the limit.
            let widest = maxlen.max(self.maxlinelen).max(1);
            if out.is_empty() && encoded.len() as i64 > (max_lines as i64).saturating_mul(widest) {
                return Err(too_deep());
            }
            let (first, last) = if elen == s.len() as i64 {
                let at = py_slice_index(maxlen, splittable.len());
                (cs.write_chars(&splittable[..at], false)?, cs.write_chars(&splittable[at..], false)?)
            } else {
                binsplit(&splittable, cs, maxlen)?
            };
            if first.is_empty() && maxlen == self.maxlinelen {
                return Err(problem(part, "a header character does not fit on a line (Python 2 recurses without end)"));
            }
            let fencoded = cs.write_chars(&cs.read_chars(&first)?, true)?;
            out.push(fencoded);
            s = last;
            maxlen = self.maxlinelen;
        }
    }

    /// `Header._encode_chunks`.
    fn encode_chunks(
        &self,
        newchunks: &[(Vec<u8>, &Charset)],
        maxlinelen: i64,
        part: &PartPath,
    ) -> Result<Vec<u8>, Error> {
        let mut lines: Vec<Vec<u8>> = Vec::new();
        for (header, charset) in newchunks {
            if header.is_empty() {
                continue;
            }
            let cs = HeaderCharset::new(charset, part);
            let s = if cs.leaves_text_alone() { header.clone() } else { cs.header_encode(header)? };
            let extra: &[u8] = if lines.last().is_some_and(|l| l.ends_with(b" ")) { b"" } else { b" " };
            max_append(&mut lines, &s, maxlinelen, extra);
        }
        let joiner = [b"\n".as_slice(), &self.continuation_ws].concat();
        Ok(lines.join(joiner.as_slice()))
    }
}

/// `email.quoprimime._max_append`: glue `s` onto the last line when it fits (the
/// separator is not counted), else start a new line.
fn max_append(lines: &mut Vec<Vec<u8>>, s: &[u8], maxlen: i64, extra: &[u8]) {
    match lines.last_mut() {
        Some(last) if (last.len() + s.len()) as i64 <= maxlen => {
            last.extend_from_slice(extra);
            last.extend_from_slice(s);
        }
        _ => lines.push(lstrip(s).to_vec()),
    }
}

/// `_binsplit`: the longest prefix whose encoded form fits.
fn binsplit(splittable: &[Unit], cs: &HeaderCharset, maxlinelen: i64) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let (mut i, mut j) = (0, splittable.len());
    while i < j {
        let m = (i + j + 1) >> 1;
        let chunk = cs.write_chars(&splittable[..m], true)?;
        if cs.encoded_header_len(&chunk) <= maxlinelen {
            i = m;
        } else {
            j = m - 1;
        }
    }
    Ok((cs.write_chars(&splittable[..i], false)?, cs.write_chars(&splittable[i..], false)?))
}

/// Where Python's `seq[:n]` ends for a possibly negative `n`.
fn py_slice_index(n: i64, len: usize) -> usize {
    if n >= 0 {
        (n as usize).min(len)
    } else {
        len.saturating_sub(n.unsigned_abs() as usize)
    }
}

/// `_embeded_header = re.compile(r'\n[^ \t]+:')`.
fn has_embedded_header(v: &[u8]) -> bool {
    v.iter().enumerate().filter(|&(_, &c)| c == b'\n').any(|(p, _)| {
        v[p + 1..].iter().take_while(|&&c| c != b' ' && c != b'\t').enumerate().any(|(k, &c)| k >= 1 && c == b':')
    })
}

/// Python 2 `str.splitlines()` (no ends kept): breaks at CRLF, LF and CR.
fn splitlines(s: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'\r' | b'\n' => {
                out.push(&s[start..i]);
                if s[i] == b'\r' && s.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

/// `re.split(r'%s\s*' % ch, line)`.
fn split_on(line: &[u8], ch: u8) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < line.len() {
        if line[i] == ch {
            parts.push(&line[start..i]);
            i += 1;
            while i < line.len() && super::is_py2_space(line[i]) {
                i += 1;
            }
            start = i;
        } else {
            i += 1;
        }
    }
    parts.push(&line[start..]);
    parts
}

/// `fcre = re.compile(r'[\041-\176]+:$')` matched at the start.
fn is_field_name(s: &[u8]) -> bool {
    s.len() >= 2 && s.ends_with(b":") && s.iter().all(|&c| (0x21..=0x7e).contains(&c))
}

/// The module-level `_split_ascii`: fold an ASCII value at the highest-level break
/// that fits (`;`, then `,`, then space).
/// `None` where Python fails with an `IndexError` (a negative width meets an empty part).
fn split_ascii(
    s: &[u8],
    firstlen: i64,
    restlen: i64,
    continuation_ws: &[u8],
    splitchars: &[u8],
) -> Option<Vec<Vec<u8>>> {
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut maxlen = firstlen;
    let wslen = continuation_ws.iter().map(|&c| if c == b'\t' { 8 } else { 1 }).sum::<i64>();
    for line in splitlines(s) {
        let line = lstrip(line);
        if (line.len() as i64) < maxlen {
            lines.push(line.to_vec());
            maxlen = restlen;
            continue;
        }
        let Some(&ch) = splitchars.iter().find(|&&c| line.contains(&c)) else {
            lines.push(line.to_vec());
            maxlen = restlen;
            continue;
        };
        let eol: &[u8] = if ch == b';' || ch == b',' { std::slice::from_ref(&ch) } else { b"" };
        let joiner = [eol, b" "].concat();
        let joinlen = joiner.len() as i64;
        let mut this: Vec<Vec<u8>> = Vec::new();
        let mut linelen: i64 = 0;
        for part in split_on(line, ch) {
            let curlen = linelen + (this.len() as i64 - 1).max(0) * joinlen;
            let partlen = part.len() as i64;
            let onfirstline = lines.is_empty();
            if ch == b' ' && onfirstline && this.len() == 1 && is_field_name(&this[0]) {
                this.push(part.to_vec());
                linelen += partlen;
            } else if curlen + partlen > maxlen {
                if !this.is_empty() {
                    lines.push([this.join(joiner.as_slice()).as_slice(), eol].concat());
                }
                if partlen > maxlen && ch != b' ' {
                    let mut subl = split_ascii(part, maxlen, restlen, continuation_ws, b" ")?;
                    let last = subl.pop()?;
                    lines.extend(subl);
                    this = vec![last];
                } else {
                    this = vec![part.to_vec()];
                }
                linelen = wslen + this.last().map_or(0, |l| l.len() as i64);
                maxlen = restlen;
            } else {
                this.push(part.to_vec());
                linelen += partlen;
            }
        }
        if !this.is_empty() {
            lines.push(this.join(joiner.as_slice()));
        }
    }
    Some(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fold(name: &str, value: &str) -> String {
        let h = Header::for_value(&Text::Bytes(value.as_bytes().to_vec()), name.len(), 78);
        String::from_utf8(h.encode(&PartPath::default(), 0).unwrap()).unwrap()
    }

    #[test]
    fn short_values_stay_on_one_line() {
        assert_eq!(fold("Subject", "hello world"), "hello world");
    }

    #[test]
    fn embedded_header_detection_matches_the_regex() {
        assert!(has_embedded_header(b"a\nFoo: b"));
        assert!(has_embedded_header(b"a\n::"));
        assert!(!has_embedded_header(b"a\n b: c"));
        assert!(!has_embedded_header(b"a\n:"));
    }
}
