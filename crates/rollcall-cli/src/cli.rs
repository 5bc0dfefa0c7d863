//! The command line: every command, argument and flag.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Rollcall: the membership ledger behind an MCP tool gateway.
#[derive(Debug, Parser)]
#[command(name = "rollcall", version, propagate_version = true)]
pub struct Cli {
    /// Options shared by every admin command.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every admin command.
#[derive(Debug, Args)]
pub struct Global {
    /// The Rollcall server to talk to.
    #[arg(long, global = true, env = "ROLLCALL_SERVER", default_value = "http://127.0.0.1:7070")]
    pub server: String,
    /// An account API token (`mwa_...`); without it, the one saved by `rollcall login` is used.
    #[arg(long, global = true, env = "ROLLCALL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print one JSON document on stdout instead of a table or message.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the API, the projections and the MCP gateway in one process on embedded defaults.
    Serve(ServeArgs),
    /// Run the admin API alone over a shared store, reading the projections from Redis.
    Api(ApiArgs),
    /// Run the MCP gateway alone over a shared store, checking tokens in Redis.
    Gateway(GatewayArgs),
    /// Run the token and analytics projections into Redis (one active instance, the others
    /// stand by).
    Project(ProjectArgs),
    /// Inspect or repair the embedded event log of a stopped server.
    Store(StoreArgs),
    /// Your account: sign up, show who you are.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Log in with your email and password; the API token is saved for later commands.
    Login(LoginArgs),
    /// Forget the API token saved for this server.
    Logout,
    /// Workspaces: create, show, plans, members, invitations, bots, upstream, analytics.
    #[command(subcommand)]
    Workspace(WorkspaceCommand),
    /// Invitations addressed to you.
    #[command(subcommand)]
    Invite(InviteCommand),
    /// People across every workspace you manage.
    #[command(subcommand)]
    Member(MemberCommand),
    /// The audit log: the events themselves, replayed from the log.
    #[command(subcommand)]
    Audit(AuditCommand),
}

/// `rollcall serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where the event log and the outbox live.
    #[arg(long, env = "ROLLCALL_DATA_DIR", default_value = "./rollcall-data")]
    pub data_dir: PathBuf,
    /// The address the HTTP API and the MCP gateway (`/mcp`) listen on.
    #[arg(long, env = "ROLLCALL_LISTEN", default_value = "127.0.0.1:7070")]
    pub listen: SocketAddr,
    /// Keep the log in this store instead of the data directory: postgres://...[?schema=NAME],
    /// kurrentdb://... or esdb://... (builds with --features kurrentdb).
    #[arg(long, env = "ROLLCALL_STORE")]
    pub store: Option<String>,
    /// Keep the token and analytics projections in this Redis (for example redis://127.0.0.1:6379).
    #[arg(long, env = "ROLLCALL_REDIS")]
    pub redis: Option<String>,
    /// The prefix of every Redis key, so that several deployments can share one Redis.
    #[arg(long, env = "ROLLCALL_REDIS_PREFIX", default_value = "rollcall:")]
    pub redis_prefix: String,
    /// Send invitation emails through this SMTP server (for example smtp://127.0.0.1:2525)
    /// instead of writing them to the outbox folder of the data directory.
    #[arg(long, env = "ROLLCALL_SMTP")]
    pub smtp: Option<String>,
    /// The URL people reach this server at, used in the accept links of invitation emails
    /// (defaults to http://LISTEN).
    #[arg(long, env = "ROLLCALL_PUBLIC_URL")]
    pub public_url: Option<String>,
}

/// `rollcall api`.
#[derive(Debug, Args)]
pub struct ApiArgs {
    /// The address the HTTP API listens on.
    #[arg(long, env = "ROLLCALL_LISTEN", default_value = "127.0.0.1:7070")]
    pub listen: SocketAddr,
    /// The shared event store: postgres://...[?schema=NAME], kurrentdb://... or esdb://...
    /// (builds with --features kurrentdb), or the directory of an embedded log.
    #[arg(long, env = "ROLLCALL_STORE")]
    pub store: String,
    /// The Redis the projectors (`rollcall project`) write the token and analytics views to.
    #[arg(long, env = "ROLLCALL_REDIS")]
    pub redis: String,
    /// The prefix of every Redis key, the same for every process of one deployment.
    #[arg(long, env = "ROLLCALL_REDIS_PREFIX", default_value = "rollcall:")]
    pub redis_prefix: String,
    /// Send invitation emails through this SMTP server instead of the outbox folder.
    #[arg(long, env = "ROLLCALL_SMTP")]
    pub smtp: Option<String>,
    /// The URL people reach the API at, used in the accept links of invitation emails.
    #[arg(long, env = "ROLLCALL_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Where this process keeps its outbox and email delivery statuses.
    #[arg(long, env = "ROLLCALL_DATA_DIR", default_value = "./rollcall-data")]
    pub data_dir: PathBuf,
}

