//! 一括登録 (bulk loading): the operator's `import` and `demo` decide many commands and queue
//! their appends so that the store's group commit writes them together. Requests are made by
//! the one append builder; each waits for its own durability through [`Queued::wait`].

use daicho_domain::command::Command;
use daicho_domain::event::Event;
use daicho_store::{Pending, Store};

use crate::append::recipient_request;

/// An append queued in the store's writer.
pub struct Queued(Pending);

impl Queued {
    /// Waits until the append is durable (or failed); the position of its last event.
    pub fn wait(self) -> Result<u64, String> {
        self.0.wait().map(|o| o.last.0).map_err(|e| e.to_string())
    }
}

/// Queues the events `cmd` was decided to, on the recipient stream at `version` (0: a new one).
pub fn queue(store: &Store, cmd: &Command, events: &[Event], version: u64) -> Result<Queued, String> {
    let request = recipient_request(cmd, events, version)?;
    store.submit_blocking(request).map(Queued).map_err(|e| e.to_string())
}
