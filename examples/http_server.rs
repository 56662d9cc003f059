//! A latency-sensitive service: an HTTP/1.1 server on loopback whose
//! handlers run on a 2-worker pool. `/work` hashes for about 2 ms at LOW,
//! `/health` answers at once at HIGH. Flood `/work` and measure `/health`
//! to see what reserved threads (`Builder::reserved_threads`) and the
//! workers' nice value (`Builder::worker_nice`) buy.
//!
//! std only: a `TcpListener`, one thread per connection that reads each
//! request, hands its handler to the pool at the request's priority and
//! writes the answer the handler sends back. `--max-secs` bounds the run,
//! so it always exits.
//!
//! ```text
//! cargo build --release --example http_server
//! target/release/examples/http_server --pool priopool --reserved 1 --max-secs 30 &
//! sleep 1
//! wrk -t1 -c32 -d20s http://127.0.0.1:8080/work &            # the flood
//! sleep 3
//! echo 'function delay() return 1 end' > /tmp/probe.lua    # 1 request per ms
//! wrk -t1 -c1 -d10s --latency -s /tmp/probe.lua http://127.0.0.1:8080/health
//! wait
//! ```
//!
//! The `/health` probe waits 1 ms between requests, as a health check
//! does. Without the delay its request rate follows the latency it
//! measures: with reserved threads it sent twice as many requests, whose
//! CPU (wrk's, the connection thread's, the reserved thread's, all at
//! nice 0) the workers at nice +10 then gave up, and `/work` lost 20–40%.
//!
//! (`wrk` is Debian's package `wrk`.) Options:
//!
//! - `--pool priopool` (default): priopool, with `--reserved N` reserved
//!   threads (default 0) and `--nice N` for `worker_nice` (default: the
//!   pool's, 10 with reserved threads, else 0).
//! - `--pool textbook`: a `Mutex` over two FIFO queues with a `Condvar`,
//!   HIGH first: what a priority pool without priopool's options does.
//! - `--pool textbook-reserved`: the same plus one thread that takes only
//!   HIGH jobs, its workers at `--nice N` (default 10), set with the
//!   `renice` command, since std has no call for it.
//! - `--workers N` (default 2), `--addr HOST:PORT` (default
//!   127.0.0.1:8080), `--max-secs S` (default 60), `--work-ms MS` (default 2),
//!   `--rounds N`: hash rounds per `/work` instead of the `--work-ms`
//!   calibration, so that rows compared across runs do the same work (the
//!   server prints the figure it calibrated).
//!
//! The figures and how they were taken: `docs/benchmarks.md`, "Latency
//! isolation".

use std::collections::VecDeque;
use std::hash::{DefaultHasher, Hasher};
use std::hint::black_box;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use priopool::{Pool, Priority};

type Job = Box<dyn FnOnce() + Send>;

/// Where handlers run.
enum Runner {
    Priopool(Pool),
    Textbook(Arc<Textbook>),
}

impl Runner {
    fn run(&self, high: bool, job: Job) {
        match self {
            Runner::Priopool(pool) => {
                let priority = if high { Priority::HIGH } else { Priority::LOW };
                if pool.spawn(priority, job).is_err() {
                    eprintln!("http_server: the pool refused a job");
                }
            }
            Runner::Textbook(pool) => pool.push(high, job),
        }
    }
}

/// The textbook priority pool: two FIFO queues under one lock, HIGH first,
/// workers waiting on a condition variable. With `high_thread`, one more
/// thread takes only HIGH jobs, waiting on a condition variable of its own.
#[derive(Default)]
struct Textbook {
    queues: Mutex<[VecDeque<Job>; 2]>,
    any: Condvar,
    high: Condvar,
}

impl Textbook {
    fn start(workers: usize, high_thread: bool, nice: i32) -> Arc<Textbook> {
        let pool = Arc::new(Textbook::default());
        for _ in 0..workers {
            let pool = Arc::clone(&pool);
            thread::spawn(move || {
                if high_thread {
                    renice_this_thread(nice);
                }
                pool.work(false);
            });
        }
        if high_thread {
            let pool = Arc::clone(&pool);
            thread::spawn(move || pool.work(true));
        }
        pool
    }

    fn push(&self, high: bool, job: Job) {
        self.queues.lock().unwrap()[usize::from(!high)].push_back(job);
        if high {
            self.high.notify_one();
        }
        self.any.notify_one();
    }

    /// A worker's loop; `high_only`: the extra thread's.
    fn work(&self, high_only: bool) {
        let condvar = if high_only { &self.high } else { &self.any };
        let mut queues = self.queues.lock().unwrap();
        loop {
            let job =
                if high_only { queues[0].pop_front() } else { queues[0].pop_front().or_else(|| queues[1].pop_front()) };
            match job {
                Some(job) => {
                    drop(queues);
                    job();
                    queues = self.queues.lock().unwrap();
                }
                None => queues = condvar.wait(queues).unwrap(),
            }
        }
    }
}

/// Raises the calling thread's nice value with the `renice` command (std
/// has no call for it); the thread id comes from `/proc/thread-self`.
fn renice_this_thread(nice: i32) {
    let tid = std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|path| path.file_name().map(|tid| tid.to_string_lossy().into_owned()));
    let ok = tid.is_some_and(|tid| {
        std::process::Command::new("renice")
            .args(["-n", &nice.to_string(), "-p", &tid])
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    });
    if !ok {
        eprintln!("http_server: could not renice a worker thread (Linux and the renice command needed)");
    }
}

