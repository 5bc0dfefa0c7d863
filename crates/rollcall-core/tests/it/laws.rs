//! The laws, as property tests over random command sequences:
//! no sequence exceeds a plan's seats; a removed member's token is never valid again; replaying
//! the events (through JSON) gives the state built as the commands ran; no event contains a
//! token, a code or a password.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use rollcall_core::account::{self, AccountCommand, AccountState};
use rollcall_core::envelope::{Actor, Metadata};
use rollcall_core::events::{Event, RemovalReason, Role};
use rollcall_core::ids::*;
use rollcall_core::plan::{PLANS, Plan};
use rollcall_core::token::{Secret, SecretKind, TokenHash};
use rollcall_core::workspace::{self, TokenStatus, WorkspaceCommand, WorkspaceState};
use rollcall_core::{Email, IssuedToken};

use crate::fixtures::*;

/// People who may act; index 0 is the owner.
const PEOPLE: [&str; 8] = ["owner", "ann", "ben", "cat", "dan", "eve", "fay", "gus"];

#[derive(Clone, Debug)]
enum Op {
    Invite { actor: usize, who: usize, admin: bool },
    Accept { who: usize, invitation: usize },
    Resend { actor: usize, invitation: usize },
    Cancel { actor: usize, invitation: usize },
    Expire { invitation: usize },
    Remove { actor: usize, who: usize },
    ChangePlan { plan: usize },
    CreateBot { actor: usize, name: usize },
    RevokeBot { actor: usize, name: usize },
    Wait { hours: i64 },
}

fn op() -> impl Strategy<Value = Op> {
    let person = 0..PEOPLE.len();
    prop_oneof![
        4 => (0..3usize, 1..PEOPLE.len(), any::<bool>()).prop_map(|(actor, who, admin)| Op::Invite { actor, who, admin }),
        4 => (1..PEOPLE.len(), 0..16usize).prop_map(|(who, invitation)| Op::Accept { who, invitation }),
        1 => (0..3usize, 0..16usize).prop_map(|(actor, invitation)| Op::Resend { actor, invitation }),
        1 => (0..3usize, 0..16usize).prop_map(|(actor, invitation)| Op::Cancel { actor, invitation }),
        1 => (0..16usize).prop_map(|invitation| Op::Expire { invitation }),
        2 => (0..3usize, person).prop_map(|(actor, who)| Op::Remove { actor, who }),
        2 => (0..PLANS.len()).prop_map(|plan| Op::ChangePlan { plan }),
        1 => (0..3usize, 0..3usize).prop_map(|(actor, name)| Op::CreateBot { actor, name }),
        1 => (0..3usize, 0..3usize).prop_map(|(actor, name)| Op::RevokeBot { actor, name }),
        1 => (1..200i64).prop_map(|hours| Op::Wait { hours }),
    ]
}

struct World {
    now: DateTime<Utc>,
    events: Vec<Event>,
    live: WorkspaceState,
    secrets: Vec<String>,
    revoked: BTreeSet<TokenHash>,
    counter: u8,
}

impl World {
    fn fresh(&mut self, kind: SecretKind) -> (Secret, u128) {
        self.counter = self.counter.wrapping_add(1);
        let n = u128::from(self.counter) + 1_000_000 * (self.events.len() as u128 + 1);
        let mut random = [self.counter; 32];
        random[..16].copy_from_slice(&n.to_be_bytes());
        let secret = Secret::generate(kind, random);
        self.secrets.push(secret.expose().to_owned());
        (secret, n)
    }

    fn apply(&mut self, op: Op) {
        let ctx = |who: usize, now| as_(PEOPLE[who], now);
        let invitation_id = |state: &WorkspaceState, i: usize| {
            state.invitations.get(i % state.invitations.len().max(1)).map(|i| i.invitation_id)
        };
        let (command, context) = match op {
            Op::Wait { hours } => {
                self.now += Duration::hours(hours);
                return;
            }
            Op::Invite { actor, who, admin } => {
                let (code, n) = self.fresh(SecretKind::InvitationCode);
                let role = if admin { Role::Admin } else { Role::Member };
                let command = WorkspaceCommand::Invite {
                    invitation_id: InvitationId(id(n)),
                    email: email(PEOPLE[who]),
                    role,
                    code_hash: code.hash(),
                    ttl: Duration::days(7),
                };
                (command, ctx(actor, self.now))
            }
            Op::Accept { who, invitation } => {
                // Present the code of the chosen invitation if we know it: codes are kept in
                // order of issue, which matches the invitation (or resend) they belong to.
                let Some(target) = self.live.invitations.get(invitation % self.live.invitations.len().max(1)) else {
                    return;
                };
                let code_hash = target.code_hash;
                let (token, n) = self.fresh(SecretKind::MemberToken);
                let command = WorkspaceCommand::Accept {
                    code_hash,
                    member_id: MemberId(id(n)),
                    token: IssuedToken::of(TokenId(id(n)), &token),
                };
                (command, ctx(who, self.now))
            }
            Op::Resend { actor, invitation } => {
                let Some(invitation_id) = invitation_id(&self.live, invitation) else { return };
                let (code, _) = self.fresh(SecretKind::InvitationCode);
                (
                    WorkspaceCommand::Resend { invitation_id, code_hash: code.hash(), ttl: Duration::days(7) },
                    ctx(actor, self.now),
                )
            }
            Op::Cancel { actor, invitation } => {
                let Some(invitation_id) = invitation_id(&self.live, invitation) else { return };
                (WorkspaceCommand::Cancel { invitation_id }, ctx(actor, self.now))
            }
            Op::Expire { invitation } => {
                let Some(invitation_id) = invitation_id(&self.live, invitation) else { return };
                (WorkspaceCommand::Expire { invitation_id }, system(self.now))
            }
            Op::Remove { actor, who } => (
                WorkspaceCommand::Remove { email: email(PEOPLE[who]), reason: RemovalReason::Removed },
                ctx(actor, self.now),
            ),
            Op::ChangePlan { plan } => (WorkspaceCommand::ChangePlan { plan: PLANS[plan] }, ctx(0, self.now)),
            Op::CreateBot { actor, name } => {
                let (token, n) = self.fresh(SecretKind::BotToken);
                let command = WorkspaceCommand::CreateBot {
                    bot_id: BotId(id(n)),
                    name: format!("bot-{name}"),
                    token: IssuedToken::of(TokenId(id(n)), &token),
                };
                (command, ctx(actor, self.now))
            }
            Op::RevokeBot { actor, name } => {
                (WorkspaceCommand::RevokeBot { name: format!("bot-{name}") }, ctx(actor, self.now))
            }
        };
        // A refusal is fine (and common); it must simply record nothing.
        if let Ok(new) = workspace::decide(&self.live, command, &context) {
            for event in &new {
                workspace::evolve(&mut self.live, event);
                match event {
                    Event::MemberRemoved(e) => {
                        self.revoked.insert(e.token_hash);
                    }
                    Event::BotRevoked(e) => {
                        self.revoked.insert(e.token_hash);
                    }
                    _ => {}
                }
            }
            self.events.extend(new);
        }
    }
}

