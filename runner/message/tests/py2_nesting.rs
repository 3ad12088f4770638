//! Deeply nested MIME parts: flattened as Python 2.7 does up to the depth where its
//! recursion limit stops Mailman 2.1, refused with a typed error beyond, and never an
//! overflow of the calling thread's stack (a runner thread's stack is small).

use mailqueue_message::py2;

/// A text entry whose innermost message sits `depth` parts deep (multipart and
/// message/rfc822 alternating).
fn nested(depth: usize) -> Vec<u8> {
    let mut t = String::from("Subject: deep\n");
    for level in 0..depth {
        if level % 2 == 1 {
            t += "Content-Type: message/rfc822\n\n";
        } else {
            t += &format!("Content-Type: multipart/mixed; boundary=\"b{level}\"\n\n--b{level}\n");
        }
    }
    t += "Subject: innermost\n\nbody\n";
    t.into_bytes()
}

fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new().stack_size(256 * 1024).spawn(f).expect("spawn").join().expect("no panic, no overflow")
}

#[test]
fn nesting_up_to_pythons_limit_flattens() {
    let out = on_small_stack(|| {
        let msg = py2::parser::parse(&nested(245)).expect("245 levels parse");
        py2::flatten(&msg).expect("245 levels flatten")
    });
    let text = String::from_utf8(out).expect("ASCII");
    assert!(text.contains("\r\n--b244\r\nSubject: innermost\r\n\r\nbody\r\n--b244--\r\n"));
    assert!(text.ends_with("\r\n--b2--\r\n\r\n--b0--\r\n"));
}

#[test]
fn nesting_beyond_pythons_limit_is_a_typed_error() {
    for depth in [246, 20_000] {
        let err = on_small_stack(move || py2::parser::parse(&nested(depth)).expect_err("too deep"));
        assert!(err.to_string().contains("nested more than 245 deep"), "{err}");
    }
}
