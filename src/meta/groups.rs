//! Consumer groups' durable state: committed offsets with their metadata.
//! Membership is soft state in the coordinating broker (`crate::groups`);
//! only what must survive a coordinator's death is here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::state::Topic;
use super::MetaError;

/// Commands on group state.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum GroupCommand {
    /// Placeholder until group commands exist.
    Noop,
}

/// Outputs of group commands.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum GroupOutput {
    /// Placeholder until group commands exist.
    Noop,
}

/// Every group's durable state.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct GroupsState {}

impl GroupsState {
    /// Would the command apply?
    pub fn check(
        &self,
        cmd: &GroupCommand,
        _topics: &BTreeMap<String, Topic>,
    ) -> Result<(), MetaError> {
        match cmd {
            GroupCommand::Noop => Ok(()),
        }
    }

    /// Apply a checked command.
    pub fn apply_checked(
        &mut self,
        cmd: GroupCommand,
        _topics: &BTreeMap<String, Topic>,
    ) -> GroupOutput {
        match cmd {
            GroupCommand::Noop => GroupOutput::Noop,
        }
    }

    /// Drop what refers to a deleted topic.
    pub fn on_topic_deleted(&mut self, _name: &str) {}
}
