//! Typed identifiers, so that a member id can never be passed where a bot id is expected.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// The raw uuid.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                $name(id)
            }
        }
    };
}

id_type!(
    /// An account (a person who signed up).
    AccountId
);
id_type!(
    /// A workspace.
    WorkspaceId
);
id_type!(
    /// A membership of one account in one workspace. A re-invited person gets a new one.
    MemberId
);
id_type!(
    /// A bot of a workspace.
    BotId
);
id_type!(
    /// An invitation.
    InvitationId
);
id_type!(
    /// A token (member, bot or account API token). Not secret: it names the token.
    TokenId
);
