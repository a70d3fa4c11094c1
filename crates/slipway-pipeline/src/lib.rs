//! Pipelines: `slipway.yaml` read and checked ([`spec`]), the step graph ([`dag`]), content
//! hashes and cache keys ([`hash`], [`step`]), the lock file that makes an unchanged rerun
//! free ([`lock`]), outs kept content-addressed in the artifact store ([`outs`]), the
//! executors ([`exec`]), the scheduler ([`runner`]) and the server's triggers ([`trigger`]:
//! requests, monitor alerts and [`cron`] schedules). Records and blobs go through the
//! [`records`] traits, which the CLI implements over the tracking server's REST API.

pub mod condition;
pub mod cron;
pub mod dag;
pub mod error;
pub mod exec;
pub mod hash;
pub mod lock;
pub mod outs;
pub mod params;
pub mod records;
pub mod runner;
pub mod spec;
pub mod step;
pub mod trigger;

pub use dag::Dag;
pub use error::{PipelineError, Result};
pub use runner::{Event, Options, Runner, StepState, Summary};
pub use spec::{Pipeline, load};