/// `rollcall gateway`.
#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// The address MCP clients connect to (`/mcp`); `/healthz` and `/metrics` are there too.
    #[arg(long, env = "ROLLCALL_LISTEN", default_value = "127.0.0.1:7071")]
    pub listen: SocketAddr,
    /// The shared event store (tool calls are appended to it), as for `rollcall api`.
    #[arg(long, env = "ROLLCALL_STORE")]
    pub store: String,
    /// The Redis holding the token validity set and the rate limits.
    #[arg(long, env = "ROLLCALL_REDIS")]
    pub redis: String,
    /// The prefix of every Redis key, the same for every process of one deployment.
    #[arg(long, env = "ROLLCALL_REDIS_PREFIX", default_value = "rollcall:")]
    pub redis_prefix: String,
}

/// `rollcall project`.
#[derive(Debug, Args)]
pub struct ProjectArgs {
    /// The shared event store, as for `rollcall api`.
    #[arg(long, env = "ROLLCALL_STORE")]
    pub store: String,
    /// The Redis the token and analytics views are written to.
    #[arg(long, env = "ROLLCALL_REDIS")]
    pub redis: String,
    /// The prefix of every Redis key, the same for every process of one deployment.
    #[arg(long, env = "ROLLCALL_REDIS_PREFIX", default_value = "rollcall:")]
    pub redis_prefix: String,
    /// Serve the status (role, lease holder, lag) at `/healthz` on this address.
    #[arg(long, env = "ROLLCALL_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// How long the projector lease lasts without renewal, in milliseconds: a standby takes
    /// over at most this long after the active instance dies.
    #[arg(long, env = "ROLLCALL_LEASE_TTL_MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub lease_ttl_ms: u64,
    /// This instance's name in the lease (default: host, pid and a random suffix).
    #[arg(long, env = "ROLLCALL_INSTANCE")]
    pub instance: Option<String>,
}

/// `rollcall store`.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// What to do with the log.
    #[command(subcommand)]
    pub command: StoreCommand,
}

/// `rollcall store ...`.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Check every record of the embedded log and report what was found.
    Inspect {
        /// The data directory of a stopped server.
        #[arg(long, default_value = "./rollcall-data")]
        data_dir: PathBuf,
    },
    /// Cut a torn tail off the embedded log so the server can start again.
    Repair {
        /// The data directory of a stopped server.
        #[arg(long, default_value = "./rollcall-data")]
        data_dir: PathBuf,
    },
}

/// `rollcall account ...`.
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Create an account; its API token is saved for later commands.
    Signup(SignupArgs),
    /// Show the account you are logged in as and its workspaces.
    Show,
}

/// `rollcall account signup`.
#[derive(Debug, Args)]
pub struct SignupArgs {
    /// Your email address.
    #[arg(long)]
    pub email: String,
    /// Read the password from standard input (the first line) instead of prompting.
    #[arg(long)]
    pub password_stdin: bool,
}

/// `rollcall login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Your email address.
    #[arg(long)]
    pub email: String,
    /// Read the password from standard input (the first line) instead of prompting.
    #[arg(long)]
    pub password_stdin: bool,
}

/// A plan, as users type it.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PlanArg {
    /// One seat: the owner only.
    Free,
    /// Five seats.
    Starter,
    /// Twenty seats.
    Pro,
    /// One hundred seats.
    Business,
    /// No seat limit.
    Enterprise,
}

impl PlanArg {
    /// The plan's name in the API.
    pub fn name(self) -> &'static str {
        match self {
            PlanArg::Free => "free",
            PlanArg::Starter => "starter",
            PlanArg::Pro => "pro",
            PlanArg::Business => "business",
            PlanArg::Enterprise => "enterprise",
        }
    }
}

/// A member's role.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RoleArg {
    /// Manages the workspace's members, invitations, bots and plan.
    Admin,
    /// Uses the workspace's tools with their own token.
    Member,
}

impl RoleArg {
    /// The role's name in the API.
    pub fn name(self) -> &'static str {
        match self {
            RoleArg::Admin => "admin",
            RoleArg::Member => "member",
        }
    }
}

