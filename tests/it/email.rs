//! Invitation emails: through a real SMTP server, and to the outbox folder by default.

use std::time::Duration;

use rollcall_e2e::{Server, ServerOptions, SmtpSink, email_body, email_header};

use crate::text;

#[test]
fn invitation_emails_reach_a_real_smtp_server() {
    let smtp = SmtpSink::start();
    let server = Server::start_with(ServerOptions { smtp: Some(smtp.url()), ..ServerOptions::default() });
    let owner = server.signup("owner@mail.test");
    server.signup("ivan@mail.test");
    owner.json(&["workspace", "create", "mailroom", "--plan", "starter"]);

    let to_newcomer = owner.json(&["workspace", "member", "invite", "mailroom", "hana@mail.test"]);
    let to_member = owner.json(&["workspace", "member", "invite", "mailroom", "ivan@mail.test"]);

    let wait = Duration::from_secs(30);
    let to = |email: &'static str| move |m: &str| email_header(m, "to").is_some_and(|to| to.contains(email));
    let newcomer_mail = smtp.wait_for(wait, to("hana@mail.test"));
    let body = email_body(&newcomer_mail);
    assert!(body.contains("mailroom"), "no workspace in the email:\n{body}");
    assert!(body.contains("owner@mail.test"), "no inviter in the email:\n{body}");
    assert!(body.contains(text(&to_newcomer, "code")), "no code in the email:\n{body}");
    assert!(body.contains(text(&to_newcomer, "accept_url")), "no accept link in the email:\n{body}");
    assert!(body.to_lowercase().contains("sign up"), "no sign-up instructions for a newcomer:\n{body}");
    let expires_day = &text(&to_newcomer, "expires_at")[..10];
    assert!(body.contains(expires_day), "no expiry ({expires_day}) in the email:\n{body}");
    let subject = email_header(&newcomer_mail, "subject").unwrap_or_default();
    assert!(subject.contains("mailroom"), "{subject}");

    let member_mail = smtp.wait_for(wait, to("ivan@mail.test"));
    let body = email_body(&member_mail);
    assert!(body.contains(text(&to_member, "code")), "no code in the email:\n{body}");
    assert!(!body.to_lowercase().contains("sign up first"), "an account holder is told to sign up:\n{body}");

    // A resend sends a new email with the new code.
    let resent = owner.json(&["workspace", "invite", "resend", "mailroom", "hana@mail.test"]);
    let code = text(&resent, "code").to_owned();
    smtp.wait_for(wait, move |m| email_body(m).contains(&code));

    // Delivery shows in the invitation list.
    let deadline = std::time::Instant::now() + wait;
    loop {
        let invitations = owner.json(&["workspace", "invite", "list", "mailroom"]);
        let all_delivered = invitations.as_array().expect("a list").iter().all(|i| i["delivery"] == "delivered");
        if all_delivered {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not delivered: {invitations}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!server.data_dir().join("outbox").read_dir().is_ok_and(|mut d| d.next().is_some()));
}

#[test]
fn without_smtp_invitation_emails_go_to_the_outbox() {
    let server = Server::start();
    let owner = server.signup("owner@outbox.test");
    owner.json(&["workspace", "create", "outboxed", "--plan", "starter"]);
    let invitation = owner.json(&["workspace", "member", "invite", "outboxed", "jo@outbox.test"]);

    let outbox = server.data_dir().join("outbox");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let email = loop {
        let found = std::fs::read_dir(&outbox).ok().and_then(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .find(|m| email_header(m, "to").is_some_and(|to| to.contains("jo@outbox.test")))
        });
        if let Some(email) = found {
            break email;
        }
        assert!(std::time::Instant::now() < deadline, "no email in {}", outbox.display());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(email_body(&email).contains(text(&invitation, "code")));
}
