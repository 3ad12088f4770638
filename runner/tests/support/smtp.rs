//! A real SMTP server on loopback for delivery tests: it stores every transaction it
//! accepts (envelope and the DATA octets with dot-stuffing undone, as aiosmtpd gives
//! them), and can be told to misbehave in the ways relays do: refuse some recipients
//! (4xx/5xx/552), refuse the message, stall, drop the connection mid-DATA.
#![allow(dead_code)] // each test binary uses a different part of it

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Captured {
    pub mail_from: String,
    pub rcpts: Vec<String>,
    pub data: Vec<u8>,
}

/// Where in a transaction a fault applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    Mail,
    Data,
    /// The reply to the final dot.
    Message,
}

#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Reply for RCPT TO of these addresses instead of 250.
    pub rcpt: HashMap<String, (u16, String)>,
    /// Reply instead of 250/354 at a stage.
    pub reply: HashMap<Stage, (u16, String)>,
    /// Never answer at this stage (the client must time out or abort).
    pub stall: Option<Stage>,
    /// Close the connection after this many DATA octets.
    pub drop_after_data_bytes: Option<usize>,
    /// Do not offer PIPELINING (the client must wait for each reply).
    pub no_pipelining: bool,
    /// Wait this long before answering the final dot (a slow relay).
    pub slow_message: Option<Duration>,
}

pub struct Server {
    pub addr: SocketAddr,
    pub captured: Arc<Mutex<Vec<Captured>>>,
    pub faults: Arc<Mutex<Faults>>,
    pub sessions: Arc<Mutex<usize>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A free loopback port (for a server that is to appear later).
pub fn free_port() -> u16 {
    let l = StdListener::bind("127.0.0.1:0").expect("bind loopback");
    l.local_addr().expect("local addr").port()
}

impl Server {
    pub fn start() -> Server {
        Server::start_on(0)
    }

    pub fn start_on(port: u16) -> Server {
        let std_listener = StdListener::bind(("127.0.0.1", port)).expect("bind loopback SMTP port");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("local addr");
        let captured = Arc::new(Mutex::new(Vec::new()));
        let faults = Arc::new(Mutex::new(Faults::default()));
        let sessions = Arc::new(Mutex::new(0));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (c, f, s) = (captured.clone(), faults.clone(), sessions.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                let listener = TcpListener::from_std(std_listener).expect("tokio listener");
                let accept = async {
                    loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            continue;
                        };
                        *s.lock().unwrap() += 1;
                        let (c, f) = (c.clone(), f.clone());
                        tokio::spawn(async move {
                            let _ = session(stream, c, f).await;
                        });
                    }
                };
                tokio::select! {
                    _ = accept => {}
                    _ = rx => {}
                }
            });
        });
        Server { addr, captured, faults, sessions, shutdown: Some(tx), thread: Some(thread) }
    }

    pub fn captured(&self) -> Vec<Captured> {
        self.captured.lock().unwrap().clone()
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.faults.lock().unwrap() = faults;
    }

    pub fn smtp_arg(&self) -> String {
        format!("127.0.0.1:{}", self.addr.port())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn session(
    stream: TcpStream,
    captured: Arc<Mutex<Vec<Captured>>>,
    faults: Arc<Mutex<Faults>>,
) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    w.write_all(b"220 capture.test ESMTP\r\n").await?;
    let mut from: Option<String> = None;
    let mut rcpts: Vec<String> = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        let upper = text.to_ascii_uppercase();
        let f = faults.lock().unwrap().clone();
        if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            if f.no_pipelining {
                w.write_all(b"250-capture.test\r\n250 8BITMIME\r\n").await?;
            } else {
                w.write_all(b"250-capture.test\r\n250-8BITMIME\r\n250 PIPELINING\r\n").await?;
            }
        } else if upper.starts_with("MAIL FROM:") {
            if f.stall == Some(Stage::Mail) {
                return stall().await;
            }
            if let Some((code, msg)) = f.reply.get(&Stage::Mail) {
                w.write_all(format!("{code} {msg}\r\n").as_bytes()).await?;
                continue;
            }
            from = Some(addr_of(&text["MAIL FROM:".len()..]));
            rcpts.clear();
            w.write_all(b"250 2.1.0 Ok\r\n").await?;
        } else if upper.starts_with("RCPT TO:") {
            let rcpt = addr_of(&text["RCPT TO:".len()..]);
            if let Some((code, msg)) = f.rcpt.get(&rcpt) {
                w.write_all(format!("{code} {msg}\r\n").as_bytes()).await?;
                continue;
            }
            rcpts.push(rcpt);
            w.write_all(b"250 2.1.5 Ok\r\n").await?;
        } else if upper == "DATA" {
            if f.stall == Some(Stage::Data) {
                return stall().await;
            }
            if let Some((code, msg)) = f.reply.get(&Stage::Data) {
                w.write_all(format!("{code} {msg}\r\n").as_bytes()).await?;
                continue;
            }
            w.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
            let mut data = Vec::new();
            let mut received = 0usize;
            loop {
                line.clear();
                if r.read_until(b'\n', &mut line).await? == 0 {
                    return Ok(());
                }
                received += line.len();
                if let Some(limit) = f.drop_after_data_bytes {
                    if received >= limit {
                        return Ok(()); // connection dropped mid-DATA
                    }
                }
                // Lines end at CRLF only (a lone LF stays inside a line), as aiosmtpd reads them.
                if !line.ends_with(b"\r\n") {
                    let mut more = Vec::new();
                    while !line.ends_with(b"\r\n") {
                        more.clear();
                        if r.read_until(b'\n', &mut more).await? == 0 {
                            return Ok(());
                        }
                        received += more.len();
                        line.extend_from_slice(&more);
                    }
                }
                if line == b".\r\n" {
                    break;
                }
                let unstuffed = if line.first() == Some(&b'.') { &line[1..] } else { &line[..] };
                data.extend_from_slice(unstuffed);
            }
            if f.stall == Some(Stage::Message) {
                return stall().await;
            }
            if let Some(d) = f.slow_message {
                tokio::time::sleep(d).await;
            }
            if let Some((code, msg)) = f.reply.get(&Stage::Message) {
                w.write_all(format!("{code} {msg}\r\n").as_bytes()).await?;
                continue;
            }
            captured.lock().unwrap().push(Captured {
                mail_from: from.take().unwrap_or_default(),
                rcpts: std::mem::take(&mut rcpts),
                data,
            });
            w.write_all(b"250 2.0.0 Ok: queued\r\n").await?;
        } else if upper == "RSET" {
            from = None;
            rcpts.clear();
            w.write_all(b"250 2.0.0 Ok\r\n").await?;
        } else if upper == "NOOP" {
            w.write_all(b"250 2.0.0 Ok\r\n").await?;
        } else if upper == "QUIT" {
            w.write_all(b"221 2.0.0 Bye\r\n").await?;
            return Ok(());
        } else {
            w.write_all(b"502 5.5.2 Error: command not recognized\r\n").await?;
        }
    }
}

async fn stall() -> std::io::Result<()> {
    tokio::time::sleep(Duration::from_secs(3600)).await;
    Ok(())
}

fn addr_of(arg: &str) -> String {
    let a = arg.trim();
    let a = a.split_whitespace().next().unwrap_or("");
    a.trim_start_matches('<').trim_end_matches('>').to_string()
}
