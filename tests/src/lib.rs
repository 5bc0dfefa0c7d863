//! What the end-to-end tests share: the `rollcall` binary, a running `rollcall serve`,
//! users driving the CLI against it, a real SMTP server, and MCP clients and servers.
//!
//! The binary is built once per test run with `cargo build -p rollcall-cli`, into the same
//! target directory and profile as the test executable, so `cargo test -p rollcall-e2e` (or
//! `cargo test --workspace`) needs nothing built beforehand. Set `ROLLCALL_BIN` to test a binary
//! built elsewhere.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

pub mod mcp;
pub mod split;

/// Longest wait for a server to answer `/healthz`.
const READY_TIMEOUT_MS: u64 = 60_000;
/// Longest wait for a server to exit after a signal.
const STOP_TIMEOUT_MS: u64 = 20_000;
/// Longest time one CLI command may take.
const COMMAND_TIMEOUT_MS: u64 = 120_000;

/// The `rollcall` binary, built on first use.
pub fn rollcall_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("ROLLCALL_BIN") {
            return PathBuf::from(bin);
        }
        // The test executable is `<target>/<profile>/deps/it-<hash>`; the binary belongs in
        // `<target>/<profile>/rollcall`, built with the same profile.
        let exe = std::env::current_exe().expect("the test executable has a path");
        let profile_dir = exe.parent().and_then(Path::parent).expect("the test runs from <target>/<profile>/deps");
        let target_dir = profile_dir.parent().expect("the profile folder sits in the target folder");
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => "dev".to_owned(),
            Some(name) => name.to_owned(),
            None => "dev".to_owned(),
        };
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the workspace");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = Command::new(cargo)
            .current_dir(workspace)
            .args(["build", "--quiet", "-p", "rollcall-cli", "--bin", "rollcall", "--profile", &profile])
            .arg("--target-dir")
            .arg(target_dir)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the rollcall binary failed: see the cargo output above");
        let bin = profile_dir.join("rollcall");
        assert!(bin.exists(), "{} is missing after the build", bin.display());
        bin
    })
}

/// What a server is started with beyond its defaults.
#[derive(Clone, Debug, Default)]
pub struct ServerOptions {
    /// `--smtp URL`: send invitation emails there instead of the outbox.
    pub smtp: Option<String>,
    /// Extra arguments to `rollcall serve`.
    pub extra_args: Vec<String>,
    /// Extra environment variables for the server process.
    pub env: Vec<(String, String)>,
}

impl ServerOptions {
    /// Runs the server with its wall clock `hours` ahead (through libfaketime), so that what
    /// expires in less than that has expired. Monotonic clocks stay real, so timers still work.
    pub fn clock_ahead_hours(mut self, hours: u32) -> ServerOptions {
        let library = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
        assert!(
            Path::new(library).exists(),
            "the expiry test needs libfaketime: install it with `apt-get install libfaketime` ({library} is missing)"
        );
        self.env.push(("LD_PRELOAD".into(), library.into()));
        self.env.push(("FAKETIME".into(), format!("+{hours}h")));
        self.env.push(("DONT_FAKE_MONOTONIC".into(), "1".into()));
        self
    }
}

/// A running `rollcall serve` on a fresh data directory and a free port, killed on drop.
pub struct Server {
    child: Option<Child>,
    addr: SocketAddr,
    url: String,
    options: ServerOptions,
    data: TempDir,
    logs: TempDir,
    secrets: Arc<Mutex<BTreeSet<String>>>,
}

impl Server {
    /// Starts a server with embedded defaults and waits until it is ready.
    pub fn start() -> Server {
        Server::start_with(ServerOptions::default())
    }

    /// Starts a server with `options` and waits until it is ready.
    pub fn start_with(options: ServerOptions) -> Server {
        let data = tempfile::Builder::new().prefix("rollcall-e2e-data-").tempdir().expect("temp dir");
        let logs = tempfile::Builder::new().prefix("rollcall-e2e-logs-").tempdir().expect("temp dir");
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let url = format!("http://{addr}");
        let mut server = Server { child: None, addr, url, options, data, logs, secrets: Arc::default() };
        server.spawn();
        server
    }

