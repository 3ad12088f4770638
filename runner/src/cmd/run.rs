//! `mailqueue-runner run`: work a queue's slices until stopped. `--queue out` delivers
//! over SMTP; `--queue retry` moves due entries back to `out`.
use crate::deliver::bounces::BounceLog;
use crate::deliver::engine::Engine;
use crate::deliver::plan::{Policy, VerpMode};
use crate::deliver::smtp::{Security, Settings};
use crate::metrics::Metrics;
use crate::ownership::{HeldSlice, Ownership, Standalone};
use crate::retry::{RetryMover, RetryPolicy};
use crate::shutdown::{self, Stop};
use crate::{http, logging};
use anyhow::{bail, Context};
use mailqueue_contract::duration;
use mailqueue_queue::lock::STATE_DIR;
use mailqueue_queue::switchboard::Switchboard;
use mailqueue_queue::Slice;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The queue root: Mailman 2.1's `qfiles/` or Mailman 3's `var/queue/`.
    #[arg(long, value_name = "DIR")]
    pub qfiles: PathBuf,
    /// The queue to work: `out` (deliver over SMTP) or `retry` (move due entries to out).
    #[arg(long, default_value = "out")]
    pub queue: String,
    /// How many slices the queue is split into (a power of two, 1..256).
    #[arg(long, default_value_t = 1)]
    pub slices: u32,
    /// Work only this slice (one runner per slice); default: all of them in this process.
    #[arg(long)]
    pub slice: Option<u32>,
    /// The SMTP relay.
    #[arg(long, value_name = "HOST:PORT", default_value = "localhost:25")]
    pub smtp: String,
    #[arg(long, value_enum, default_value_t = Security::None)]
    pub smtp_security: Security,
    /// Extra CA certificate (PEM) to trust for the relay.
    #[arg(long, value_name = "FILE")]
    pub smtp_tls_ca: Option<PathBuf>,
    /// Accept any certificate from the relay (testing only).
    #[arg(long)]
    pub smtp_tls_insecure: bool,
    /// SMTP AUTH user; the password comes from --smtp-password-file or $MQ_SMTP_PASSWORD.
    #[arg(long, conflicts_with = "smtp_user_file")]
    pub smtp_user: Option<String>,
    /// File holding the SMTP AUTH user (a mounted Secret key), instead of --smtp-user.
    #[arg(long, value_name = "FILE")]
    pub smtp_user_file: Option<PathBuf>,
    #[arg(long, value_name = "FILE")]
    pub smtp_password_file: Option<PathBuf>,
    #[arg(long, env = "MQ_SMTP_PASSWORD", hide_env_values = true)]
    pub smtp_password: Option<String>,
    /// Name sent in EHLO (default: this host's name).
    #[arg(long)]
    pub helo: Option<String>,
    /// How long to wait for the relay to accept a connection and greet.
    #[arg(long, value_name = "DUR", value_parser = duration::parse, default_value = "10s")]
    pub connect_timeout: Duration,
    /// How long to wait for each reply (MAIL, RCPT, DATA).
    #[arg(long, value_name = "DUR", value_parser = duration::parse, default_value = "30s")]
    pub command_timeout: Duration,
    /// How long sending a message and getting the reply to its final dot may take.
    #[arg(long, value_name = "DUR", value_parser = duration::parse, default_value = "2m")]
    pub data_timeout: Duration,
    /// Concurrent SMTP sessions per slice (each reused across entries).
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Recipients per SMTP transaction (default: Mailman's, 500 for 2.1 entries and 10
    /// for Mailman 3 entries; 0 = all in one).
    #[arg(long)]
    pub rcpts_per_transaction: Option<usize>,
    /// When to send one VERP transaction per recipient.
    #[arg(long, value_enum, default_value_t = VerpMode::Metadata)]
    pub verp: VerpMode,
    /// How long a message keeps being retried while it makes no progress (Mailman: 5 days).
    #[arg(long, value_name = "DUR", value_parser = duration::parse, default_value = "5d")]
    pub retry_period: Duration,
    /// How long before a retried 2.1 entry is due again (`deliver_after`; Mailman: 1 hour).
    #[arg(long, value_name = "DUR", value_parser = duration::parse, default_value = "1h")]
    pub retry_wait: Duration,
    /// Time between passes of the retry queue (Mailman: 15 minutes).
    #[arg(long, value_name = "DUR", value_parser = duration::parse, default_value = "15m")]
    pub retry_interval: Duration,
    /// Time between listings of an empty queue.
    #[arg(long, value_name = "DUR", value_parser = duration::parse, default_value = "1s")]
    pub poll_interval: Duration,
    /// The same in milliseconds, as earlier versions took it: kept, hidden, for the scripts
    /// that pass it (a bare number here is milliseconds, which --poll-interval cannot mean).
    #[arg(long, hide = true, value_name = "MS", conflicts_with = "poll_interval")]
    pub poll_interval_ms: Option<u64>,
    /// JSON-lines file of permanent failures (default `<qfiles>/.mailqueue/bounces.jsonl`).
    #[arg(long, value_name = "FILE")]
    pub bounce_log: Option<PathBuf>,
    /// Serve /metrics, /healthz and /readyz here (e.g. 0.0.0.0:9187).
    #[arg(long, value_name = "ADDR", conflicts_with = "metrics_port")]
    pub metrics_addr: Option<SocketAddr>,
    /// Serve /metrics, /healthz and /readyz on this port of --metrics-ip (the operator's
    /// runner pods: the pod's own IP, which probes and Prometheus use).
    #[arg(long, value_name = "PORT")]
    pub metrics_port: Option<u16>,
    /// The address --metrics-port listens on.
    #[arg(long, env = "POD_IP", default_value = "0.0.0.0", value_name = "IP")]
    pub metrics_ip: std::net::IpAddr,
    /// Time from SIGTERM/SIGINT to exit: claiming stops at once, in-flight
    /// transactions are aborted shortly before the end, unfinished entries put back.
    #[arg(long, value_name = "DUR", value_parser = duration::parse, default_value = "30s")]
    pub stop_grace: Duration,
    /// Largest queue entry read, in MiB; a larger file is set aside in bad/ unread.
    #[arg(long, default_value_t = mailqueue_queue::open::DEFAULT_MAX_ENTRY_SIZE >> 20)]
    pub max_entry_mib: u64,
    /// Exit 0 once the slices have no `.pck` left (batch jobs and tests).
    #[arg(long)]
    pub exit_when_empty: bool,
    #[arg(long, value_enum, default_value_t = logging::Format::Text)]
    pub log_format: logging::Format,
    #[command(flatten)]
    pub lease: crate::lease::LeaseArgs,
    #[command(flatten)]
    pub mailman3: crate::lists::mm3::Mm3Args,
    #[command(flatten)]
    pub mailman2: crate::lists::mm2::Mm2Args,
}

