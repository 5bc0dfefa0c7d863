//! Plans and their seat limits.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A workspace's plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
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

/// Every plan, smallest first.
pub const PLANS: [Plan; 5] = [Plan::Free, Plan::Starter, Plan::Pro, Plan::Business, Plan::Enterprise];

impl Plan {
    /// The seat limit; `None` is unlimited. The owner and every pending invitation take a seat.
    pub const fn seats(self) -> Option<usize> {
        match self {
            Plan::Free => Some(1),
            Plan::Starter => Some(5),
            Plan::Pro => Some(20),
            Plan::Business => Some(100),
            Plan::Enterprise => None,
        }
    }

    /// The plan's name as users type it.
    pub const fn name(self) -> &'static str {
        match self {
            Plan::Free => "free",
            Plan::Starter => "starter",
            Plan::Pro => "pro",
            Plan::Business => "business",
            Plan::Enterprise => "enterprise",
        }
    }

    /// The next plan up, if any.
    pub fn next_up(self) -> Option<Plan> {
        PLANS.iter().copied().find(|p| *p > self)
    }
}

impl std::fmt::Display for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A plan name that is not one of ours.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown plan {0:?}: choose one of free, starter, pro, business, enterprise")]
pub struct UnknownPlan(pub String);

impl std::str::FromStr for Plan {
    type Err = UnknownPlan;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PLANS
            .iter()
            .copied()
            .find(|p| p.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownPlan(s.chars().take(40).collect()))
    }
}
