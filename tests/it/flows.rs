//! The product's everyday flows: invite, accept, list, remove, re-invite, resend, cancel,
//! expiry, bots, offboarding and the workspace commands.

use rollcall_e2e::{Server, ServerOptions};

use crate::{row, text};

#[test]
fn invite_accept_list_remove_and_invite_again() {
    let server = Server::start();
    let owner = server.signup("owner@acme.test");
    let alice = server.signup("alice@acme.test");

    let workspace = owner.json(&["workspace", "create", "acme", "--plan", "starter"]);
    assert_eq!(workspace["workspace"], "acme");
    assert_eq!(workspace["plan"], "starter");
    assert_eq!(workspace["seats"], 5);
    assert!(!text(&workspace, "id").is_empty());

    let invitation = owner.json(&["workspace", "member", "invite", "acme", "alice@acme.test"]);
    assert_eq!(invitation["email"], "alice@acme.test");
    let code = text(&invitation, "code").to_owned();
    assert!(text(&invitation, "accept_url").starts_with(server.url()), "{invitation}");
    assert!(text(&invitation, "accept_url").contains(&code), "{invitation}");
    assert!(!text(&invitation, "invitation_id").is_empty());
    assert!(!text(&invitation, "expires_at").is_empty());

    let accepted = alice.json(&["invite", "accept", &code]);
    assert_eq!(accepted["workspace"], "acme");
    let first_token = text(&accepted, "token").to_owned();
    assert!(first_token.starts_with("mwt_"), "{accepted}");
    let member_id = text(&accepted, "member_id").to_owned();

    let members = owner.json(&["workspace", "member", "list", "acme"]);
    let alice_row = row(&members, "alice@acme.test").expect("alice is listed");
    assert_eq!(alice_row["member_id"], member_id.as_str());
    assert_eq!(alice_row["role"], "member");
    assert_eq!(alice_row["kind"], "human");
    assert_eq!(alice_row["token_status"], "active");
    assert_eq!(alice_row["tool_calls"], 0);
    assert!(alice_row["joined_at"].is_string(), "{alice_row}");
    assert!(alice_row.get("last_active_at").is_some(), "{alice_row}");
    assert_eq!(row(&members, "owner@acme.test").expect("the owner is listed")["role"], "owner");

    // The readable table shows the same.
    let table = owner.run(&["workspace", "member", "list", "acme"]);
    assert!(table.status.success(), "{}", table.stderr);
    assert!(table.stdout.contains("EMAIL") && table.stdout.contains("alice@acme.test"), "{}", table.stdout);

    // A used code does not work twice; a plain member sees only their own row and cannot invite.
    let again = alice.fails(&["invite", "accept", &code]);
    assert!(!again.contains(&code), "the error repeats the secret code: {again}");
    let own = alice.json(&["workspace", "member", "list", "acme"]);
    assert_eq!(own.as_array().expect("a list").len(), 1, "{own}");
    assert_eq!(own[0]["email"], "alice@acme.test");
    alice.fails(&["workspace", "member", "invite", "acme", "mallory@acme.test"]);

    // Removal revokes the token before the command returns.
    let removed = owner.json(&["workspace", "member", "remove", "acme", "alice@acme.test"]);
    assert_eq!(removed["token_status"], "revoked");
    assert_eq!(removed["email"], "alice@acme.test");
    let members = owner.json(&["workspace", "member", "list", "acme"]);
    if let Some(alice_row) = row(&members, "alice@acme.test") {
        assert_eq!(alice_row["token_status"], "revoked", "{members}");
    }
    owner.fails(&["workspace", "member", "remove", "acme", "alice@acme.test"]);

    // Invited again, she gets a new token.
    let invitation = owner.json(&["workspace", "member", "invite", "acme", "alice@acme.test"]);
    let accepted = alice.json(&["invite", "accept", text(&invitation, "code")]);
    let second_token = text(&accepted, "token");
    assert!(second_token.starts_with("mwt_"));
    assert_ne!(second_token, first_token);
    let members = owner.json(&["workspace", "member", "list", "acme"]);
    let active: Vec<_> = members
        .as_array()
        .expect("a list")
        .iter()
        .filter(|m| m["email"] == "alice@acme.test" && m["token_status"] == "active")
        .collect();
    assert_eq!(active.len(), 1, "{members}");
}

