use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::http::{Method, StatusCode};

use crate::support::{Options, TestApp, eventually};

#[tokio::test]
async fn outbox_emails_name_the_workspace_inviter_expiry_and_link() {
    let app = TestApp::start().await;
    let owner = app.sign_up("owner@acme.test").await;
    app.create_workspace(&owner, "acme", "pro").await;
    app.sign_up("known@acme.test").await;
    let known = app.invite(&owner, "acme", "known@acme.test", "member").await;
    let fresh = app.invite(&owner, "acme", "fresh@acme.test", "admin").await;

    let read = |invitation: &serde_json::Value| {
        let path = app.outbox().join(format!("{}-1.eml", invitation["invitation_id"].as_str().unwrap()));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let mail = read(&known);
    assert!(mail.contains("To: known@acme.test"), "{mail}");
    assert!(mail.contains("Subject: You are invited to join acme on Rollcall"), "{mail}");
    assert!(mail.contains("owner@acme.test invited you"), "{mail}");
    assert!(mail.contains(&known["expires_at"].as_str().unwrap()[..10]), "names the expiry: {mail}");
    assert!(mail.contains(known["accept_url"].as_str().unwrap()), "{mail}");
    assert!(mail.contains(&format!("rollcall invite accept {}", known["code"].as_str().unwrap())));
    assert!(!mail.contains("Sign up first"));

    let mail = read(&fresh);
    assert!(mail.contains("Sign up first"), "{mail}");
    assert!(mail.contains("rollcall account signup --email fresh@acme.test"), "{mail}");
    assert!(mail.contains(&format!("/accept?code={}&signup=1", fresh["code"].as_str().unwrap())), "{mail}");

    // A resend writes a second email with the new code.
    let id = fresh["invitation_id"].as_str().unwrap();
    let (status, resent) =
        app.call(Method::POST, &format!("/api/v1/workspaces/acme/invitations/{id}/resend"), Some(&owner), None).await;
    assert_eq!(status, StatusCode::OK);
    let second = std::fs::read_to_string(app.outbox().join(format!("{id}-2.eml"))).unwrap();
    assert!(second.contains(resent["code"].as_str().unwrap()));

    // The outbox is the only place on disk a code appears.
    let code = known["code"].as_str().unwrap();
    for entry in walk(app.dir.path()) {
        if entry.starts_with(app.outbox()) {
            continue;
        }
        let bytes = std::fs::read(&entry).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains(code), "{} holds a code", entry.display());
    }
    app.shutdown().await;
}

#[tokio::test]
async fn smtp_delivery_to_a_real_server() {
    let maildir = tempfile::tempdir().unwrap();
    let smtp = SmtpServer::start(maildir.path());
    let app = TestApp::start_with(Options {
        smtp_url: Some(format!("smtp://127.0.0.1:{}", smtp.port)),
        ..Options::default()
    })
    .await;
    let owner = app.sign_up("owner@acme.test").await;
    app.create_workspace(&owner, "acme", "pro").await;
    let invitation = app.invite(&owner, "acme", "alice@acme.test", "member").await;
    assert_eq!(invitation["delivery"], "delivered", "{invitation}");
    let code = invitation["code"].as_str().unwrap().to_owned();
    let received = eventually(5_000, async || {
        walk(maildir.path()).iter().any(|p| std::fs::read_to_string(p).is_ok_and(|m| m.contains(&code)))
    })
    .await;
    assert!(received, "the SMTP server received the email with the code");
    app.shutdown().await;
}

#[tokio::test]
async fn failed_smtp_delivery_keeps_the_invitation_and_shows_it() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let app =
        TestApp::start_with(Options { smtp_url: Some(format!("smtp://127.0.0.1:{port}")), ..Options::default() }).await;
    let owner = app.sign_up("owner@acme.test").await;
    app.create_workspace(&owner, "acme", "pro").await;
    let invitation = app.invite(&owner, "acme", "alice@acme.test", "member").await;
    assert_eq!(invitation["delivery"], "retrying", "{invitation}");
    let given_up = eventually(5_000, async || {
        let (_, list) = app.call(Method::GET, "/api/v1/workspaces/acme/invitations", Some(&owner), None).await;
        list[0]["delivery"] == "not_delivered" && list[0]["status"] == "pending"
    })
    .await;
    assert!(given_up, "after the bounded retries the invitation stands, marked not_delivered");
    // It can still be accepted with the code the admin was given.
    let alice = app.sign_up("alice@acme.test").await;
    let (status, _) = app.accept(&alice, invitation["code"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    app.shutdown().await;
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// `python3 -m aiosmtpd` with a Maildir handler, stopped on drop.
struct SmtpServer {
    child: Child,
    port: u16,
}

impl SmtpServer {
    fn start(maildir: &Path) -> SmtpServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // Debian's python3-aiosmtpd installs into the system interpreter.
        let python = if Path::new("/usr/bin/python3").exists() { "/usr/bin/python3" } else { "python3" };
        let child = Command::new(python)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir.join("Maildir"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {python} -m aiosmtpd ({e}): install it with `apt-get install -y python3-aiosmtpd`")
            });
        let mut server = SmtpServer { child, port };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                let mut stderr = String::new();
                if let Some(mut pipe) = server.child.stderr.take() {
                    use std::io::Read;
                    let _ = pipe.read_to_string(&mut stderr);
                }
                panic!("aiosmtpd exited ({status}): {stderr}\ninstall it with `apt-get install -y python3-aiosmtpd`");
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("aiosmtpd did not listen on port {port}: install it with `apt-get install -y python3-aiosmtpd`");
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