/// Exit code after a panic anywhere in the process.
const PANIC_EXIT: i32 = 70;

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    logging::init(args.log_format);
    exit_on_panic();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    let result = runtime.block_on(main(args));
    // Entries are on disk in a safe state by now; do not wait for stray blocking tasks.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// A panicking task must not leave a half-working runner behind (a lister waiting for a
/// worker that is gone): the whole process exits non-zero at once. What was in flight
/// stays `.bak` and is recovered at the next start, as after a crash.
fn exit_on_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        tracing::error!(panic = %info, "a task panicked; exiting");
        std::process::exit(PANIC_EXIT);
    }));
}

async fn main(args: Args) -> anyhow::Result<ExitCode> {
    let slices = chosen_slices(args.slices, args.slice)?;
    let sb = Switchboard::open(&args.qfiles, &args.queue)
        .with_context(|| format!("queue {:?}", args.queue))?
        .with_max_entry_size(args.max_entry_mib.saturating_mul(1 << 20));
    // Served before the slices are taken: waiting for a Lease can take two of its durations,
    // and a liveness probe must see a live process meanwhile (/readyz says not yet).
    let metrics = Arc::new(Metrics::new(&args.queue));
    let ready = Arc::new(AtomicBool::new(false));
    let metrics_addr = args.metrics_addr.or(args.metrics_port.map(|port| SocketAddr::new(args.metrics_ip, port)));
    if let Some(addr) = metrics_addr {
        let endpoint = http::Endpoint { metrics: metrics.clone(), ready: ready.clone() };
        let serve = http::bind(addr, endpoint).await.with_context(|| format!("serving metrics on {addr}"))?;
        tokio::spawn(serve);
    }
    let ownership: Box<dyn Ownership> =
        match crate::lease::ClusterOwnership::from_args(&args.lease, &args.qfiles).await? {
            Some(cluster) => Box::new(cluster),
            None => Box::new(Standalone::new(&args.qfiles)),
        };
    // Ownership first: nothing is recovered or claimed in a slice we do not own.
    let mut leases: Vec<(Slice, Arc<dyn HeldSlice>)> = Vec::new();
    for &slice in &slices {
        let lease = ownership.acquire(&args.queue, slice)?;
        leases.push((slice, Arc::from(lease)));
    }
    for (slice, _) in &leases {
        let done = sb.recover(*slice).with_context(|| format!("recovering slice {slice} of {}", args.queue))?;
        if !done.requeued.is_empty()
            || !done.preserved.is_empty()
            || !done.requeued_uncounted.is_empty()
            || !done.in_flight.is_empty()
        {
            tracing::info!(
                slice = %slice,
                requeued = done.requeued.len(),
                preserved = done.preserved.len(),
                requeued_uncounted = done.requeued_uncounted.len(),
                left_in_flight = done.in_flight.len(),
                "recovered .bak entries"
            );
        }
    }

    let (switch, stop) = shutdown::channel();
    let grace = args.stop_grace;
    tokio::spawn(async move {
        if let Err(e) = switch.on_signals(grace).await {
            tracing::error!(error = %e, "cannot listen for SIGTERM/SIGINT");
        }
    });

    let mut tasks: JoinSet<anyhow::Result<()>> = JoinSet::new();
    if args.queue == "retry" {
        let mover = Arc::new(RetryMover {
            retry: sb,
            out: queue_dir(&args.qfiles, "out")?,
            interval: args.retry_interval,
            exit_when_empty: args.exit_when_empty,
            metrics: metrics.clone(),
            stop: stop.clone(),
        });
        for (slice, lease) in &leases {
            let (mover, slice, lease) = (mover.clone(), *slice, lease.clone());
            tasks.spawn(async move { Ok(mover.run_slice(slice, lease).await?) });
        }
    } else {
        let engine = Arc::new(engine(&args, sb, metrics.clone(), stop.clone())?);
        for (slice, lease) in &leases {
            let (engine, slice, lease) = (engine.clone(), *slice, lease.clone());
            tasks.spawn(async move { Ok(engine.run_slice(slice, lease).await?) });
        }
    }
    ready.store(true, Ordering::Relaxed);
    tracing::info!(queue = %args.queue, slices = ?slices.iter().map(|s| s.to_string()).collect::<Vec<_>>(), smtp = %args.smtp, "runner started");

    let failed = supervise(tasks, &stop, grace).await;
    for (_, lease) in &leases {
        lease.release();
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Waits for every slice task. A panic anywhere ends the process at once with a
/// failure code (entries in flight stay `.bak` and are recovered at the next start);
/// so does overrunning the grace period after a stop.
async fn supervise(mut tasks: JoinSet<anyhow::Result<()>>, stop: &Stop, grace: Duration) -> bool {
    let mut failed = false;
    let deadline = async {
        stop.stopped().await;
        tokio::time::sleep(grace + Duration::from_secs(1)).await;
    };
    tokio::pin!(deadline);
    loop {
        let joined = tokio::select! {
            j = tasks.join_next() => j,
            _ = &mut deadline => {
                tracing::error!(grace_secs = grace.as_secs(), "still busy after the stop grace period; exiting anyway (unfinished entries are recovered at the next start)");
                return true;
            }
        };
        match joined {
            None => return failed,
            Some(Ok(Ok(()))) => {}
            Some(Ok(Err(e))) => {
                tracing::error!(error = format!("{e:#}"), "slice stopped with an error");
                failed = true;
            }
            Some(Err(e)) if e.is_panic() => {
                tracing::error!(error = %e, "a task panicked; exiting");
                return true;
            }
            Some(Err(e)) => {
                tracing::error!(error = %e, "a task was cancelled");
                failed = true;
            }
        }
    }
}

fn chosen_slices(count: u32, only: Option<u32>) -> anyhow::Result<Vec<Slice>> {
    match only {
        Some(i) => Ok(vec![Slice::new(i, count)?]),
        None => Ok(Slice::each(count)?.collect()),
    }
}

/// Opens a queue the runner writes to, creating it as Mailman would on first use.
fn queue_dir(qfiles: &Path, name: &str) -> anyhow::Result<Switchboard> {
    let dir = qfiles.join(name);
    if !dir.exists() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().mode(0o770).create(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(Switchboard::open(qfiles, name)?)
}

fn engine(args: &Args, out: Switchboard, metrics: Arc<Metrics>, stop: Stop) -> anyhow::Result<Engine> {
    let Some((host, port)) = args.smtp.rsplit_once(':') else { bail!("--smtp {:?}: expected HOST:PORT", args.smtp) };
    let port: u16 = port.parse().with_context(|| format!("--smtp {:?}: bad port", args.smtp))?;
    let password = match (&args.smtp_password_file, &args.smtp_password) {
        (Some(file), _) => Some(read_secret(file).context("reading the SMTP password")?),
        (None, p) => p.clone(),
    };
    let user = match &args.smtp_user_file {
        Some(file) => Some(read_secret(file).context("reading the SMTP user")?),
        None => args.smtp_user.clone(),
    };
    let credentials = match (&user, password) {
        (Some(u), Some(p)) => Some((u.clone(), p)),
        (Some(_), None) => bail!("--smtp-user needs a password: --smtp-password-file FILE or $MQ_SMTP_PASSWORD"),
        (None, _) => None,
    };
    let tls_ca_pem = match &args.smtp_tls_ca {
        Some(f) => Some(std::fs::read(f).with_context(|| format!("reading {}", f.display()))?),
        None => None,
    };
    if args.connections == 0 {
        bail!("--connections must be at least 1");
    }
    let mm3_lists = args.mailman3.client(metrics.clone())?;
    let mm2_lists = args.mailman2.lists(&args.qfiles)?;
    let bounce_path = args.bounce_log.clone().unwrap_or_else(|| args.qfiles.join(STATE_DIR).join("bounces.jsonl"));
    Ok(Engine {
        retry: queue_dir(&args.qfiles, "retry")?,
        shunt: queue_dir(&args.qfiles, "shunt")?,
        out,
        smtp: Settings {
            host: host.trim_start_matches('[').trim_end_matches(']').to_owned(),
            port,
            security: args.smtp_security,
            tls_ca_pem,
            tls_accept_invalid_certs: args.smtp_tls_insecure,
            credentials,
            helo: args.helo.clone().unwrap_or_else(host_name),
            connect_timeout: args.connect_timeout,
            command_timeout: args.command_timeout,
            data_timeout: args.data_timeout,
        },
        connections: args.connections,
        policy: Policy { rcpt_limit: args.rcpts_per_transaction, verp: args.verp },
        retry_policy: RetryPolicy { period: args.retry_period, wait: args.retry_wait },
        exit_when_empty: args.exit_when_empty,
        idle: args.poll_interval_ms.map_or(args.poll_interval, Duration::from_millis),
        metrics,
        bounces: BounceLog::open(&bounce_path)
            .with_context(|| format!("opening the bounce log {}", bounce_path.display()))?,
        stop,
        mm3_lists,
        mm2_lists,
        list_retry: args.mailman3.mailman_rest_retry,
        unwritten: Default::default(),
        large_entries: tokio::sync::Semaphore::new(1),
    })
}

/// A credential from a file (a mounted Secret key), without the line end an editor adds.
fn read_secret(file: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
