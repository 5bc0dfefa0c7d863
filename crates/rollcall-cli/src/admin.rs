//! The admin commands: each one is an API call, printed as a table or message, or as JSON.

use std::io::{IsTerminal, Read, Write};

use anyhow::{Context, bail};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde_json::{Value, json};

use crate::cli::{
    AccountCommand, AuditCommand, BotCommand, Command, Global, InviteCommand, LoginArgs, MemberCommand, PlanCommand,
    SignupArgs, UpstreamCommand, WorkspaceCommand, WorkspaceInviteCommand, WorkspaceMemberCommand,
};
use crate::client::Api;
use crate::credentials::{Credentials, Login};
use crate::output::{Progress, Table, field, print_json, print_line, print_value, with_progress};

/// Longest password read from standard input, in bytes.
const PASSWORD_BYTES_MAX: u64 = 4096;
/// Events asked for per page of the audit log.
const AUDIT_PAGE_EVENTS: u32 = 200;
/// Most pages of the audit log fetched by one command (a million events at the page size).
const AUDIT_PAGES_MAX: u32 = 5_000;

/// Runs one admin command against the server named in `global`.
pub async fn run(global: Global, command: Command) -> anyhow::Result<()> {
    let credentials = Credentials::from_env()?;
    let token = match &global.token {
        Some(token) => Some(token.clone()),
        None => credentials.get(&global.server)?.map(|login| login.token),
    };
    let api = Api::new(&global.server, token)?;
    let ctx = Ctx { api, global, credentials };
    match command {
        Command::Account(AccountCommand::Signup(args)) => signup(&ctx, args).await,
        Command::Account(AccountCommand::Show) => account_show(&ctx).await,
        Command::Login(args) => login(&ctx, args).await,
        Command::Logout => logout(&ctx),
        Command::Workspace(command) => workspace(&ctx, command).await,
        Command::Invite(InviteCommand::Accept { code }) => accept(&ctx, &code).await,
        Command::Member(MemberCommand::Offboard { email, dry_run }) => offboard(&ctx, &email, dry_run).await,
        Command::Audit(AuditCommand::Log { workspace, member, event_type, since, until }) => {
            let filter = AuditFilter { member, event_type, since, until };
            audit_log(&ctx, &workspace, filter).await
        }
        Command::Serve(_) | Command::Api(_) | Command::Gateway(_) | Command::Project(_) | Command::Store(_) => {
            unreachable!("serve and store run in process, not through the API")
        }
    }
}

struct Ctx {
    api: Api,
    global: Global,
    credentials: Credentials,
}

impl Ctx {
    fn json(&self) -> bool {
        self.global.json
    }

    /// Fails early with what to do when no token is at hand.
    fn require_login(&self) -> anyhow::Result<()> {
        if self.api.has_token() {
            Ok(())
        } else {
            bail!(
                "not logged in to {}: run `rollcall login --email EMAIL`, or pass --token / set ROLLCALL_TOKEN",
                self.global.server
            )
        }
    }

    /// Prints `value` as JSON with `--json`, else runs `human`.
    fn print(&self, value: &Value, human: impl FnOnce(&Value) -> anyhow::Result<()>) -> anyhow::Result<()> {
        if self.json() { print_json(value) } else { human(value) }
    }
}

async fn signup(ctx: &Ctx, args: SignupArgs) -> anyhow::Result<()> {
    let password = read_password(args.password_stdin, Confirm::Twice)?;
    let answer = ctx.api.post(&["accounts"], json!({"email": args.email, "password": password})).await?;
    let path = save_login(ctx, &answer)?;
    ctx.print(&answer, |answer| {
        print_line(&format!(
            "signed up as {} (account {}); logged in, token saved to {}",
            field(answer, "email"),
            field(answer, "account_id"),
            path.display()
        ))
    })
}

