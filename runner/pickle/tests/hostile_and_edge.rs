//! Hand-made pickles: each opcode family's corner, the error messages an admin sees,
//! and hostile input (deep nesting, huge length prefixes, memo loops, exponential
//! sharing, quadratic copying), which must give an error, never a panic or a hang.

use mailqueue_pickle::{read, read_entry, DateTime, Error, Object, PyStr, Value, MAX_DEPTH};

fn value(data: &[u8]) -> Value {
    let (v, len) = read(data).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(len, data.len());
    v
}

fn error(data: &[u8]) -> String {
    match read(data) {
        Ok(v) => panic!("expected an error, read {v:?}"),
        Err(e) => e.to_string(),
    }
}

fn b(s: &str) -> Value {
    Value::Bytes(s.as_bytes().to_vec())
}

fn object(o: &Value) -> &Object {
    match o {
        Value::Object(o) => o,
        other => panic!("not an object: {other:?}"),
    }
}

#[test]
fn protocol_1_obj_takes_class_and_arguments_from_the_mark() {
    // MARK GLOBAL args OBJ, then BUILD: how Mailman 2.1 pickles its messages.
    let v = value(b"(c__main__\nC\nK\x01U\x01xo}U\x01yK\x03sb.");
    let o = object(&v);
    assert_eq!(o.class_path(), "__main__.C");
    assert_eq!(o.args, vec![Value::Int(1), b("x")]);
    assert_eq!(o.attr("y"), Some(&Value::Int(3)));
}

#[test]
fn mutation_of_a_memoised_object_is_seen_everywhere() {
    // outer = [L, L]; then L.append(5)
    let v = value(b"(]q\x00h\x00lh\x00K\x05a0.");
    assert_eq!(v, Value::List(vec![Value::List(vec![Value::Int(5)]); 2]));
    // an instance put in a list twice, then BUILT
    let v = value(b"(c__main__\nC\n)\x81q\x00h\x00lh\x00}U\x01aK\x01sb0.");
    let Value::List(items) = &v else { panic!("{v:?}") };
    for item in items {
        assert_eq!(object(item).attr("a"), Some(&Value::Int(1)));
    }
}

#[test]
fn known_calls_become_data_and_others_stay_objects() {
    let set = value(b"c__builtin__\nset\n(]q\x00(U\x01aU\x01bU\x01aetR.");
    assert_eq!(set, Value::Set(vec![b("a"), b("b")]));
    let frozen = value(b"\x80\x02cbuiltins\nfrozenset\n]K\x01a\x85R.");
    assert_eq!(frozen, Value::FrozenSet(vec![Value::Int(1)]));
    let bytes = value(b"c_codecs\nencode\n(X\x04\x00\x00\x00\xc3\xbfabX\x06\x00\x00\x00latin1tR.");
    assert_eq!(bytes, Value::Bytes(b"\xffab".to_vec()));
    let dt = value(b"\x80\x03cdatetime\ndatetime\nC\n\x07\xe8\x01\x02\x03\x04\x05\x00\x00\x06\x85R.");
    assert_eq!(
        dt,
        Value::DateTime(DateTime { year: 2024, month: 1, day: 2, hour: 3, minute: 4, second: 5, microsecond: 6 })
    );
    // With a tzinfo the datetime is kept as an object rather than silently made naive.
    let aware = value(
        b"\x80\x03cdatetime\ndatetime\nC\n\x07\xe8\x01\x02\x03\x04\x05\x00\x00\x06cdatetime\ntimezone\n)\x81\x86R.",
    );
    assert_eq!(object(&aware).class_path(), "datetime.datetime");
    let reconstructed = value(b"ccopy_reg\n_reconstructor\n(c__main__\nC\nc__builtin__\nobject\nNtR}U\x01nK\x02sb.");
    let o = object(&reconstructed);
    assert_eq!((o.class_path().as_str(), o.args.len()), ("__main__.C", 0));
    assert_eq!(o.attr("n"), Some(&Value::Int(2)));
    let other = value(b"cos\nsystem\n(U\x02lstR.");
    assert_eq!(object(&other).args, vec![b("ls")]);
    assert_eq!(
        value(b"cemail.header\nHeader\n."),
        Value::Global { module: "email.header".into(), name: "Header".into() }
    );
}

