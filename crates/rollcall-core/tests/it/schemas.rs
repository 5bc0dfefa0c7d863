//! The event catalogue against `schemas/`: every event the code can produce validates against
//! its schema file, the files match the code, and published files never change.
//!
//! To publish the schema of a new event type or version, run
//! `ROLLCALL_WRITE_SCHEMAS=1 cargo test -p rollcall-core --test it schemas`: it writes the
//! missing files and records their SHA-256 in `schemas/published.sha256`. It never rewrites a
//! published file: a change to a published payload needs a new version and an upcaster.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::Duration;
use rollcall_core::events::*;
use rollcall_core::ids::*;
use rollcall_core::token::{SecretKind, TokenHash};
use rollcall_core::workspace::WorkspaceCommand;
use rollcall_core::{Email, Plan};
use sha2::{Digest, Sha256};

use crate::fixtures::*;

fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas")
}

fn file_name(event_type: &str, version: u32) -> String {
    format!("{event_type}.v{version}.json")
}

fn generated(event_type: &str) -> String {
    let schema = Event::schema_of(event_type).expect("every catalogued type has a schema");
    let mut text = serde_json::to_string_pretty(&schema).unwrap();
    text.push('\n');
    text
}

fn published() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(schemas_dir().join("published.sha256")).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (hash, name) = l.split_once("  ").expect("lines are `<sha256>  <file>`");
            (name.to_owned(), hash.to_owned())
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[test]
fn schema_files_match_the_code_and_published_files_never_change() {
    let dir = schemas_dir();
    let mut lock = published();
    let write = std::env::var_os("ROLLCALL_WRITE_SCHEMAS").is_some();
    for (event_type, version) in EVENT_TYPES {
        let name = file_name(event_type, *version);
        let path = dir.join(&name);
        let want = generated(event_type);
        if write && !lock.contains_key(&name) {
            std::fs::write(&path, &want).unwrap();
            lock.insert(name.clone(), sha256_hex(want.as_bytes()));
        }
        let have = std::fs::read_to_string(&path).unwrap_or_else(|_| {
            panic!("{name} is missing: run ROLLCALL_WRITE_SCHEMAS=1 cargo test -p rollcall-core --test it schemas")
        });
        assert_eq!(
            have, want,
            "{name} does not match the code: a published version never changes; bump the version in events.rs and add an upcaster"
        );
        assert!(lock.contains_key(&name), "{name} is not recorded in schemas/published.sha256");
    }
    if write {
        let text: String = lock.iter().map(|(name, hash)| format!("{hash}  {name}\n")).collect();
        std::fs::write(dir.join("published.sha256"), text).unwrap();
    }
    // Every published file, old versions included, is byte-for-byte what was published.
    for (name, hash) in published() {
        let bytes = std::fs::read(dir.join(&name)).unwrap_or_else(|_| panic!("published schema {name} was deleted"));
        assert_eq!(sha256_hex(&bytes), hash, "published schema {name} was changed");
    }
}