/// Real work: SipHash over a buffer, `rounds` times.
fn hash_work(buffer: &[u8], rounds: usize) -> u64 {
    let mut hasher = DefaultHasher::new();
    for _ in 0..rounds {
        hasher.write(black_box(buffer));
    }
    hasher.finish()
}

/// How many rounds of `hash_work` take about `target` here: the fastest of
/// several timed batches, so that a busy machine does not make jobs short.
fn calibrate(buffer: &[u8], target: Duration) -> usize {
    const ROUNDS: u32 = 2_000;
    let fastest = (0..7)
        .map(|_| {
            let start = Instant::now();
            black_box(hash_work(buffer, ROUNDS as usize));
            start.elapsed() / ROUNDS
        })
        .min()
        .unwrap_or(Duration::from_nanos(1));
    (target.as_nanos() / fastest.as_nanos().max(1)).max(1) as usize
}

struct Options {
    addr: String,
    pool: String,
    workers: usize,
    reserved: usize,
    nice: Option<i32>,
    max_secs: u64,
    work_ms: u64,
    rounds: Option<usize>,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        addr: "127.0.0.1:8080".into(),
        pool: "priopool".into(),
        workers: 2,
        reserved: 0,
        nice: None,
        max_secs: 60,
        work_ms: 2,
        rounds: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |v: &str| v.parse::<u64>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            "--addr" => options.addr = value,
            "--pool" => options.pool = value,
            "--workers" => options.workers = number(&value)? as usize,
            "--reserved" => options.reserved = number(&value)? as usize,
            "--nice" => options.nice = Some(number(&value)? as i32),
            "--max-secs" => options.max_secs = number(&value)?,
            "--work-ms" => options.work_ms = number(&value)?,
            "--rounds" => options.rounds = Some(number(&value)? as usize),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(options)
}

/// Serves one connection: each request's handler runs on the pool and its
/// answer comes back here to be written.
fn serve(stream: TcpStream, runner: &Runner, buffer: &Arc<Vec<u8>>, rounds: usize) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
        // Skip the headers (wrk sends no body with GET).
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 || header == "\r\n" || header == "\n" {
                break;
            }
        }
        let (tx, rx) = mpsc::sync_channel::<(u16, String)>(1);
        match path.as_str() {
            "/health" => runner.run(true, Box::new(move || drop(tx.send((200, "ok\n".into()))))),
            "/work" => {
                let buffer = Arc::clone(buffer);
                runner
                    .run(false, Box::new(move || drop(tx.send((200, format!("{:x}\n", hash_work(&buffer, rounds)))))));
            }
            _ => drop(tx.send((404, "not found\n".into()))),
        }
        let (status, body) = rx.recv().unwrap_or((503, "dropped\n".into()));
        let reason = if status == 200 { "OK" } else { "Error" };
        write!(writer, "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\n\r\n{body}", body.len())?;
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = parse_args()?;
    let buffer = Arc::new(vec![7u8; 1024]);
    let rounds = options.rounds.unwrap_or_else(|| calibrate(&buffer, Duration::from_millis(options.work_ms)));
    let runner = Arc::new(match options.pool.as_str() {
        "priopool" => {
            let mut builder = Pool::builder().workers(options.workers).reserved_threads(options.reserved);
            if let Some(nice) = options.nice {
                builder = builder.worker_nice(nice);
            }
            Runner::Priopool(builder.build()?)
        }
        "textbook" => Runner::Textbook(Textbook::start(options.workers, false, 0)),
        "textbook-reserved" => Runner::Textbook(Textbook::start(options.workers, true, options.nice.unwrap_or(10))),
        other => return Err(format!("unknown pool {other}: priopool, textbook or textbook-reserved").into()),
    });
    let listener = TcpListener::bind(&options.addr)?;
    println!(
        "http_server: {} pool, {} workers, {} reserved, {rounds} hash rounds per /work, listening on {} for {} s",
        options.pool, options.workers, options.reserved, options.addr, options.max_secs
    );
    let max = Duration::from_secs(options.max_secs);
    let reporter = Arc::clone(&runner);
    thread::spawn(move || {
        thread::sleep(max);
        // The exit must not depend on the report: a closed stdout makes
        // `println!` panic, which would end this thread before the exit.
        let report = match &*reporter {
            Runner::Priopool(pool) => {
                let m = pool.metrics();
                format!(
                    "jobs started per level {:?}, nice refused {}",
                    m.levels.iter().map(|l| l.started).collect::<Vec<_>>(),
                    m.workers.nice_refused
                )
            }
            Runner::Textbook(_) => "textbook pool".to_owned(),
        };
        let _ = writeln!(std::io::stdout(), "http_server: done; {report}");
        std::process::exit(0);
    });
    for stream in listener.incoming() {
        let stream = stream?;
        let (runner, buffer) = (Arc::clone(&runner), Arc::clone(&buffer));
        thread::spawn(move || {
            // A client that goes away mid-request is no error of the server's.
            let _ = serve(stream, &runner, &buffer, rounds);
        });
    }
    Ok(())
}
