//! No token, code or password issued during a run reaches the event log, the server's logs or
//! the audit output. Only the outbox, which is the mail channel, carries invitation codes.

use rollcall_e2e::{Server, contains_bytes, email_body, read_tree};

use crate::text;

#[test]
fn no_secret_reaches_the_data_directory_the_logs_or_the_audit_log() {
    let mut server = Server::start();
    let owner = server.signup("owner@secret.test");
    let pia = server.signup("pia@secret.test");
    let quinn = server.user("quinn@secret.test");
    owner.json(&["workspace", "create", "vault", "--plan", "pro"]);
    owner.json(&["workspace", "create", "annex", "--plan", "starter"]);

    let invitation = owner.json(&["workspace", "member", "invite", "vault", "pia@secret.test"]);
    pia.json(&["invite", "accept", text(&invitation, "code")]);
    let invitation = owner.json(&["workspace", "member", "invite", "annex", "pia@secret.test"]);
    pia.json(&["invite", "accept", text(&invitation, "code")]);
    let to_quinn = owner.json(&["workspace", "member", "invite", "vault", "quinn@secret.test", "--role", "admin"]);
    owner.json(&["workspace", "invite", "resend", "vault", "quinn@secret.test"]);
    let cancelled = owner.json(&["workspace", "member", "invite", "vault", "rae@secret.test"]);
    owner.json(&["workspace", "invite", "cancel", "vault", text(&cancelled, "invitation_id")]);
    quinn.signup();
    let to_quinn_again = owner.json(&["workspace", "invite", "resend", "vault", "quinn@secret.test"]);
    quinn.json(&["invite", "accept", text(&to_quinn_again, "code")]);
    quinn.fails(&["invite", "accept", text(&to_quinn, "code")]);
    owner.json(&["workspace", "bot", "create", "vault", "indexer"]);
    owner.json(&["workspace", "bot", "revoke", "vault", "indexer"]);
    owner.json(&["workspace", "bot", "create", "annex", "indexer"]);
    owner.login();
    pia.login();
    owner.json(&["workspace", "member", "remove", "annex", "pia@secret.test"]);
    owner.json(&["member", "offboard", "pia@secret.test", "--dry-run"]);
    owner.json(&["member", "offboard", "pia@secret.test"]);
    owner.json(&["workspace", "plan", "set", "annex", "free", "--dry-run"]);

    let mut audit = String::new();
    for workspace in ["vault", "annex"] {
        let outcome = owner.run(&["audit", "log", "--workspace", workspace, "--json"]);
        assert!(outcome.status.success(), "{}", outcome.stderr);
        assert!(outcome.stdout.lines().count() >= 5, "{}", outcome.stdout);
        audit.push_str(&outcome.stdout);
        let readable = owner.run(&["audit", "log", "--workspace", workspace]);
        audit.push_str(&readable.stdout);
    }
    server.stop();

    let secrets = server.secrets();
    // Three passwords, three account tokens from signups and two from logins, two owner tokens,
    // three member tokens, six invitation codes and two bot tokens.
    assert!(secrets.len() >= 3 + 3 + 2 + 2 + 3 + 6 + 2, "too few secrets collected: {}", secrets.len());

    // The outbox is the mail channel: the codes are there, and nowhere else.
    let outbox = read_tree(&server.data_dir().join("outbox"), &[]);
    let emails: Vec<String> = outbox.iter().map(|(_, bytes)| email_body(&String::from_utf8_lossy(bytes))).collect();
    assert!(emails.iter().any(|e| e.contains(text(&to_quinn_again, "code"))), "the outbox lacks the code");

    let data = read_tree(server.data_dir(), &["outbox"]);
    assert!(!data.is_empty(), "the data directory is empty");
    let logs = server.logs();
    assert!(logs.contains("DEBUG"), "the server did not log at debug level");
    let mut leaks = Vec::new();
    for secret in &secrets {
        for (path, bytes) in &data {
            if contains_bytes(bytes, secret.as_bytes()) {
                leaks.push(format!("{} in {}", redact(secret), path.display()));
            }
        }
        if logs.contains(secret.as_str()) {
            leaks.push(format!("{} in the server's logs", redact(secret)));
        }
        if audit.contains(secret.as_str()) {
            leaks.push(format!("{} in the audit output", redact(secret)));
        }
    }
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
}

/// Enough of a secret to tell which one leaked, not enough to use it.
fn redact(secret: &str) -> String {
    format!("{}…", secret.chars().take(8).collect::<String>())
}