    /// The server's base URL, for `--server` / `ROLLCALL_SERVER`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// Everything the server wrote on stdout and stderr so far, over every start.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        for name in ["stdout.log", "stderr.log"] {
            if let Ok(part) = fs::read_to_string(self.logs.path().join(name)) {
                text.push_str(&part);
            }
        }
        text
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(&mut self) {
        self.stop_with("TERM");
    }

    /// Sends the signal `name` (`TERM`, `INT`) and waits for a clean exit.
    pub fn stop_with(&mut self, name: &str) {
        let Some(mut child) = self.child.take() else { return };
        let status =
            Command::new("kill").args([&format!("-{name}"), &child.id().to_string()]).status().expect("kill runs");
        assert!(status.success(), "cannot signal the server");
        let deadline = Instant::now() + Duration::from_millis(STOP_TIMEOUT_MS);
        loop {
            if let Some(status) = child.try_wait().expect("wait on the server") {
                assert!(
                    status.success(),
                    "the server exited with {status} after SIG{name}; its logs:\n{}",
                    tail(&self.logs())
                );
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "the server did not exit within {STOP_TIMEOUT_MS} ms of SIG{name}; its logs:\n{}",
                    tail(&self.logs())
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server and starts it again on the same data directory and port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Starts a stopped server again on the same data directory and port.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the server is still running");
        self.spawn();
    }

    /// Stops the server and starts it again on the same data directory and port, with new
    /// options.
    pub fn restart_with(&mut self, options: ServerOptions) {
        self.stop();
        self.options = options;
        self.spawn();
    }

    /// A person with their own CLI configuration folder, not signed up yet.
    pub fn user(&self, email: &str) -> User {
        let config = tempfile::Builder::new().prefix("rollcall-e2e-config-").tempdir().expect("temp dir");
        let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
        self.secrets.lock().expect("secrets lock").insert(password.clone());
        User {
            server_url: self.url.clone(),
            email: email.to_owned(),
            password,
            config,
            secrets: Arc::clone(&self.secrets),
        }
    }

    /// A person who has signed up with `rollcall account signup` (and so is logged in).
    pub fn signup(&self, email: &str) -> User {
        let user = self.user(email);
        let answer = user.signup();
        assert_eq!(answer["email"], email, "{answer}");
        user
    }

    /// Every token, code and password seen during the run with this server.
    pub fn secrets(&self) -> Vec<String> {
        self.secrets.lock().expect("secrets lock").iter().cloned().collect()
    }

    fn spawn(&mut self) {
        let log = |name: &str| -> File {
            OpenOptions::new().create(true).append(true).open(self.logs.path().join(name)).expect("log file")
        };
        let mut command = Command::new(rollcall_bin());
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(self.data.path())
            .args(["--listen", &self.addr.to_string(), "--public-url", &self.url])
            .args(&self.options.extra_args)
            .env("RUST_LOG", "debug")
            .env_remove("ROLLCALL_SERVER")
            .env_remove("ROLLCALL_TOKEN")
            .stdin(Stdio::null())
            .stdout(log("stdout.log"))
            .stderr(log("stderr.log"));
        if let Some(smtp) = &self.options.smtp {
            command.args(["--smtp", smtp]);
        }
        command.envs(self.options.env.iter().map(|(k, v)| (k, v)));
        let mut child = command.spawn().expect("rollcall serve starts");
        let deadline = Instant::now() + Duration::from_millis(READY_TIMEOUT_MS);
        loop {
            if let Some(status) = child.try_wait().expect("wait on the server") {
                panic!("rollcall serve exited with {status} before it was ready; its logs:\n{}", tail(&self.logs()));
            }
            if http_status(self.addr, "/healthz") == Some(200) {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("rollcall serve was not ready within {READY_TIMEOUT_MS} ms; its logs:\n{}", tail(&self.logs()));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        self.child = Some(child);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What one CLI command did.
#[derive(Debug)]
pub struct Outcome {
    /// Its exit status.
    pub status: ExitStatus,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl Outcome {
    fn from(output: Output) -> Outcome {
        Outcome {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// A person at a terminal: an email, a password and a CLI configuration folder of their own.
pub struct User {
    server_url: String,
    /// Their email.
    pub email: String,
    /// Their password.
    pub password: String,
    config: TempDir,
    secrets: Arc<Mutex<BTreeSet<String>>>,
}

impl User {
    /// A person, not signed up yet, talking to the API at `server_url` (a `rollcall api` or
    /// `rollcall serve` that this crate did not start).
    pub fn at(server_url: &str, email: &str) -> User {
        let config = tempfile::Builder::new().prefix("rollcall-e2e-config-").tempdir().expect("temp dir");
        User {
            server_url: server_url.to_owned(),
            email: email.to_owned(),
            password: format!("pw-{}", uuid::Uuid::new_v4().simple()),
            config,
            secrets: Arc::default(),
        }
    }

    /// `rollcall ARGS` as this user: the server and configuration folder are set, nothing else.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(rollcall_bin());
        command
            .args(args)
            .env("ROLLCALL_SERVER", &self.server_url)
            .env("ROLLCALL_CONFIG_DIR", self.config.path())
            .env_remove("ROLLCALL_TOKEN")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        command
    }

    /// The user's CLI configuration folder.
    pub fn config_dir(&self) -> &Path {
        self.config.path()
    }

    /// Runs `rollcall ARGS` with `stdin` on standard input.
    pub fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Outcome {
        let mut command = self.command(args);
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().expect("rollcall runs");
        child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
        wait_output(child, args)
    }

    /// Runs `rollcall ARGS`.
    pub fn run(&self, args: &[&str]) -> Outcome {
        let mut command = self.command(args);
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        wait_output(command.spawn().expect("rollcall runs"), args)
    }

    /// Runs `rollcall ARGS --json`, asserts it succeeded, and returns its JSON output. Every
    /// secret in it is remembered for the scan at the end of a test.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut with_json = args.to_vec();
        with_json.push("--json");
        let outcome = self.run(&with_json);
        self.parse(args, outcome)
    }

    /// Runs `rollcall ARGS` and asserts it failed; returns its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let outcome = self.run(args);
        assert!(
            !outcome.status.success(),
            "`rollcall {}` succeeded but should have failed; stdout:\n{}",
            args.join(" "),
            outcome.stdout
        );
        assert!(outcome.stderr.contains("error"), "no error on stderr: {}", outcome.stderr);
        outcome.stderr
    }

    /// `rollcall account signup --email E --password-stdin --json`.
    pub fn signup(&self) -> Value {
        let args = ["account", "signup", "--email", &self.email, "--password-stdin", "--json"];
        let outcome = self.run_with_stdin(&args, &format!("{}\n", self.password));
        self.parse(&args, outcome)
    }

    /// `rollcall login --email E --password-stdin --json`.
    pub fn login(&self) -> Value {
        let args = ["login", "--email", &self.email, "--password-stdin", "--json"];
        let outcome = self.run_with_stdin(&args, &format!("{}\n", self.password));
        self.parse(&args, outcome)
    }

    /// Remembers a secret seen outside JSON output (for instance in an email).
    pub fn remember_secret(&self, secret: &str) {
        self.secrets.lock().expect("secrets lock").insert(secret.to_owned());
    }

    fn parse(&self, args: &[&str], outcome: Outcome) -> Value {
        assert!(
            outcome.status.success(),
            "`rollcall {}` failed ({}):\n{}",
            args.join(" "),
            outcome.status,
            outcome.stderr
        );
        let value: Value = serde_json::from_str(&outcome.stdout).unwrap_or_else(|error| {
            panic!("`rollcall {}` printed no single JSON document ({error}):\n{}", args.join(" "), outcome.stdout)
        });
        let mut secrets = self.secrets.lock().expect("secrets lock");
        collect_secrets(&value, &mut secrets);
        value
    }
}

/// Collects the values of the fields that carry secrets: tokens and invitation codes.
pub fn collect_secrets(value: &Value, into: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                if matches!(key.as_str(), "token" | "owner_token" | "code")
                    && let Some(secret) = item.as_str()
                {
                    into.insert(secret.to_owned());
                }
                collect_secrets(item, into);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_secrets(item, into)),
        _ => {}
    }
}

/// A real SMTP server (Python's aiosmtpd) that keeps every message in a maildir; killed on drop.
pub struct SmtpSink {
    child: Child,
    port: u16,
    mail: TempDir,
}

impl SmtpSink {
    /// Starts `python3 -m aiosmtpd` on a free port. Panics with how to install it if missing.
    pub fn start() -> SmtpSink {
        let python = find_python_with_aiosmtpd();
        let mail = tempfile::Builder::new().prefix("rollcall-e2e-mail-").tempdir().expect("temp dir");
        let port = free_port();
        let maildir = mail.path().join("maildir");
        let child = Command::new(&python)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdin(Stdio::null())
            .stdout(File::create(mail.path().join("smtp.log")).expect("log file"))
            .stderr(File::create(mail.path().join("smtp.err.log")).expect("log file"))
            .spawn()
            .expect("aiosmtpd starts");
        let mut sink = SmtpSink { child, port, mail };
        let deadline = Instant::now() + Duration::from_millis(READY_TIMEOUT_MS);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = sink.child.try_wait().expect("wait on aiosmtpd") {
                let log = fs::read_to_string(sink.mail.path().join("smtp.err.log")).unwrap_or_default();
                panic!("aiosmtpd exited with {status} before listening:\n{log}");
            }
            assert!(Instant::now() < deadline, "aiosmtpd did not listen within {READY_TIMEOUT_MS} ms");
            std::thread::sleep(Duration::from_millis(25));
        }
        sink
    }

    /// The URL to pass to `rollcall serve --smtp`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, as raw RFC 5322 text.
    pub fn messages(&self) -> Vec<String> {
        let mut messages = Vec::new();
        for folder in ["new", "cur"] {
            let Ok(entries) = fs::read_dir(self.mail.path().join("maildir").join(folder)) else { continue };
            for entry in entries.flatten() {
                if let Ok(text) = fs::read_to_string(entry.path()) {
                    messages.push(text);
                }
            }
        }
        messages
    }

    /// Waits until a message satisfies `predicate`, and returns it.
    pub fn wait_for(&self, timeout: Duration, predicate: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(message) = self.messages().into_iter().find(|m| predicate(m)) {
                return message;
            }
            assert!(
                Instant::now() < deadline,
                "no matching email arrived within {timeout:?}; received:\n{}",
                self.messages().join("\n-----\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads every file under `dir` (recursively), skipping folders named in `skip`.
pub fn read_tree(dir: &Path, skip: &[&str]) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in fs::read_dir(&folder).expect("read dir").flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if path.is_dir() {
                if !skip.iter().any(|s| name == *s) {
                    pending.push(path);
                }
            } else {
                let mut bytes = Vec::new();
                if let Ok(mut file) = File::open(&path) {
                    let _ = file.read_to_end(&mut bytes);
                }
                files.push((path, bytes));
            }
        }
    }
    files
}

/// Whether `haystack` contains `needle`.
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// `GET path` over plain HTTP/1.0; the status code, or `None` if nothing answered.
pub fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_millis(2000))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut head = [0u8; 64];
    let read = stream.read(&mut head).ok()?;
    let line = std::str::from_utf8(&head[..read]).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn wait_output(mut child: Child, args: &[&str]) -> Outcome {
    let deadline = Instant::now() + Duration::from_millis(COMMAND_TIMEOUT_MS);
    // Reading the pipes on other threads keeps a chatty command from blocking on a full pipe.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stdout.read_to_end(&mut bytes);
        bytes
    });
    let err = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stderr.read_to_end(&mut bytes);
        bytes
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait on rollcall") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("`rollcall {}` took longer than {COMMAND_TIMEOUT_MS} ms", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Outcome::from(Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    })
}

fn find_python_with_aiosmtpd() -> PathBuf {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(python) = std::env::var_os("ROLLCALL_TEST_PYTHON") {
        candidates.push(python.into());
    }
    // Debian's python3-aiosmtpd installs for the system interpreter, which a version manager
    // on PATH may hide.
    candidates.push("/usr/bin/python3".into());
    candidates.push("python3".into());
    for python in candidates {
        let found = Command::new(&python)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if found {
            return python;
        }
    }
    panic!(
        "the SMTP test needs Python's aiosmtpd: install it with `apt-get install python3-aiosmtpd` \
         (or `pip install aiosmtpd`), or point ROLLCALL_TEST_PYTHON at a python3 that has it"
    );
}

/// The last lines of a log, enough to see why a process failed.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// The body of a raw email, decoded from quoted-printable or base64 when it is encoded so.
pub fn email_body(raw: &str) -> String {
    let raw = raw.replace("\r\n", "\n");
    let (head, body) = raw.split_once("\n\n").unwrap_or((raw.as_str(), ""));
    let encoding = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-transfer-encoding").then(|| value.trim().to_ascii_lowercase())
        })
        .unwrap_or_default();
    match encoding.as_str() {
        "quoted-printable" => decode_quoted_printable(body),
        "base64" => String::from_utf8_lossy(&decode_base64(body)).into_owned(),
        _ => body.to_owned(),
    }
}