async fn login(ctx: &Ctx, args: LoginArgs) -> anyhow::Result<()> {
    let password = read_password(args.password_stdin, Confirm::Once)?;
    let answer = ctx.api.post(&["login"], json!({"email": args.email, "password": password})).await?;
    let path = save_login(ctx, &answer)?;
    ctx.print(&answer, |answer| {
        print_line(&format!(
            "logged in to {} as {}; token saved to {}",
            ctx.global.server,
            field(answer, "email"),
            path.display()
        ))
    })
}

fn logout(ctx: &Ctx) -> anyhow::Result<()> {
    let removed = ctx.credentials.remove(&ctx.global.server)?;
    let answer = json!({"server": ctx.global.server, "logged_out": removed});
    ctx.print(&answer, |_| {
        if removed {
            print_line(&format!("logged out of {}", ctx.global.server))
        } else {
            print_line(&format!("no saved login for {}", ctx.global.server))
        }
    })
}

async fn account_show(ctx: &Ctx) -> anyhow::Result<()> {
    ctx.require_login()?;
    let me = ctx.api.get(&["me"], &[]).await?;
    ctx.print(&me, |me| {
        print_line(&format!("{} (account {})", field(me, "email"), field(me, "account_id")))?;
        let workspaces = me.get("workspaces").cloned().unwrap_or(Value::Null);
        Table::of(&workspaces, &["workspace", "role"]).print_or("no workspaces yet")
    })
}

async fn workspace(ctx: &Ctx, command: WorkspaceCommand) -> anyhow::Result<()> {
    ctx.require_login()?;
    let api = &ctx.api;
    match command {
        WorkspaceCommand::Create { name, plan } => {
            let answer = api.post(&["workspaces"], json!({"name": name, "plan": plan.name()})).await?;
            ctx.print(&answer, |a| {
                print_line(&format!(
                    "created workspace {} ({} plan, {}); you are its owner",
                    field(a, "workspace"),
                    field(a, "plan"),
                    seats_text(a.get("seats"))
                ))?;
                if let Some(token) = a.get("owner_token").and_then(Value::as_str) {
                    print_line(&format!("your member token (shown once, keep it safe): {token}"))?;
                }
                Ok(())
            })
        }
        WorkspaceCommand::List => {
            let answer = api.get(&["workspaces"], &[]).await?;
            ctx.print(&answer, |a| Table::of(a, &["workspace", "plan", "role", "id"]).print_or("no workspaces yet"))
        }
        WorkspaceCommand::Show { name } => {
            let answer = api.get(&["workspaces", &name], &[]).await?;
            ctx.print(&answer, |a| {
                print_line(&format!("workspace: {}", field(a, "workspace")))?;
                print_line(&format!("id:        {}", field(a, "id")))?;
                print_line(&format!("plan:      {}", field(a, "plan")))?;
                print_line(&format!("seats:     {} used of {}", field(a, "seats_used"), seats_text(a.get("seats"))))?;
                print_line(&format!("upstream:  {}", field(a, "upstream")))?;
                print_line(&format!("your role: {}", field(a, "role")))
            })
        }
        WorkspaceCommand::Delete { name, yes } => {
            if !yes {
                confirm(&format!("delete workspace {name}? every member and bot token stops working at once"))?;
            }
            let answer = api.delete(&["workspaces", &name]).await?;
            ctx.print(&answer, |_| print_line(&format!("deleted workspace {name}; every token is revoked")))
        }
        WorkspaceCommand::Plan(PlanCommand::Set { name, plan, dry_run }) => {
            let body = json!({"plan": plan.name(), "dry_run": dry_run});
            let answer = api.put(&["workspaces", &name, "plan"], body).await?;
            ctx.print(&answer, |a| print_plan_change(&name, a, dry_run))
        }
        WorkspaceCommand::Member(command) => workspace_member(ctx, command).await,
        WorkspaceCommand::Invite(command) => workspace_invite(ctx, command).await,
        WorkspaceCommand::Bot(command) => bot(ctx, command).await,
        WorkspaceCommand::Upstream(UpstreamCommand::Set { name, url }) => {
            let answer = api.put(&["workspaces", &name, "upstream"], json!({"url": url})).await?;
            ctx.print(&answer, |a| {
                print_line(&format!("{} now forwards to {}", field(a, "workspace"), field(a, "upstream")))
            })
        }
        WorkspaceCommand::Analytics { name, member } => {
            let query: Vec<(&str, String)> = member.into_iter().map(|m| ("member", m)).collect();
            let answer = api.get(&["workspaces", &name, "analytics"], &query).await?;
            ctx.print(&answer, print_value)
        }
    }
}

