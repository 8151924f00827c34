//! Interactions: pickup, drop, use, build, destroy, and host-registered kinds, each validated by
//! the authority; every request yields exactly one `InteractionResult` event.
//!
//! Reason codes (stable, snake_case):
//!
//! | kind | failure codes, in the order they are checked |
//! | --- | --- |
//! | all | `no_avatar` |
//! | pickup | `missing_target`, `unknown_object`, `not_pickupable`, `already_held`, `held_by_other`, `hands_full`, `too_heavy`, `out_of_reach` |
//! | drop | `nothing_held`, `not_held`, `invalid_args` |
//! | use | `missing_target`, `unknown_object`, `not_usable`, `held_by_other`, `out_of_reach` |
//! | build | `missing_build`, `invalid_object`, `out_of_reach`, `limit_reached`, `overlaps` |
//! | destroy | `missing_target`, `unknown_object`, `forbidden`, `held_by_other`, `out_of_reach` |
//! | custom | `unknown_interaction`, then whatever the handler answers |
//! | all (after the checks above) | `vetoed` when the host's veto hook refuses |
//! | all (when asked) | `too_many_requests`: more than [`crate::MAX_PENDING_INTERACTIONS`] waiting |
//!
//! Success is code `ok`. Built-in effects: pickup makes the object kinematic and carries it in
//! front of the holder; drop makes it dynamic again with the holder's velocity or a throw
//! velocity `args.velocity`; use toggles the boolean property `active`; build creates the object
//! owned by the builder (`data.object_id`); destroy removes it (allowed to admins, to the owner,
//! or when the property `destructible` is `true`; never for avatars and the terrain).
//!
//! The types live with the world that owns them (a handler gets the world itself) and the
//! checks in the world's interaction system; this module gathers them for the public API.

pub use crate::world::{InteractionHandler, InteractionReply, InteractionVeto};
