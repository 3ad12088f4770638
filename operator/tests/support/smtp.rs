//! A loopback SMTP sink that accepts every message, optionally slowly, and records each
//! transaction: envelope and the message bytes as sent (dot-unstuffed).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One accepted transaction.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub mail_from: String,
    pub rcpts: Vec<String>,
    pub data: Vec<u8>,
}

/// The running sink; stops with the test's runtime.
pub struct Sink {
    pub port: u16,
    deliveries: Arc<Mutex<Vec<Delivery>>>,
}

impl Sink {
    pub async fn start() -> Self {
        Self::with_delay(Duration::ZERO).await
    }

    /// A sink that waits `delay` before accepting each message's data, so deliveries take
    /// long enough for a test to act in the middle of them.
    pub async fn with_delay(delay: Duration) -> Self {
        let listener = TcpListener::bind((super::HOST_IP, 0)).await.expect("SMTP sink binds");
        let port = listener.local_addr().expect("sink address").port();
        let deliveries = Arc::new(Mutex::new(Vec::new()));
        let record = deliveries.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(session(stream, record.clone(), delay));
            }
        });
        Self { port, deliveries }
    }

    /// Transactions accepted so far.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries.lock().map(|d| d.clone()).unwrap_or_default()
    }
}

async fn session(
    stream: tokio::net::TcpStream,
    record: Arc<Mutex<Vec<Delivery>>>,
    delay: Duration,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 sink ESMTP\r\n").await?;
    let mut current = Delivery { mail_from: String::new(), rcpts: Vec::new(), data: Vec::new() };
    let mut line = Vec::new();
    loop {
        line.clear();
        if lines.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_owned();
        let verb = text.get(..4).unwrap_or_default().to_ascii_uppercase();
        let argument =
            |prefix: &str| text.get(prefix.len()..).unwrap_or_default().trim().trim_matches(['<', '>']).to_owned();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
            "MAIL" => {
                current = Delivery { mail_from: argument("MAIL FROM:"), rcpts: Vec::new(), data: Vec::new() };
                b"250 ok\r\n"
            }
            "RCPT" => {
                current.rcpts.push(argument("RCPT TO:"));
                b"250 ok\r\n"
            }
            "DATA" => {
                write.write_all(b"354 go ahead\r\n").await?;
                loop {
                    line.clear();
                    if lines.read_until(b'\n', &mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == b".\r\n" {
                        break;
                    }
                    let unstuffed = if line.starts_with(b"..") { &line[1..] } else { &line[..] };
                    current.data.extend_from_slice(unstuffed);
                }
                tokio::time::sleep(delay).await;
                if let Ok(mut all) = record.lock() {
                    all.push(current.clone());
                }
                b"250 accepted\r\n"
            }
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => b"250 ok\r\n",
        };
        write.write_all(reply).await?;
    }
}