fn world(plan: Plan) -> World {
    let events = workspace_with(plan, vec![]);
    let live = workspace::replay(&events);
    World {
        now: t0(),
        events,
        live,
        secrets: vec![secret(SecretKind::MemberToken, 1).expose().to_owned()],
        revoked: BTreeSet::new(),
        counter: 0,
    }
}

fn plan() -> impl Strategy<Value = Plan> {
    prop::sample::select(PLANS.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// No sequence of commands ever puts a workspace over its plan's seats.
    #[test]
    fn seat_limits_hold(start in plan(), ops in prop::collection::vec(op(), 1..80)) {
        let mut world = world(start);
        for op in ops {
            world.apply(op);
            let plan = world.live.plan.unwrap();
            if let Some(limit) = plan.seats() {
                let used = world.live.seats_used(world.now);
                prop_assert!(used <= limit, "{used} seats used on {plan} (limit {limit})");
            }
        }
    }

    /// Once revoked, a token is never valid again, whatever follows.
    #[test]
    fn a_revoked_token_never_works_again(start in plan(), ops in prop::collection::vec(op(), 1..80)) {
        let mut world = world(start);
        for op in ops {
            world.apply(op);
            for hash in &world.revoked {
                prop_assert_eq!(world.live.token_status(hash), Some(TokenStatus::Revoked));
            }
        }
    }

    /// Replaying the recorded events, through their JSON form, gives the state built live.
    #[test]
    fn replay_equals_live(start in plan(), ops in prop::collection::vec(op(), 1..80)) {
        let mut world = world(start);
        for op in ops {
            world.apply(op);
        }
        let decoded: Vec<Event> = world
            .events
            .iter()
            .map(|e| {
                let stored = e.to_new_event(id(1), metadata());
                Event::decode(&stored.event_type, stored.schema_version, &stored.data).unwrap()
            })
            .collect();
        prop_assert_eq!(&decoded, &world.events);
        prop_assert_eq!(workspace::replay(&decoded), world.live);
    }

    /// No event, as stored, contains a token, an invitation code or a password.
    #[test]
    fn no_event_contains_a_secret(start in plan(), ops in prop::collection::vec(op(), 1..80), password in "[a-zA-Z0-9]{12,24}") {
        let mut world = world(start);
        for op in ops {
            world.apply(op);
        }
        let account_token = Secret::generate(SecretKind::AccountToken, [42; 32]);
        let signup = AccountCommand::SignUp {
            account_id: AccountId(id(3)),
            email: Email::parse("someone@example.com").unwrap(),
            // The caller hashes; the domain only ever sees the hash.
            password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ${}", hex_of(&password)),
            token: IssuedToken::of(TokenId(id(4)), &account_token),
        };
        let mut events = world.events.clone();
        events.extend(account::decide(&AccountState::default(), signup, t0()).unwrap());
        let mut secrets = world.secrets.clone();
        secrets.push(account_token.expose().to_owned());
        for event in &events {
            let stored = event.to_new_event(id(1), metadata());
            let text = String::from_utf8(stored.data.to_vec()).unwrap();
            for secret in &secrets {
                prop_assert!(!text.contains(secret.as_str()), "{} leaks a secret", event.event_type());
                prop_assert!(!text.contains(&secret[4..]), "{} leaks a secret body", event.event_type());
            }
            prop_assert!(!text.contains(&password), "{} leaks the password", event.event_type());
        }
    }
}

fn hex_of(text: &str) -> String {
    // Stands in for a hash of the password: a value derived from it that is not it.
    TokenHash::of(text).to_hex()
}

fn metadata() -> Metadata {
    Metadata { actor: Actor::System, correlation_id: id(9), causation_id: None, recorded_at: t0() }
}