#[test]
fn text_opcodes_decode_as_python() {
    assert_eq!(value(b"S'a\\nb\\xff'\n."), Value::Bytes(b"a\nb\xff".to_vec()));
    assert_eq!(
        value(b"Vcaf\xe9\\u20ac\\udc80\n."),
        Value::Str(PyStr::from_code_points([0x63, 0x61, 0x66, 0xe9, 0x20ac, 0xdc80]).unwrap())
    );
    assert_eq!(value(b"I01\n."), Value::Bool(true));
    assert_eq!(value(b"I00\n."), Value::Bool(false));
    assert_eq!(value(b"I-7\n."), Value::Int(-7));
    assert_eq!(value(b"L18446744073709551616L\n."), Value::BigInt("18446744073709551616".parse().unwrap()));
    assert_eq!(value(b"F1.5\n."), Value::Float(1.5));
    assert_eq!(
        value(b"\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01."),
        Value::BigInt("18446744073709551616".parse().unwrap())
    );
    assert_eq!(value(b"\x80\x02\x8a\x01\xff."), Value::Int(-1));
    // BINUNICODE with a surrogate (Mailman 3's 8-bit octets).
    assert_eq!(value(b"X\x03\x00\x00\x00\xed\xb2\x80."), Value::Str(PyStr::decode_surrogateescape(b"\x80")));
    assert!(error(b"X\x01\x00\x00\x00\xff.").starts_with("invalid UTF-8"));
}

#[test]
fn dict_keys_and_set_members_are_unique_as_in_python() {
    assert_eq!(value(b"}(U\x01aK\x01U\x01aK\x02u."), Value::Dict(vec![(b("a"), Value::Int(2))]));
    assert_eq!(value(b"\x80\x04\x8f(K\x01\x88K\x02\x90."), Value::Set(vec![Value::Int(1), Value::Int(2)]));
    assert_eq!(value(b"}(X\x01\x00\x00\x00aK\x01U\x01aK\x02u.").get("a"), Some(&Value::Int(2)));
}

#[test]
fn read_returns_the_length_of_one_pickle() {
    let (v, len) = read(b"K\x05.garbage").unwrap();
    assert_eq!((v, len), (Value::Int(5), 3));
}

#[test]
fn errors_say_what_and_where() {
    assert_eq!(error(b"}q\x00(U\x05ab"), "string length 5 at byte 4 exceeds remaining 2 bytes");
    assert_eq!(error(b"}q\x00(U\x01a"), "truncated pickle at byte 7");
    assert_eq!(error(b"N\x99"), "unknown opcode 0x99 at byte 1");
    assert_eq!(error(b"NNh\x07."), "memo key 7 not defined at byte 2");
    assert_eq!(error(b"X\xff\xff\xff\xffabc."), "string length 4294967295 at byte 0 exceeds remaining 4 bytes");
    assert_eq!(
        error(b"\x8e\xff\xff\xff\xff\xff\xff\xff\xff."),
        "string length 18446744073709551615 at byte 0 exceeds remaining 1 bytes"
    );
    assert_eq!(error(b"T\xff\xff\xff\xff."), "negative BINSTRING length at byte 0");
    assert_eq!(error(b"a."), "stack underflow (opcode needs more values) at byte 0");
    assert_eq!(error(b"Ne."), "no MARK to close at byte 1");
    assert_eq!(error(b"P1\n."), "unsupported pickle content at byte 0: persistent id (PERSID)");
    assert_eq!(error(b"\x80\x06N."), "unsupported pickle content at byte 0: pickle protocol 6");
    assert_eq!(
        error(b"\x80\x04c__main__\nC\n)}K\x01K\x02s\x92."),
        "unsupported pickle content at byte 21: NEWOBJ_EX with keyword arguments"
    );
    assert_eq!(error(b"\x82\x01."), "unsupported pickle content at byte 0: extension registry code (EXT)");
    assert_eq!(error(b"K\x01K\x02R."), "REDUCE on a int instead of a class at byte 4");
    assert_eq!(error(b"S'abc\n."), "the STRING opcode argument must be quoted at byte 0");
    assert_eq!(error(b"."), "stack underflow (opcode needs more values) at byte 0");
    assert_eq!(error(b""), "truncated pickle at byte 0");
    let huge_long = [b"\x80\x02\x8b\x01\x08\x00\x00".as_slice(), &[1; 2049], b"."].concat();
    assert_eq!(error(&huge_long), "unsupported pickle content at byte 2: integer of 2049 bytes (at most 2048)");
    assert_eq!(error(b"\x80\x02c__main__\nC\nK\x01\x81."), "NEWOBJ arguments are a int, not a tuple at byte 16");
    let long = [b"I".as_slice(), &[b'9'; 5000], b"\n."].concat();
    assert_eq!(error(&long), "integer with more than 4300 digits at byte 0");
}

