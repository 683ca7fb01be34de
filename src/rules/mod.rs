//! Pure decisions over plain data: no I/O, no clock of their own, each table-tested.
//!
//! - [`jobs`]: which `workflow_job` events we serve, a workflow step's labels, which statuses
//!   still wait for a runner;
//! - [`names`]: runner names and their grammar;
//! - [`request`]: the runner request on the queue;
//! - [`group`]: the container group body and what its tags mean;
//! - [`admission`]: which creates go ahead under `MAX_RUNNERS`;
//! - [`sweep`]: what the sweeper removes, and why;
//! - [`reconcile`]: which queued jobs no delivery asked a runner for.

pub mod admission;
pub mod group;
pub mod jobs;
pub mod names;
pub mod reconcile;
pub mod request;
pub mod sweep;