/// One sample of every event type, produced by the code.
fn samples() -> Vec<Event> {
    let mut events = workspace_with(
        Plan::Starter,
        vec![
            (invite("alice", Role::Admin, 1), as_("owner", t0())),
            (accept(1, 80, 5), as_("alice", t0())),
            (invite("bob", Role::Member, 2), as_("owner", t0())),
            (invite("carol", Role::Member, 3), as_("owner", t0())),
            (invite("dan", Role::Member, 4), as_("owner", t0())),
            (
                WorkspaceCommand::Resend {
                    invitation_id: InvitationId(id(102)),
                    code_hash: secret(SecretKind::InvitationCode, 9).hash(),
                    ttl: Duration::days(3),
                },
                as_("owner", t0()),
            ),
            (WorkspaceCommand::Cancel { invitation_id: InvitationId(id(103)) }, as_("owner", t0())),
            (WorkspaceCommand::Expire { invitation_id: InvitationId(id(104)) }, system(t0() + Duration::days(8))),
            (WorkspaceCommand::ChangePlan { plan: Plan::Pro }, as_("owner", t0())),
            (
                WorkspaceCommand::CreateBot {
                    bot_id: BotId(id(900)),
                    name: "ci".into(),
                    token: issued(SecretKind::BotToken, 7),
                },
                as_("owner", t0()),
            ),
            (WorkspaceCommand::RevokeBot { name: "ci".into() }, as_("owner", t0())),
            (WorkspaceCommand::SetUpstream { url: "https://mcp.example.com/mcp".into() }, as_("owner", t0())),
            (WorkspaceCommand::Remove { email: email("alice"), reason: RemovalReason::Removed }, as_("owner", t0())),
            (WorkspaceCommand::Delete, as_("owner", t0())),
        ],
    );
    let account_id = AccountId(id(3));
    events.extend(
        rollcall_core::account::decide(
            &Default::default(),
            rollcall_core::account::AccountCommand::SignUp {
                account_id,
                email: Email::parse("someone@example.com").unwrap(),
                password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
                token: issued(SecretKind::AccountToken, 8),
            },
            t0(),
        )
        .unwrap(),
    );
    events.push(Event::AccountTokenRevoked(AccountTokenRevoked {
        account_id,
        token_id: TokenId(id(5)),
        revoked_at: t0(),
    }));
    let workspace_id = WorkspaceId(id(1));
    let caller = Caller::Member { member_id: MemberId(id(80)) };
    let token_id = TokenId(id(10_005));
    events.push(Event::ToolCalled(ToolCalled {
        workspace_id,
        caller,
        token_id,
        tool: "search_issues".into(),
        request_id: "7".into(),
        arguments_bytes: 120,
        called_at: t0(),
    }));
    for outcome in [CallOutcome::Ok, CallOutcome::Error { code: Some(-32602) }, CallOutcome::UpstreamUnavailable] {
        events.push(Event::ToolCallCompleted(ToolCallCompleted {
            workspace_id,
            caller: Caller::Bot { bot_id: BotId(id(900)) },
            token_id,
            tool: "search_issues".into(),
            request_id: "7".into(),
            outcome,
            duration_ms: 12,
            completed_at: t0(),
        }));
    }
    events.push(Event::AccessDenied(AccessDenied {
        workspace_id,
        caller,
        token_id,
        reason: DenialReason::Revoked,
        denied_at: t0(),
    }));
    events.push(Event::RateLimited(RateLimited {
        workspace_id,
        caller,
        token_id,
        refused: 5,
        window_start: t0(),
        window_end: t0() + Duration::seconds(60),
    }));
    events
}

#[test]
fn every_event_the_code_produces_validates_against_its_schema_file() {
    let events = samples();
    let covered: std::collections::BTreeSet<&str> = events.iter().map(|e| e.event_type()).collect();
    for (event_type, _) in EVENT_TYPES {
        assert!(covered.contains(event_type), "no sample of {event_type}: add one so its schema is checked");
    }
    for event in &events {
        let name = file_name(event.event_type(), event.schema_version());
        let schema: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(schemas_dir().join(&name)).unwrap()).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{name}: {e}"));
        // What is stored: the payload's own serialisation, the same JSON as its tree.
        let payload: serde_json::Value = serde_json::from_slice(&event.to_json_bytes()).unwrap();
        assert_eq!(payload, event.to_json(), "{}: stored JSON and JSON tree differ", event.event_type());
        let errors: Vec<String> = validator.iter_errors(&payload).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{} does not validate against {name}: {errors:?}", event.event_type());
    }
}

#[test]
fn schemas_refuse_what_the_code_refuses() {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(schemas_dir().join("MemberInvited.v1.json")).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let mut payload = samples().into_iter().find(|e| e.event_type() == "MemberInvited").unwrap().to_json();
    payload["code"] = serde_json::json!("mwi_not-allowed");
    assert!(!validator.is_valid(&payload), "unknown fields are refused, so a code cannot be smuggled in");
    payload.as_object_mut().unwrap().remove("code");
    payload["code_hash"] = serde_json::json!("not-a-hash");
    assert!(!validator.is_valid(&payload));
    let _ = TokenHash::of("x");
}

#[test]
fn unknown_types_and_future_versions_are_refused_with_what_to_do() {
    let error = Event::decode("SomethingNew", 1, b"{}").unwrap_err();
    assert!(error.to_string().contains("upgrade Rollcall"));
    let error = Event::decode("MemberInvited", 99, b"{}").unwrap_err();
    assert!(error.to_string().contains("newer than this Rollcall knows"));
}