#[test]
fn entry_errors_name_the_pickle_and_the_file_offset() {
    assert_eq!(
        read_entry(b"K\x01.}q\x00(U\x01a").unwrap_err().to_string(),
        "metadata pickle: truncated pickle at byte 10"
    );
    assert_eq!(read_entry(b"K\x01").unwrap_err().to_string(), "message pickle: truncated pickle at byte 2");
    assert_eq!(read_entry(b"K\x01.").unwrap_err().to_string(), "metadata pickle: truncated pickle at byte 3");
    assert_eq!(read_entry(b"K\x01.NN\x99").unwrap_err().to_string(), "metadata pickle: unknown opcode 0x99 at byte 5");
    assert_eq!(
        read_entry(b"K\x01.}.xyz").unwrap_err().to_string(),
        "3 unexpected bytes after the metadata pickle at byte 5"
    );
    let entry = read_entry(b"\x80\x05K\x01.}.").unwrap();
    assert_eq!((entry.message_len, entry.message_protocol, entry.metadata_protocol), (5, 5, 1));
    let e = read_entry(b"K\x01.}.xyz").unwrap_err();
    assert!(matches!(e, Error::TrailingBytes { count: 3, at: 5 }));
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let marks = vec![b'('; MAX_DEPTH + 1];
    assert_eq!(error(&marks), format!("pickle nesting deeper than {MAX_DEPTH}"));
    // 100 000 nested lists built without MARKs: caught when the tree is built.
    let n = 100_000;
    let lists = [vec![b']'; n], vec![b'a'; n - 1], vec![b'.']].concat();
    assert_eq!(error(&lists), format!("pickle nesting deeper than {MAX_DEPTH}"));
    let tuples = [b"\x80\x02N".to_vec(), vec![0x85; n], vec![b'.']].concat();
    assert_eq!(error(&tuples), format!("pickle nesting deeper than {MAX_DEPTH}"));
    // Nesting up to the limit is fine.
    let ok = [vec![b']'; MAX_DEPTH], vec![b'a'; MAX_DEPTH - 1], vec![b'.']].concat();
    assert!(read(&ok).is_ok());
}

#[test]
fn an_object_containing_itself_is_an_error() {
    assert_eq!(error(b"]q\x00h\x00a."), "pickle object created at byte 0 contains itself");
    assert_eq!(error(b"c__main__\nC\n)\x81q\x00}U\x01ah\x00sb."), "pickle object created at byte 13 contains itself");
    // Sharing without a cycle is fine: [L, L].
    assert!(read(b"]q\x00(h\x00h\x00l.").is_ok());
}

#[test]
fn exponential_sharing_is_bounded() {
    // L0 = []; Ln = [Ln-1, Ln-1]: 80 levels would expand to 2^80 lists.
    let mut p = b"]q\x00".to_vec();
    for _ in 0..80 {
        p.extend_from_slice(b"(h\x00h\x00lq\x00");
    }
    p.push(b'.');
    assert!(error(&p).starts_with("pickle expands to more than"), "{}", error(&p));
}

#[test]
fn quadratic_copying_is_bounded() {
    // A 5000-item list, then set(list) over and over: each 7 bytes copy 5000 items.
    let mut p = b"c__builtin__\nset\nq\x01]q\x00(".to_vec();
    p.extend(std::iter::repeat_n(*b"K\x01", 5000).flatten());
    p.push(b'e');
    for _ in 0..2_000 {
        p.extend_from_slice(b"h\x01h\x00\x85R0");
    }
    p.push(b'.');
    assert!(error(&p).starts_with("pickle needs more than"), "{}", error(&p));
}
