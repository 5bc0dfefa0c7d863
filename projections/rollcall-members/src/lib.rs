//! The member-list projection: members, bots, invitations, seats, and the list as of any past position.