fn print_plan_change(name: &str, a: &Value, dry_run: bool) -> anyhow::Result<()> {
    let from = field(a, "from");
    let to = field(a, "to");
    let over: Vec<Value> = a.get("over_limit").and_then(Value::as_array).cloned().unwrap_or_default();
    let allowed = a.get("allowed").and_then(Value::as_bool).unwrap_or(false);
    let applied = a.get("applied").and_then(Value::as_bool).unwrap_or(false);
    let headline = if applied {
        format!("{name} is now on the {to} plan (was {from})")
    } else if dry_run && allowed {
        format!("{name} can move from {from} to {to} (dry run, nothing changed)")
    } else if dry_run {
        format!("{name} cannot move from {from} to {to} yet (dry run, nothing changed)")
    } else {
        format!("{name} stays on the {from} plan")
    };
    print_line(&headline)?;
    print_line(&format!(
        "seats: {} used, {} on {to}; active bots: {}",
        field(a, "seats_used"),
        match a.get("seats_limit") {
            Some(Value::Null) | None => "unlimited".to_owned(),
            Some(limit) => field(&json!({"l": limit}), "l"),
        },
        field(a, "bots_active")
    ))?;
    if !over.is_empty() {
        print_line(&format!("over the {to} limit; remove these (or cancel their invitations) first:"))?;
        Table::of(&Value::Array(over), &["kind", "email"]).print_or("")?;
    }
    Ok(())
}

async fn workspace_member(ctx: &Ctx, command: WorkspaceMemberCommand) -> anyhow::Result<()> {
    let api = &ctx.api;
    match command {
        WorkspaceMemberCommand::Invite { name, email, role, expires_in_hours } => {
            let mut body = json!({"email": email, "role": role.name()});
            if let Some(hours) = expires_in_hours {
                body["expires_in_hours"] = json!(hours);
            }
            let answer = api.post(&["workspaces", &name, "invitations"], body).await?;
            ctx.print(&answer, |a| {
                print_line(&format!(
                    "invited {} to {name} as {}; the invitation expires at {}",
                    field(a, "email"),
                    field(a, "role"),
                    field(a, "expires_at")
                ))?;
                if a.get("has_account").and_then(Value::as_bool) == Some(false) {
                    print_line("they have no account yet: the email tells them to sign up first")?;
                }
                print_line(&format!("email: {}", field(a, "delivery")))?;
                print_line(&format!("accept link (to share by other means): {}", field(a, "accept_url")))?;
                print_line(&format!("code: {}", field(a, "code")))
            })
        }
        WorkspaceMemberCommand::List { name } => {
            let answer = api.get(&["workspaces", &name, "members"], &[]).await?;
            ctx.print(&answer, |a| {
                Table::of(a, &["email", "role", "kind", "joined_at", "last_active_at", "token_status", "tool_calls"])
                    .print_or("no members")
            })
        }
        WorkspaceMemberCommand::Remove { name, email } => {
            let answer = api.delete(&["workspaces", &name, "members", &email]).await?;
            ctx.print(&answer, |a| {
                print_line(&format!(
                    "removed {} from {name}; their token is {}",
                    field(a, "email"),
                    field(a, "token_status")
                ))
            })
        }
    }
}

