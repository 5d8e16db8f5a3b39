//! A message a processor published, in the host's own form.

use super::bindings::v0_3_0::types::Message;
use crate::payload::Payload;

/// A message of a processor: its topic, relative to the pipeline's prefix, and what it says.
///
/// The host keeps a plugin's output in this form, not as the contract's `message`, whose dozen
/// strings would each be allocated for every point of a series and freed again when encoded: a
/// point becomes a `Published` straight from its series (`series.rs`).
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    pub topic: String,
    pub payload: Payload,
}

/// A message the plugin returned or passed whole to `publish`.
impl From<Message> for Published {
    fn from(mut message: Message) -> Self {
        let topic = std::mem::take(&mut message.topic);
        Published { topic, payload: Payload::from(message) }
    }
}
