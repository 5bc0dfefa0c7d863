//! Seats at the limit on every plan, the downgrade preview, and concurrent invitations.

use std::process::Stdio;

use rollcall_e2e::{Server, User};

use crate::text;

/// Invites `count` addresses (`prefix-N@seats.test`) into `workspace`, eight at a time.
fn invite_many(owner: &User, workspace: &str, prefix: &str, count: usize) {
    let emails: Vec<String> = (1..=count).map(|n| format!("{prefix}-{n}@seats.test")).collect();
    for batch in emails.chunks(8) {
        std::thread::scope(|scope| {
            for email in batch {
                scope.spawn(move || owner.json(&["workspace", "member", "invite", workspace, email]));
            }
        });
    }
}

/// Asserts that a refusal at the seat limit names the plan, the limit and both ways out.
fn assert_seat_refusal(stderr: &str, plan: &str, seats: usize) {
    let lower = stderr.to_lowercase();
    assert!(lower.contains(plan), "the refusal does not name the {plan} plan: {stderr}");
    assert!(lower.contains(&seats.to_string()), "the refusal does not name the limit {seats}: {stderr}");
    assert!(lower.contains("remove"), "the refusal does not say to remove someone: {stderr}");
    assert!(lower.contains("upgrade"), "the refusal does not say to upgrade: {stderr}");
}

#[test]
fn every_plan_stops_at_its_seat_limit() {
    let server = Server::start();
    let owner = server.signup("owner@seats.test");

    owner.json(&["workspace", "create", "free-ws", "--plan", "free"]);
    let refused = owner.fails(&["workspace", "member", "invite", "free-ws", "one@seats.test"]);
    assert_seat_refusal(&refused, "free", 1);

    owner.json(&["workspace", "create", "starter-ws", "--plan", "starter"]);
    invite_many(&owner, "starter-ws", "starter", 4);
    let refused = owner.fails(&["workspace", "member", "invite", "starter-ws", "fifth@seats.test"]);
    assert_seat_refusal(&refused, "starter", 5);

    owner.json(&["workspace", "create", "pro-ws", "--plan", "pro"]);
    invite_many(&owner, "pro-ws", "pro", 19);
    let refused = owner.fails(&["workspace", "member", "invite", "pro-ws", "twentieth@seats.test"]);
    assert_seat_refusal(&refused, "pro", 20);

    owner.json(&["workspace", "create", "business-ws", "--plan", "business"]);
    invite_many(&owner, "business-ws", "business", 99);
    let refused = owner.fails(&["workspace", "member", "invite", "business-ws", "hundredth@seats.test"]);
    assert_seat_refusal(&refused, "business", 100);
    let shown = owner.json(&["workspace", "show", "business-ws"]);
    assert_eq!(shown["seats_used"], 100, "{shown}");

    let created = owner.json(&["workspace", "create", "enterprise-ws", "--plan", "enterprise"]);
    assert!(created["seats"].is_null(), "{created}");
    invite_many(&owner, "enterprise-ws", "enterprise", 120);
    let shown = owner.json(&["workspace", "show", "enterprise-ws"]);
    assert_eq!(shown["seats_used"], 121, "{shown}");
}

#[test]
fn a_downgrade_preview_lists_who_is_over_the_limit() {
    let server = Server::start();
    let owner = server.signup("owner@down.test");
    let kim = server.signup("kim@down.test");
    owner.json(&["workspace", "create", "down", "--plan", "pro"]);
    let invitation = owner.json(&["workspace", "member", "invite", "down", "kim@down.test"]);
    kim.json(&["invite", "accept", text(&invitation, "code")]);
    for n in 1..=4 {
        owner.json(&["workspace", "member", "invite", "down", &format!("p{n}@down.test")]);
    }
    owner.json(&["workspace", "bot", "create", "down", "nightly"]);

    let preview = owner.json(&["workspace", "plan", "set", "down", "starter", "--dry-run"]);
    assert_eq!(preview["from"], "pro");
    assert_eq!(preview["to"], "starter");
    assert_eq!(preview["seats_used"], 6, "{preview}");
    assert_eq!(preview["seats_limit"], 5, "{preview}");
    assert_eq!(preview["allowed"], false);
    assert_eq!(preview["applied"], false);
    assert_eq!(preview["bots_active"], 1, "{preview}");
    let over = preview["over_limit"].as_array().expect("over_limit");
    assert!(!over.is_empty(), "{preview}");
    for entry in over {
        assert!(entry["email"].is_string() && entry["kind"].is_string(), "{entry}");
    }
    let readable = owner.run(&["workspace", "plan", "set", "down", "starter", "--dry-run"]);
    assert!(readable.status.success() && readable.stdout.contains("dry run"), "{}", readable.stdout);

    // The real downgrade is refused and names who is over; nothing changes.
    let refused = owner.fails(&["workspace", "plan", "set", "down", "starter"]);
    let named = over.iter().filter_map(|e| e["email"].as_str()).any(|email| refused.contains(email));
    assert!(named, "the refusal names nobody: {refused}");
    assert_eq!(owner.json(&["workspace", "show", "down"])["plan"], "pro");

    // Once enough people leave, it goes through.
    owner.json(&["workspace", "invite", "cancel", "down", "p1@down.test"]);
    let allowed = owner.json(&["workspace", "plan", "set", "down", "starter", "--dry-run"]);
    assert_eq!(allowed["allowed"], true, "{allowed}");
    let applied = owner.json(&["workspace", "plan", "set", "down", "starter"]);
    assert_eq!(applied["applied"], true, "{applied}");
    assert_eq!(owner.json(&["workspace", "show", "down"])["plan"], "starter");
    let upgraded = owner.json(&["workspace", "plan", "set", "down", "enterprise"]);
    assert_eq!(upgraded["applied"], true, "{upgraded}");
}

#[test]
fn fifty_concurrent_invitations_into_a_starter_workspace_seat_exactly_four() {
    let server = Server::start();
    let owner = server.signup("owner@rush.test");
    owner.json(&["workspace", "create", "rush", "--plan", "starter"]);

    let children: Vec<_> = (1..=50)
        .map(|n| {
            let email = format!("rush-{n}@rush.test");
            owner
                .command(&["workspace", "member", "invite", "rush", &email, "--json"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("rollcall runs")
        })
        .collect();
    let outputs: Vec<_> = children.into_iter().map(|c| c.wait_with_output().expect("rollcall ends")).collect();

    let succeeded = outputs.iter().filter(|o| o.status.success()).count();
    assert_eq!(succeeded, 4, "exactly four invitations fit a Starter workspace beside its owner");
    for output in outputs.iter().filter(|o| !o.status.success()) {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_seat_refusal(&stderr, "starter", 5);
    }
    let invitations = owner.json(&["workspace", "invite", "list", "rush"]);
    let pending = invitations.as_array().expect("a list").iter().filter(|i| i["status"] == "pending").count();
    assert_eq!(pending, 4, "{invitations}");
}