async fn workspace_invite(ctx: &Ctx, command: WorkspaceInviteCommand) -> anyhow::Result<()> {
    let api = &ctx.api;
    match command {
        WorkspaceInviteCommand::List { name } => {
            let answer = api.get(&["workspaces", &name, "invitations"], &[]).await?;
            ctx.print(&answer, |a| {
                Table::of(a, &["email", "role", "status", "invited_at", "expires_at", "delivery", "invitation_id"])
                    .print_or("no invitations")
            })
        }
        WorkspaceInviteCommand::Resend { name, invitation, expires_in_hours } => {
            let id = invitation_id(api, &name, &invitation).await?;
            let mut body = json!({});
            if let Some(hours) = expires_in_hours {
                body["expires_in_hours"] = json!(hours);
            }
            let answer = api.post(&["workspaces", &name, "invitations", &id, "resend"], body).await?;
            ctx.print(&answer, |a| {
                print_line(&format!(
                    "sent the invitation to {} again; the earlier code no longer works; expires at {}",
                    field(a, "email"),
                    field(a, "expires_at")
                ))?;
                print_line(&format!("email: {}", field(a, "delivery")))?;
                print_line(&format!("accept link: {}", field(a, "accept_url")))?;
                print_line(&format!("code: {}", field(a, "code")))
            })
        }
        WorkspaceInviteCommand::Cancel { name, invitation } => {
            let id = invitation_id(api, &name, &invitation).await?;
            let answer = api.delete(&["workspaces", &name, "invitations", &id]).await?;
            ctx.print(&answer, |_| {
                print_line(&format!("cancelled the invitation {invitation} to {name}; its seat is free again"))
            })
        }
    }
}

/// The id of the invitation named by `invitation`: an id as is, or the pending invitation of
/// an email address.
async fn invitation_id(api: &Api, workspace: &str, invitation: &str) -> anyhow::Result<String> {
    if !invitation.contains('@') {
        return Ok(invitation.to_owned());
    }
    let list = api.get(&["workspaces", workspace, "invitations"], &[]).await?;
    let pending = list.as_array().into_iter().flatten().find(|item| {
        item.get("email").and_then(Value::as_str).is_some_and(|e| e.eq_ignore_ascii_case(invitation))
            && item.get("status").and_then(Value::as_str) == Some("pending")
    });
    match pending.and_then(|item| item.get("invitation_id")).and_then(Value::as_str) {
        Some(id) => Ok(id.to_owned()),
        None => bail!(
            "{invitation} has no pending invitation to {workspace}: see `rollcall workspace invite list {workspace}`"
        ),
    }
}

async fn bot(ctx: &Ctx, command: BotCommand) -> anyhow::Result<()> {
    let api = &ctx.api;
    match command {
        BotCommand::Create { name, bot } => {
            let answer = api.post(&["workspaces", &name, "bots"], json!({"name": bot})).await?;
            ctx.print(&answer, |a| {
                print_line(&format!("created bot {} in {name}", field(a, "name")))?;
                print_line(&format!("its token (shown once, keep it safe): {}", field(a, "token")))
            })
        }
        BotCommand::List { name } => {
            let answer = api.get(&["workspaces", &name, "bots"], &[]).await?;
            ctx.print(&answer, |a| {
                Table::of(a, &["name", "created_at", "token_status", "tool_calls", "last_active_at", "bot_id"])
                    .print_or("no bots")
            })
        }
        BotCommand::Revoke { name, bot } => {
            let answer = api.delete(&["workspaces", &name, "bots", &bot]).await?;
            ctx.print(&answer, |a| {
                print_line(&format!(
                    "revoked bot {} in {name}; its token is {}",
                    field(a, "name"),
                    field(a, "token_status")
                ))
            })
        }
    }
}

async fn accept(ctx: &Ctx, code: &str) -> anyhow::Result<()> {
    ctx.require_login()?;
    let answer = ctx.api.post(&["invitations", "accept"], json!({"code": code.trim()})).await?;
    ctx.print(&answer, |a| {
        print_line(&format!("you joined {} as {}", field(a, "workspace"), field(a, "role")))?;
        print_line(&format!("your workspace token (shown once; paste it into your MCP client): {}", field(a, "token")))
    })
}

