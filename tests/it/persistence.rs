//! A restart on the same data directory brings back every workspace, member, bot and token.

use rollcall_e2e::Server;
use serde_json::Value;

use crate::text;

/// An invitation list without the delivery status, which tracks the mail channel, not the log.
fn without_delivery(invitations: &Value) -> Value {
    let mut invitations = invitations.clone();
    for invitation in invitations.as_array_mut().expect("a list") {
        invitation.as_object_mut().expect("an object").remove("delivery");
    }
    invitations
}

#[test]
fn a_restart_brings_everything_back() {
    let mut server = Server::start();
    let owner = server.signup("owner@keep.test");
    let lena = server.signup("lena@keep.test");
    let omar = server.signup("omar@keep.test");
    owner.json(&["workspace", "create", "keep", "--plan", "pro"]);
    let invitation = owner.json(&["workspace", "member", "invite", "keep", "lena@keep.test"]);
    lena.json(&["invite", "accept", text(&invitation, "code")]);
    let pending = owner.json(&["workspace", "member", "invite", "keep", "omar@keep.test"]);
    owner.json(&["workspace", "bot", "create", "keep", "sync"]);
    owner.json(&["workspace", "upstream", "set", "keep", "http://127.0.0.1:9/mcp"]);
    let removed = server.signup("removed@keep.test");
    let invitation = owner.json(&["workspace", "member", "invite", "keep", "removed@keep.test"]);
    removed.json(&["invite", "accept", text(&invitation, "code")]);
    owner.json(&["workspace", "member", "remove", "keep", "removed@keep.test"]);

    let members = owner.json(&["workspace", "member", "list", "keep"]);
    let bots = owner.json(&["workspace", "bot", "list", "keep"]);
    let invitations = without_delivery(&owner.json(&["workspace", "invite", "list", "keep"]));
    let shown = owner.json(&["workspace", "show", "keep"]);
    let audit_before = owner.run(&["audit", "log", "--workspace", "keep", "--json"]).stdout;

    server.restart();

    // The saved account tokens still log everyone in: account tokens came back too.
    assert_eq!(owner.json(&["workspace", "member", "list", "keep"]), members);
    assert_eq!(owner.json(&["workspace", "bot", "list", "keep"]), bots);
    assert_eq!(without_delivery(&owner.json(&["workspace", "invite", "list", "keep"])), invitations);
    assert_eq!(owner.json(&["workspace", "show", "keep"]), shown);
    assert_eq!(owner.run(&["audit", "log", "--workspace", "keep", "--json"]).stdout, audit_before);
    assert_eq!(lena.json(&["workspace", "member", "list", "keep"])[0]["token_status"], "active");

    // The pending invitation's code still works after the restart.
    let accepted = omar.json(&["invite", "accept", text(&pending, "code")]);
    assert_eq!(accepted["workspace"], "keep");

    // And a second restart keeps what the first one's server appended.
    let members = owner.json(&["workspace", "member", "list", "keep"]);
    server.restart();
    assert_eq!(owner.json(&["workspace", "member", "list", "keep"]), members);

    // The stopped server's log checks out record by record.
    server.stop();
    let data_dir = server.data_dir().to_str().expect("a UTF-8 path");
    let report = owner.json(&["store", "inspect", "--data-dir", data_dir]);
    assert_eq!(report["healthy"], true, "{report}");
    assert!(report["events"].as_u64().is_some_and(|n| n > 10), "{report}");
    let repair = owner.json(&["store", "repair", "--data-dir", data_dir]);
    assert_eq!(repair["repaired"], false, "{repair}");
    let readable = owner.run(&["store", "inspect", "--data-dir", data_dir]);
    assert!(readable.status.success() && readable.stdout.contains("healthy"), "{}", readable.stdout);
    owner.fails(&["store", "inspect", "--data-dir", "/nonexistent/rollcall-data"]);
}

#[test]
fn a_shutdown_during_appends_loses_nothing_acknowledged() {
    let mut server = Server::start();
    let owner = server.signup("owner@drain.test");
    owner.json(&["workspace", "create", "drain", "--plan", "enterprise"]);

    let children: Vec<(String, std::process::Child)> = (1..=40)
        .map(|n| {
            let email = format!("d{n}@drain.test");
            let child = owner
                .command(&["workspace", "member", "invite", "drain", &email, "--json"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("rollcall runs");
            (email, child)
        })
        .collect();
    // Stop while the invitations are arriving: some are answered, some are refused, and every
    // answered one must survive.
    server.stop_with("INT");
    let acknowledged: Vec<String> = children
        .into_iter()
        .filter_map(|(email, child)| {
            let output = child.wait_with_output().expect("rollcall ends");
            output.status.success().then_some(email)
        })
        .collect();

    eprintln!("{} of 40 invitations acknowledged before the shutdown", acknowledged.len());
    server.start_again();
    let invitations = owner.json(&["workspace", "invite", "list", "drain"]);
    for email in &acknowledged {
        assert!(crate::row(&invitations, email).is_some(), "{email} was acknowledged, then lost: {invitations}");
    }
    // Whatever was refused can be sent again on the restarted server.
    owner.json(&["workspace", "member", "invite", "drain", "after@drain.test"]);
}