/// A header of a raw email, unfolded.
pub fn email_header(raw: &str, name: &str) -> Option<String> {
    let raw = raw.replace("\r\n", "\n");
    let head = raw.split_once("\n\n").map_or(raw.as_str(), |(head, _)| head);
    let unfolded = head.replace("\n ", " ").replace("\n\t", " ");
    unfolded.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim().to_owned())
    })
}

fn decode_quoted_printable(text: &str) -> String {
    let joined = text.replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && let Some(byte) = joined.get(i + 1..i + 3).and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        })
    };
    let digits: Vec<u32> = text.bytes().filter_map(value).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut n = 0u32;
        for (i, d) in chunk.iter().enumerate() {
            n |= d << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

/// A connection to the real Redis the projections use (`REDIS_URL`, default
/// `redis://127.0.0.1:6379`), spoken to in plain RESP.
pub struct Redis {
    addr: String,
}

impl Redis {
    /// Connects, or panics with how to start Redis.
    pub fn connect() -> Redis {
        let url = Redis::url();
        let rest = url.strip_prefix("redis://").unwrap_or(&url);
        let host_port = rest.split('/').next().unwrap_or(rest);
        let host_port = host_port.rsplit_once('@').map_or(host_port, |(_, hp)| hp);
        let addr = if host_port.contains(':') { host_port.to_owned() } else { format!("{host_port}:6379") };
        let redis = Redis { addr };
        let pong = redis.try_command(&["PING"]);
        assert!(
            pong.as_deref().is_ok_and(|reply| reply.starts_with("+PONG")),
            "cannot reach Redis at {url} ({pong:?}): start it with `redis-server --daemonize yes`, or set REDIS_URL"
        );
        redis
    }

    /// The Redis URL for `rollcall serve --redis`.
    pub fn url() -> String {
        std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
    }

    /// `HGET key field`.
    pub fn hget(&self, key: &str, field: &str) -> Option<String> {
        let reply = self.try_command(&["HGET", key, field]).expect("redis answers");
        let (head, body) = reply.split_once("\r\n")?;
        match head {
            "$-1" => None,
            _ if head.starts_with('$') => Some(body.trim_end_matches("\r\n").to_owned()),
            _ => panic!("unexpected Redis reply: {reply}"),
        }
    }

    /// `GET key`.
    pub fn get(&self, key: &str) -> Option<String> {
        let reply = self.try_command(&["GET", key]).expect("redis answers");
        let (head, body) = reply.split_once("\r\n")?;
        match head {
            "$-1" => None,
            _ if head.starts_with('$') => Some(body.trim_end_matches("\r\n").to_owned()),
            _ => panic!("unexpected Redis reply: {reply}"),
        }
    }

    /// Deletes every key that starts with `prefix`.
    pub fn delete_prefix(&self, prefix: &str) {
        let script = "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end return 0";
        let pattern = format!("{prefix}*");
        let _ = self.try_command(&["EVAL", script, "0", &pattern]);
    }

    fn try_command(&self, args: &[&str]) -> std::io::Result<String> {
        let mut stream = TcpStream::connect(&self.addr)?;
        stream.set_read_timeout(Some(Duration::from_millis(5000)))?;
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes())?;
        // Every reply used here is small and arrives whole; read until it ends in CRLF.
        let mut reply = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            let read = stream.read(&mut buffer)?;
            reply.extend_from_slice(&buffer[..read]);
            if read == 0 || reply.ends_with(b"\r\n") && complete(&reply) {
                break;
            }
        }
        Ok(String::from_utf8_lossy(&reply).into_owned())
    }
}

/// Whether a RESP reply of a simple type or a bulk string has arrived whole.
fn complete(reply: &[u8]) -> bool {
    let text = String::from_utf8_lossy(reply);
    match text.split_once("\r\n") {
        Some((head, body)) if head.starts_with('$') => {
            let length: i64 = head[1..].parse().unwrap_or(-1);
            length < 0 || body.len() >= usize::try_from(length).unwrap_or(0) + 2
        }
        _ => true,
    }
}

/// The SHA-256 of a token in hex: its key in the token validity set.
pub fn token_hash_hex(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_bodies_are_decoded() {
        let qp = "Content-Transfer-Encoding: quoted-printable\r\n\r\nhttp://x/accept?code=3Dabc=\r\ndef\r\n";
        assert_eq!(email_body(qp), "http://x/accept?code=abcdef\n");
        let b64 = "Content-Transfer-Encoding: base64\n\naGVsbG8gd29y\nbGQ=\n";
        assert_eq!(email_body(b64), "hello world");
        let plain = "Subject: hi\n\nplain text\n";
        assert_eq!(email_body(plain), "plain text\n");
        assert_eq!(email_header("Subject: a\n b\n\nbody", "subject").as_deref(), Some("a b"));
    }
}