async fn offboard(ctx: &Ctx, email: &str, dry_run: bool) -> anyhow::Result<()> {
    ctx.require_login()?;
    let body = json!({"email": email, "dry_run": dry_run});
    let label = if dry_run {
        format!("planning the offboarding of {email}")
    } else {
        format!("offboarding {email} from every workspace you manage")
    };
    let answer = with_progress(&label, ctx.api.post(&["offboard"], body)).await?;
    let failed = answer.get("failed").and_then(Value::as_array).map_or(0, Vec::len);
    ctx.print(&answer, |a| {
        let steps = a.get("steps").cloned().unwrap_or(Value::Null);
        let applied = a.get("applied").cloned().unwrap_or(Value::Null);
        if dry_run {
            print_line(&format!("offboarding {email} would (dry run, nothing changed):"))?;
            print_value(&steps)
        } else {
            print_line(&format!("offboarded {email}:"))?;
            print_value(&applied)?;
            if failed > 0 {
                print_line("failed (run the command again to retry them):")?;
                print_value(a.get("failed").unwrap_or(&Value::Null))?;
            }
            Ok(())
        }
    })?;
    if failed > 0 {
        bail!("{failed} offboarding step(s) failed: run the command again to retry them");
    }
    Ok(())
}

/// Which events `audit log` prints.
struct AuditFilter {
    member: Option<String>,
    event_type: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

async fn audit_log(ctx: &Ctx, workspace: &str, filter: AuditFilter) -> anyhow::Result<()> {
    ctx.require_login()?;
    let now = Utc::now();
    let mut query: Vec<(&str, String)> = vec![("limit", AUDIT_PAGE_EVENTS.to_string())];
    if let Some(member) = filter.member {
        query.push(("member", member));
    }
    if let Some(event_type) = filter.event_type {
        query.push(("type", event_type));
    }
    if let Some(since) = &filter.since {
        query.push(("since", parse_time(since, now)?.to_rfc3339()));
    }
    if let Some(until) = &filter.until {
        query.push(("until", parse_time(until, now)?.to_rfc3339()));
    }
    let mut progress = Progress::on_terminal();
    let mut stdout = std::io::stdout().lock();
    let mut printed = 0u64;
    let mut after: Option<String> = None;
    let mut table_header_printed = false;
    for _ in 0..AUDIT_PAGES_MAX {
        let mut page_query = query.clone();
        if let Some(after) = &after {
            page_query.push(("after", after.clone()));
        }
        let page = ctx.api.get(&["workspaces", workspace, "audit"], &page_query).await?;
        let events = page.get("events").and_then(Value::as_array).cloned().unwrap_or_default();
        for event in &events {
            if ctx.json() {
                serde_json::to_writer(&mut stdout, event)?;
                writeln!(stdout)?;
            } else {
                if !table_header_printed {
                    writeln!(
                        stdout,
                        "{:<8}  {:<23}  {:<22}  {:<40}  STREAM",
                        "POSITION", "RECORDED_AT", "TYPE", "ACTOR"
                    )?;
                    table_header_printed = true;
                }
                writeln!(
                    stdout,
                    "{:<8}  {:<23}  {:<22}  {:<40}  {}",
                    field(event, "position"),
                    field(event, "recorded_at"),
                    field(event, "type"),
                    field(event, "actor"),
                    field(event, "stream")
                )?;
            }
            printed += 1;
        }
        progress.update(&format!("fetched {printed} events"));
        let next = match page.get("next_after") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
        };
        match next {
            Some(next) if !events.is_empty() && after.as_ref() != Some(&next) => after = Some(next),
            _ => {
                progress.finish();
                stdout.flush()?;
                if !ctx.json() && printed == 0 {
                    writeln!(stdout, "no events")?;
                }
                return Ok(());
            }
        }
    }
    progress.finish();
    bail!(
        "stopped after {printed} events ({AUDIT_PAGES_MAX} pages): narrow the log with --since, --until, --member or --type"
    )
}

