//! Span export over OTLP/HTTP from the real binary to a receiver on loopback: on when
//! OTEL_EXPORTER_OTLP_ENDPOINT is set, and not a single connection when it is not.
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;
use support::smtp::Server;

/// One POST as the receiver saw it.
struct Export {
    path: String,
    content_type: String,
    body: Vec<u8>,
}

/// A minimal OTLP/HTTP receiver: answers every request 200 and hands it to the test.
fn start_receiver(listener: TcpListener) -> mpsc::Receiver<Export> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || serve(stream, &tx));
        }
    });
    rx
}

fn serve(stream: TcpStream, tx: &mpsc::Sender<Export>) {
    let mut writer = stream.try_clone().expect("clone stream");
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let path = request_line.split_whitespace().nth(1).unwrap_or_default().to_owned();
        let (mut length, mut content_type) = (0usize, String::new());
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                match name.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().expect("content-length"),
                    "content-type" => content_type = value.trim().to_owned(),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).expect("request body");
        writer
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n")
            .expect("answer");
        let _ = tx.send(Export { path, content_type, body });
    }
}

/// Delivers one vector with `run --exit-when-empty`, with the OTEL variables set as given.
fn run_runner(otel_endpoint: Option<&str>) {
    let smtp = Server::start();
    let q = support::qfiles();
    let manifest = support::manifest();
    let vector = manifest["vectors"][0]["path"].as_str().expect("vector path");
    support::add_vector(q.path(), "out", vector);
    let mut cmd = support::run_cmd(q.path(), &smtp.smtp_arg(), &["--exit-when-empty"]);
    cmd.env_remove("OTEL_EXPORTER_OTLP_ENDPOINT").env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    if let Some(endpoint) = otel_endpoint {
        cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint);
    }
    let out = support::run_to_end(cmd, Duration::from_secs(60));
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "runner failed: {logs}");
    assert!(!logs.contains("OTLP"), "trace export complained: {logs}");
    assert_eq!(smtp.captured().len(), 1, "the vector was not delivered: {logs}");
}

#[test]
fn spans_reach_the_otlp_endpoint_before_exit() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    let exports = start_receiver(listener);

    run_runner(Some(&endpoint));

    // The runner flushed before exiting, so the export is already on its way here.
    let export = exports.recv_timeout(Duration::from_secs(30)).expect("no OTLP export arrived");
    assert_eq!(export.path, "/v1/traces");
    assert_eq!(export.content_type, "application/x-protobuf");
    let has = |needle: &[u8]| export.body.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"service.name"), "no service.name in the export");
    assert!(has(b"mailqueue-runner"), "service name missing from the export");
    assert!(has(b"worker"), "the delivery worker span is missing from the export");
}

#[test]
fn no_endpoint_no_connection() {
    // The exporter's built-in default is localhost:4318: listen there when it is free, so a
    // runner that exported without being asked would be caught.
    let listener =
        TcpListener::bind("127.0.0.1:4318").or_else(|_| TcpListener::bind("127.0.0.1:0")).expect("bind receiver");
    listener.set_nonblocking(true).expect("nonblocking");

    run_runner(None);

    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Ok((_, peer)) => panic!("the runner connected from {peer} with no OTLP endpoint set"),
        Err(e) => panic!("accept: {e}"),
    }
}
