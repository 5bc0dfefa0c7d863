//! Project automation, in Rust rather than shell.
//!
//! `cargo xtask test` makes sure the services the tests talk to are there (Redis, PostgreSQL,
//! an SMTP test server's Python package), installing or starting what is missing, and then runs
//! `cargo test --workspace`. `cargo xtask services` does only the first half.

use std::net::{TcpStream, ToSocketAddrs};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => services().and_then(|()| test(&args[1..])),
        Some("services") => services(),
        _ => {
            eprintln!("usage: cargo xtask test [-- <cargo test args>] | cargo xtask services");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn test(extra: &[String]) -> Result<()> {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.args(["test", "--workspace"]).args(extra);
    let status = command.status().context("running cargo test")?;
    if !status.success() {
        bail!("cargo test failed ({status})");
    }
    Ok(())
}

/// Ensures Redis, PostgreSQL and the SMTP test server are available.
fn services() -> Result<()> {
    let mut apt_updated = false;
    ensure_redis(&mut apt_updated)?;
    ensure_postgres(&mut apt_updated)?;
    // The end-to-end tests receive invitation emails with aiosmtpd (run by Debian's python3)
    // and move a server's clock forward with libfaketime to see invitations expire.
    ensure_debian_package("python3-aiosmtpd", &mut apt_updated)?;
    ensure_debian_package("libfaketime", &mut apt_updated)?;
    Ok(())
}

fn ensure_redis(apt_updated: &mut bool) -> Result<()> {
    // Some tests start private redis-servers of their own (to stop and restart them), so the
    // binary must be there even when a Redis already answers.
    ensure_debian_package("redis-server", apt_updated)?;
    if reachable("127.0.0.1:6379") {
        return Ok(());
    }
    eprintln!("xtask: starting redis-server on 127.0.0.1:6379");
    run(Command::new("redis-server").args([
        "--daemonize",
        "yes",
        "--bind",
        "127.0.0.1",
        "--port",
        "6379",
        "--save",
        "",
        "--appendonly",
        "no",
    ]))?;
    wait_reachable("127.0.0.1:6379", "redis")
}

fn ensure_postgres(apt_updated: &mut bool) -> Result<()> {
    if !reachable("127.0.0.1:5432") {
        ensure_debian_package("postgresql", apt_updated)?;
        let versions = std::fs::read_dir("/etc/postgresql").context("no PostgreSQL cluster in /etc/postgresql")?;
        let version = versions
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .max()
            .context("no PostgreSQL cluster in /etc/postgresql")?;
        trust_local_connections(&version)?;
        eprintln!("xtask: starting PostgreSQL {version}");
        run(Command::new("pg_ctlcluster").args(["--skip-systemctl-redirect", &version, "main", "start"]))?;
        wait_reachable("127.0.0.1:5432", "postgresql")?;
    }
    // The tests use database `test` as user `postgres` without a password.
    let probe = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-tAc", "select 1"])
        .output()
        .context("running psql")?;
    if !probe.status.success() {
        eprintln!("xtask: creating database test");
        run(Command::new("su").args(["postgres", "-c", "createdb test"]))?;
    }
    Ok(())
}

/// A fresh Debian cluster asks for passwords over TCP; the tests' local cluster trusts loopback.
fn trust_local_connections(version: &str) -> Result<()> {
    let path = format!("/etc/postgresql/{version}/main/pg_hba.conf");
    let current = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let line = "host all all 127.0.0.1/32 trust";
    if !current.contains(line) {
        std::fs::write(&path, format!("{line}\nhost all all ::1/128 trust\n{current}"))
            .with_context(|| format!("writing {path}"))?;
    }
    Ok(())
}

fn ensure_debian_package(package: &str, apt_updated: &mut bool) -> Result<()> {
    let installed = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"));
    if installed {
        return Ok(());
    }
    eprintln!("xtask: installing {package}");
    if !*apt_updated {
        run(Command::new("apt-get").args(["update", "-q"]))?;
        *apt_updated = true;
    }
    run(Command::new("apt-get").args(["install", "-y", "-q", package]).env("DEBIAN_FRONTEND", "noninteractive"))
}

fn run(command: &mut Command) -> Result<()> {
    let status = command.status().with_context(|| format!("running {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed ({status})");
    }
    Ok(())
}

fn reachable(addr: &str) -> bool {
    addr.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_millis(500)).is_ok())
}

fn wait_reachable(addr: &str, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if reachable(addr) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("{what} did not answer on {addr} within 30 s")
}