/// A time given as RFC 3339 (`2025-01-31T12:00:00Z`) or as an age before `now` (`30m`, `12h`, `7d`).
fn parse_time(text: &str, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    let bad = || {
        anyhow::anyhow!("{text:?} is not a time: give one as 2025-01-31T12:00:00Z, or an age such as 30m, 12h or 7d")
    };
    let unit = text.chars().last().ok_or_else(bad)?;
    let amount: i64 = text[..text.len() - unit.len_utf8()].parse().map_err(|_| bad())?;
    let age = match unit {
        's' => ChronoDuration::try_seconds(amount),
        'm' => ChronoDuration::try_minutes(amount),
        'h' => ChronoDuration::try_hours(amount),
        'd' => ChronoDuration::try_days(amount),
        _ => None,
    }
    .ok_or_else(bad)?;
    now.checked_sub_signed(age).ok_or_else(bad)
}

/// The seats of a plan as people read them.
fn seats_text(seats: Option<&Value>) -> String {
    match seats.and_then(Value::as_u64) {
        Some(1) => "1 seat".to_owned(),
        Some(n) => format!("{n} seats"),
        None => "unlimited seats".to_owned(),
    }
}

/// Saves the login in an answer of `/accounts` or `/login`; where it was saved.
fn save_login(ctx: &Ctx, answer: &Value) -> anyhow::Result<std::path::PathBuf> {
    let text = |name: &str| -> anyhow::Result<String> {
        answer
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .with_context(|| format!("the server's answer has no {name}: is it a rollcall server?"))
    };
    let login = Login { account_id: text("account_id")?, email: text("email")?, token: text("token")? };
    ctx.credentials.put(&ctx.global.server, login)?;
    Ok(ctx.credentials.path())
}

/// How many times an interactive password prompt asks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Confirm {
    Once,
    Twice,
}

/// The password from standard input (`--password-stdin`), or from a prompt on a terminal.
fn read_password(from_stdin: bool, confirm: Confirm) -> anyhow::Result<String> {
    let password = if from_stdin {
        let mut text = String::new();
        std::io::stdin()
            .lock()
            .take(PASSWORD_BYTES_MAX + 1)
            .read_to_string(&mut text)
            .context("cannot read the password from standard input")?;
        if text.len() as u64 > PASSWORD_BYTES_MAX {
            bail!("the password on standard input is longer than {PASSWORD_BYTES_MAX} bytes");
        }
        text.lines().next().unwrap_or_default().to_owned()
    } else if std::io::stdin().is_terminal() {
        let password = rpassword::prompt_password("password: ").context("cannot read the password")?;
        if confirm == Confirm::Twice {
            let again = rpassword::prompt_password("password again: ").context("cannot read the password")?;
            if again != password {
                bail!("the two passwords differ: run the command again");
            }
        }
        password
    } else {
        bail!("no terminal to ask for the password: pass it on standard input with --password-stdin");
    };
    if password.is_empty() {
        bail!("the password is empty: give one on the first line of standard input");
    }
    Ok(password)
}

/// Asks `question` on the terminal; fails unless the answer is yes.
fn confirm(question: &str) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        bail!("{question}: pass --yes to confirm");
    }
    let mut stderr = std::io::stderr().lock();
    write!(stderr, "{question} [y/N] ")?;
    stderr.flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") { Ok(()) } else { bail!("nothing deleted") }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn times_are_rfc3339_or_ages() {
        let now = Utc.with_ymd_and_hms(2025, 3, 10, 12, 0, 0).unwrap();
        assert_eq!(
            parse_time("2025-01-31T12:00:00+01:00", now).unwrap(),
            Utc.with_ymd_and_hms(2025, 1, 31, 11, 0, 0).unwrap()
        );
        assert_eq!(parse_time("30m", now).unwrap(), Utc.with_ymd_and_hms(2025, 3, 10, 11, 30, 0).unwrap());
        assert_eq!(parse_time("7d", now).unwrap(), Utc.with_ymd_and_hms(2025, 3, 3, 12, 0, 0).unwrap());
        for bad in ["", "m", "yesterday", "3w", "1é"] {
            assert!(parse_time(bad, now).is_err(), "{bad}");
        }
    }

    #[test]
    fn seats_read_naturally() {
        assert_eq!(seats_text(Some(&json!(1))), "1 seat");
        assert_eq!(seats_text(Some(&json!(5))), "5 seats");
        assert_eq!(seats_text(Some(&Value::Null)), "unlimited seats");
    }
}