#[test]
fn an_invitee_without_an_account_signs_up_then_accepts() {
    let server = Server::start();
    let owner = server.signup("owner@beta.test");
    owner.json(&["workspace", "create", "beta", "--plan", "pro"]);

    let invitation = owner.json(&["workspace", "member", "invite", "beta", "bob@beta.test", "--role", "admin"]);
    assert_eq!(invitation["has_account"], false, "{invitation}");
    let code = text(&invitation, "code").to_owned();

    // Without an account there is no one to accept as.
    let bob = server.user("bob@beta.test");
    let refused = bob.fails(&["invite", "accept", &code]);
    assert!(refused.contains("login") || refused.contains("log in"), "{refused}");

    // Someone else cannot accept an invitation addressed to bob.
    let carol = server.signup("carol@beta.test");
    carol.fails(&["invite", "accept", &code]);

    let signed_up = bob.signup();
    assert_eq!(signed_up["email"], "bob@beta.test");
    assert!(text(&signed_up, "token").starts_with("mwa_"), "{signed_up}");
    assert!(!text(&signed_up, "account_id").is_empty());
    let accepted = bob.json(&["invite", "accept", &code]);
    assert_eq!(accepted["workspace"], "beta");
    assert!(text(&accepted, "token").starts_with("mwt_"));

    // As an admin, bob manages the workspace; logging in again gives a working token.
    let logged_in = bob.login();
    assert_eq!(logged_in["email"], "bob@beta.test");
    bob.json(&["workspace", "member", "invite", "beta", "dan@beta.test"]);
    let me = bob.json(&["account", "show"]);
    assert!(me["workspaces"].as_array().expect("a list").iter().any(|w| w["workspace"] == "beta"), "{me}");
    // An account token works from the environment too, with no saved login.
    let elsewhere = server.user("bob@beta.test");
    let output = elsewhere
        .command(&["account", "show", "--json"])
        .env("ROLLCALL_TOKEN", text(&logged_in, "token"))
        .output()
        .expect("rollcall runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let shown: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(shown["email"], "bob@beta.test");
    let refused = elsewhere.fails(&["account", "show"]);
    assert!(refused.contains("not logged in"), "{refused}");
    // Logging out forgets the saved token.
    bob.json(&["logout"]);
    bob.fails(&["workspace", "list"]);
    bob.login();

    let wrong = server.user("bob@beta.test");
    let outcome =
        wrong.run_with_stdin(&["login", "--email", "bob@beta.test", "--password-stdin"], "not-the-password\n");
    assert!(!outcome.status.success(), "a wrong password logged in");
    assert!(outcome.stderr.contains("error"), "{}", outcome.stderr);

    // Bad input is refused with a message, and nothing is written.
    owner.fails(&["workspace", "member", "invite", "beta", "not-an-email"]);
    owner.fails(&["workspace", "member", "invite", "nosuchworkspace", "x@beta.test"]);
    let unknown_plan = owner.run(&["workspace", "create", "delta", "--plan", "platinum"]);
    assert!(!unknown_plan.status.success());
}

#[test]
fn resend_replaces_the_code_and_cancel_frees_the_seat() {
    let server = Server::start();
    let owner = server.signup("owner@gamma.test");
    let dave = server.signup("dave@gamma.test");
    let erin = server.signup("erin@gamma.test");
    owner.json(&["workspace", "create", "gamma", "--plan", "starter"]);

    let first = owner.json(&["workspace", "member", "invite", "gamma", "dave@gamma.test"]);
    let resent = owner.json(&["workspace", "invite", "resend", "gamma", "dave@gamma.test"]);
    assert_eq!(resent["invitation_id"], first["invitation_id"]);
    assert_ne!(resent["code"], first["code"]);
    dave.fails(&["invite", "accept", text(&first, "code")]);
    // Resending by id works too, and again retires the code before it.
    let id = text(&first, "invitation_id");
    let resent_again = owner.json(&["workspace", "invite", "resend", "gamma", id]);
    dave.fails(&["invite", "accept", text(&resent, "code")]);
    dave.json(&["invite", "accept", text(&resent_again, "code")]);

    // Fill the plan: owner, dave, and three pending invitations.
    let erin_invitation = owner.json(&["workspace", "member", "invite", "gamma", "erin@gamma.test"]);
    owner.json(&["workspace", "member", "invite", "gamma", "f1@gamma.test"]);
    owner.json(&["workspace", "member", "invite", "gamma", "f2@gamma.test"]);
    owner.fails(&["workspace", "member", "invite", "gamma", "f3@gamma.test"]);

    let cancelled = owner.json(&["workspace", "invite", "cancel", "gamma", "erin@gamma.test"]);
    assert_eq!(cancelled["status"], "cancelled");
    erin.fails(&["invite", "accept", text(&erin_invitation, "code")]);
    owner.json(&["workspace", "member", "invite", "gamma", "f3@gamma.test"]);

    let invitations = owner.json(&["workspace", "invite", "list", "gamma"]);
    let statuses: Vec<(String, String)> = invitations
        .as_array()
        .expect("a list")
        .iter()
        .map(|i| (text(i, "email").to_owned(), text(i, "status").to_owned()))
        .collect();
    assert!(statuses.contains(&("erin@gamma.test".into(), "cancelled".into())), "{statuses:?}");
    assert!(statuses.contains(&("f3@gamma.test".into(), "pending".into())), "{statuses:?}");
    for invitation in invitations.as_array().expect("a list") {
        assert!(invitation["delivery"].is_string(), "{invitation}");
    }
    let table = owner.run(&["workspace", "invite", "list", "gamma"]);
    assert!(table.stdout.contains("f3@gamma.test") && table.stdout.contains("STATUS"), "{}", table.stdout);
}

#[test]
fn an_expired_invitation_cannot_be_accepted_and_frees_its_seat() {
    let mut server = Server::start();
    let owner = server.signup("owner@eps.test");
    let frank = server.signup("frank@eps.test");
    owner.json(&["workspace", "create", "eps", "--plan", "starter"]);
    let short = owner.json(&["workspace", "member", "invite", "eps", "frank@eps.test", "--expires-in-hours", "1"]);
    for n in 1..=3 {
        owner.json(&["workspace", "member", "invite", "eps", &format!("p{n}@eps.test")]);
    }
    owner.fails(&["workspace", "member", "invite", "eps", "late@eps.test"]);

    // Two hours later, by the server's clock.
    server.restart_with(ServerOptions::default().clock_ahead_hours(2));
    let refused = frank.fails(&["invite", "accept", text(&short, "code")]);
    assert!(refused.contains("expire"), "{refused}");
    owner.json(&["workspace", "member", "invite", "eps", "late@eps.test"]);
    owner.fails(&["workspace", "member", "invite", "eps", "later@eps.test"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let invitations = owner.json(&["workspace", "invite", "list", "eps"]);
        let frank_row = crate::row(&invitations, "frank@eps.test").expect("frank's invitation is listed");
        if frank_row["status"] == "expired" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the invitation was never marked expired: {invitations}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn bots_upstream_analytics_and_workspace_commands() {
    let server = Server::start();
    let owner = server.signup("owner@zeta.test");
    owner.json(&["workspace", "create", "zeta", "--plan", "business"]);

    let bot = owner.json(&["workspace", "bot", "create", "zeta", "ci-runner"]);
    assert!(text(&bot, "token").starts_with("mwb_"), "{bot}");
    assert!(!text(&bot, "bot_id").is_empty());
    let bots = owner.json(&["workspace", "bot", "list", "zeta"]);
    let listed = bots.as_array().expect("a list").iter().find(|b| b["name"] == "ci-runner").expect("listed");
    assert_eq!(listed["token_status"], "active");
    assert_eq!(listed["bot_id"], bot["bot_id"]);
    let revoked = owner.json(&["workspace", "bot", "revoke", "zeta", "ci-runner"]);
    assert_eq!(revoked["token_status"], "revoked");
    let bots = owner.json(&["workspace", "bot", "list", "zeta"]);
    assert_eq!(bots[0]["token_status"], "revoked", "{bots}");
    owner.fails(&["workspace", "bot", "revoke", "zeta", "no-such-bot"]);

    let upstream = owner.json(&["workspace", "upstream", "set", "zeta", "http://127.0.0.1:9/mcp"]);
    assert_eq!(upstream["upstream"], "http://127.0.0.1:9/mcp");
    let shown = owner.json(&["workspace", "show", "zeta"]);
    assert_eq!(shown["workspace"], "zeta");
    assert_eq!(shown["plan"], "business");
    assert_eq!(shown["seats"], 100);
    assert_eq!(shown["upstream"], "http://127.0.0.1:9/mcp");
    let list = owner.json(&["workspace", "list"]);
    assert!(list.as_array().expect("a list").iter().any(|w| w["workspace"] == "zeta"), "{list}");
    let analytics = owner.json(&["workspace", "analytics", "zeta"]);
    assert!(analytics.is_object(), "{analytics}");
    let readable = owner.run(&["workspace", "analytics", "zeta"]);
    assert!(readable.status.success(), "{}", readable.stderr);

    // The audit log: one JSON object per line, oldest first.
    let audit = owner.run(&["audit", "log", "--workspace", "zeta", "--json"]);
    assert!(audit.status.success(), "{}", audit.stderr);
    let events: Vec<serde_json::Value> =
        audit.stdout.lines().map(|line| serde_json::from_str(line).expect("one JSON object per line")).collect();
    let types: Vec<&str> = events.iter().map(|e| text(e, "type")).collect();
    for expected in ["WorkspaceCreated", "BotCreated", "BotRevoked", "UpstreamSet"] {
        assert!(types.contains(&expected), "{expected} missing from {types:?}");
    }
    for event in &events {
        for field in ["position", "recorded_at", "actor", "data"] {
            assert!(event.get(field).is_some(), "{field} missing from {event}");
        }
    }
    let only_bots = owner.run(&["audit", "log", "--workspace", "zeta", "--type", "BotCreated", "--json"]);
    assert_eq!(only_bots.stdout.lines().count(), 1, "{}", only_bots.stdout);
    let future = owner.run(&["audit", "log", "--workspace", "zeta", "--since", "2999-01-01T00:00:00Z", "--json"]);
    assert!(future.status.success() && future.stdout.trim().is_empty(), "{}", future.stdout);

    let refused = owner.fails(&["workspace", "delete", "zeta"]);
    assert!(refused.contains("--yes"), "{refused}");
    owner.json(&["workspace", "delete", "zeta", "--yes"]);
    owner.fails(&["workspace", "show", "zeta"]);
}

#[test]
fn offboarding_removes_a_person_from_every_workspace() {
    let server = Server::start();
    let owner = server.signup("owner@multi.test");
    let gina = server.signup("gina@multi.test");
    for workspace in ["north", "south"] {
        owner.json(&["workspace", "create", workspace, "--plan", "pro"]);
        let invitation = owner.json(&["workspace", "member", "invite", workspace, "gina@multi.test"]);
        gina.json(&["invite", "accept", text(&invitation, "code")]);
    }

    let plan = owner.json(&["member", "offboard", "gina@multi.test", "--dry-run"]);
    assert_eq!(plan["dry_run"], true);
    let steps = plan["steps"].as_array().expect("steps");
    for workspace in ["north", "south"] {
        assert!(steps.iter().any(|s| s["workspace"] == workspace), "{plan}");
    }
    assert!(plan["applied"].as_array().is_none_or(Vec::is_empty), "{plan}");
    for workspace in ["north", "south"] {
        let members = owner.json(&["workspace", "member", "list", workspace]);
        assert_eq!(row(&members, "gina@multi.test").expect("listed")["token_status"], "active");
    }

    let done = owner.json(&["member", "offboard", "gina@multi.test"]);
    assert_eq!(done["dry_run"], false);
    assert_eq!(done["applied"].as_array().expect("applied").len(), steps.len(), "{done}");
    assert!(done["failed"].as_array().is_none_or(Vec::is_empty), "{done}");
    for workspace in ["north", "south"] {
        let members = owner.json(&["workspace", "member", "list", workspace]);
        if let Some(gina_row) = row(&members, "gina@multi.test") {
            assert_eq!(gina_row["token_status"], "revoked", "{members}");
        }
    }
}

#[test]
fn admins_manage_only_their_own_workspaces() {
    let server = Server::start();
    let owner = server.signup("owner@one.test");
    let other_owner = server.signup("owner@two.test");
    let admin = server.signup("admin@one.test");
    owner.json(&["workspace", "create", "one", "--plan", "pro"]);
    other_owner.json(&["workspace", "create", "two", "--plan", "pro"]);
    let invitation = owner.json(&["workspace", "member", "invite", "one", "admin@one.test", "--role", "admin"]);
    admin.json(&["invite", "accept", text(&invitation, "code")]);
    let invitation = other_owner.json(&["workspace", "member", "invite", "two", "pat@two.test"]);
    let pat_id = text(&invitation, "invitation_id").to_owned();

    // An admin of "one" manages "one"...
    admin.json(&["workspace", "member", "invite", "one", "new@one.test"]);
    admin.json(&["workspace", "member", "list", "one"]);
    // ...and nothing of "two".
    for args in [
        vec!["workspace", "member", "list", "two"],
        vec!["workspace", "member", "invite", "two", "x@two.test"],
        vec!["workspace", "member", "remove", "two", "owner@two.test"],
        vec!["workspace", "invite", "list", "two"],
        vec!["workspace", "invite", "cancel", "two", pat_id.as_str()],
        vec!["workspace", "bot", "create", "two", "intruder"],
        vec!["workspace", "plan", "set", "two", "free"],
        vec!["workspace", "upstream", "set", "two", "http://127.0.0.1:9/"],
        vec!["workspace", "delete", "two", "--yes"],
        vec!["audit", "log", "--workspace", "two"],
    ] {
        admin.fails(&args);
    }
    // Only the owner deletes a workspace, not an admin.
    admin.fails(&["workspace", "delete", "one", "--yes"]);
    // Offboarding reaches only the workspaces the caller manages.
    let plan = admin.json(&["member", "offboard", "owner@two.test", "--dry-run"]);
    assert!(plan["steps"].as_array().is_none_or(|steps| steps.iter().all(|s| s["workspace"] != "two")), "{plan}");
    let invitations = other_owner.json(&["workspace", "invite", "list", "two"]);
    assert_eq!(crate::row(&invitations, "pat@two.test").expect("listed")["status"], "pending");
}