/// `rollcall workspace ...`.
#[derive(Debug, Subcommand)]
pub enum WorkspaceCommand {
    /// Create a workspace; you become its owner and get your own member token.
    Create {
        /// The workspace's name.
        name: String,
        /// The plan, which sets the number of seats.
        #[arg(long, value_enum, default_value = "free")]
        plan: PlanArg,
    },
    /// List the workspaces you belong to.
    List,
    /// Show a workspace: plan, seats, upstream.
    Show {
        /// The workspace.
        name: String,
    },
    /// Delete a workspace: every token stops working at once.
    Delete {
        /// The workspace.
        name: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// The workspace's plan.
    #[command(subcommand)]
    Plan(PlanCommand),
    /// The workspace's members.
    #[command(subcommand)]
    Member(WorkspaceMemberCommand),
    /// The workspace's invitations.
    #[command(subcommand)]
    Invite(WorkspaceInviteCommand),
    /// The workspace's bots.
    #[command(subcommand)]
    Bot(BotCommand),
    /// The upstream MCP server the gateway forwards to.
    #[command(subcommand)]
    Upstream(UpstreamCommand),
    /// Usage per member and bot, per tool, humans beside bots.
    Analytics {
        /// The workspace.
        name: String,
        /// Only this member's usage.
        #[arg(long)]
        member: Option<String>,
    },
}

/// `rollcall workspace plan ...`.
#[derive(Debug, Subcommand)]
pub enum PlanCommand {
    /// Change the plan; a downgrade below the seats in use is refused and says who is over.
    Set {
        /// The workspace.
        name: String,
        /// The new plan.
        #[arg(value_enum)]
        plan: PlanArg,
        /// Only show what the change would do.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `rollcall workspace member ...`.
#[derive(Debug, Subcommand)]
pub enum WorkspaceMemberCommand {
    /// Invite someone by email; they get an email with the code to accept.
    Invite {
        /// The workspace.
        name: String,
        /// Who to invite.
        email: String,
        /// Their role once they accept.
        #[arg(long, value_enum, default_value = "member")]
        role: RoleArg,
        /// Hours until the invitation expires (the server's default is 7 days).
        #[arg(long)]
        expires_in_hours: Option<u32>,
    },
    /// List the members: email, role, join date, last activity, token status, tool calls.
    List {
        /// The workspace.
        name: String,
    },
    /// Remove a member: their token stops working before this command returns.
    Remove {
        /// The workspace.
        name: String,
        /// The member's email.
        email: String,
    },
}

/// `rollcall workspace invite ...`.
#[derive(Debug, Subcommand)]
pub enum WorkspaceInviteCommand {
    /// List the invitations and whether their email was delivered.
    List {
        /// The workspace.
        name: String,
    },
    /// Send a pending invitation again with a new code; the old code stops working.
    Resend {
        /// The workspace.
        name: String,
        /// The invitation's id, or the invited email.
        invitation: String,
        /// Hours until the new code expires (the server's default is 7 days).
        #[arg(long)]
        expires_in_hours: Option<u32>,
    },
    /// Cancel a pending invitation; its seat is free again.
    Cancel {
        /// The workspace.
        name: String,
        /// The invitation's id, or the invited email.
        invitation: String,
    },
}

/// `rollcall workspace bot ...`.
#[derive(Debug, Subcommand)]
pub enum BotCommand {
    /// Create a bot with a token of its own.
    Create {
        /// The workspace.
        name: String,
        /// The bot's name.
        bot: String,
    },
    /// List the bots.
    List {
        /// The workspace.
        name: String,
    },
    /// Revoke a bot's token.
    Revoke {
        /// The workspace.
        name: String,
        /// The bot's name.
        bot: String,
    },
}

/// `rollcall workspace upstream ...`.
#[derive(Debug, Subcommand)]
pub enum UpstreamCommand {
    /// Set the upstream MCP server URL.
    Set {
        /// The workspace.
        name: String,
        /// The upstream MCP server's URL.
        url: String,
    },
}

/// `rollcall invite ...`.
#[derive(Debug, Subcommand)]
pub enum InviteCommand {
    /// Accept an invitation with the code from its email; prints your token once.
    Accept {
        /// The code from the invitation email.
        code: String,
    },
}

/// `rollcall member ...`.
#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// Remove someone from every workspace you manage at once.
    Offboard {
        /// Their email.
        email: String,
        /// Only show what would be done.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `rollcall audit ...`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print a workspace's events, oldest first (with --json: one JSON object per line).
    Log {
        /// The workspace.
        #[arg(long)]
        workspace: String,
        /// Only events about this member.
        #[arg(long)]
        member: Option<String>,
        /// Only events of this type (for example MemberInvited).
        #[arg(long = "type")]
        event_type: Option<String>,
        /// Only events recorded at or after this time (RFC 3339, or an age such as 30m, 12h, 7d).
        #[arg(long)]
        since: Option<String>,
        /// Only events recorded before this time (RFC 3339, or an age such as 30m, 12h, 7d).
        #[arg(long)]
        until: Option<String>,
    },
}
