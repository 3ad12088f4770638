//! Body transfer encodings that Python 2 and Python 3 implement byte for byte alike
//! (`binascii.a2b_qp`, `email.base64mime.body_encode`), so both emulations share one copy.

use base64::Engine;

/// `binascii.a2b_qp(data, header=False)`.
pub(crate) fn qp_decode(b: &[u8]) -> Vec<u8> {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'=' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        i += 1;
        let Some(&c) = b.get(i) else { break };
        if c == b'\n' || c == b'\r' {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            i += 1;
        } else if c == b'=' {
            out.push(b'=');
            i += 1;
        } else if let (Some(h), Some(l)) = (hex(c), b.get(i + 1).copied().and_then(hex)) {
            out.push(h << 4 | l);
            i += 2;
        } else {
            out.push(b'=');
        }
    }
    out
}

/// `base64mime.body_encode`: 57 octets a line, every line ending in `\n`.
pub(crate) fn base64_body(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(57) {
        out.push_str(&base64::engine::general_purpose::STANDARD.encode(chunk));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_body_wraps_at_76() {
        let text = base64_body(&[0u8; 60]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].len(), 76);
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn qp_decoding() {
        assert_eq!(qp_decode(b"a=3Db=\nc=\r\nd=zz="), b"a=bcd=zz".to_vec());
    }
}
