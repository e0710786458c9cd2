//! Local emulators that every sitefence test, drill and bench runs against.
//!
//! * [`ga`]: Global Accelerator, speaking awsJson1.1 (`GlobalAccelerator_V20180706.*`).
//! * [`ispn`]: one Infinispan REST server per site, over TLS ([`tls`]) with Basic auth.
//! * [`lambda_host`]: a Lambda Runtime API host that runs a function's real bootstrap binary,
//!   with a Function URL front (payload 2.0) and a raw invoke URL.
//! * [`moto`] and [`aws_front`]: moto server for the rest of AWS, behind a counting front that
//!   adds latency and faults on demand. The Python tools it runs (moto) come
//!   from the project's virtualenv, which crate `pytools` installs.
//! * [`world`]: starts all of them, seeds the two-site topology and describes it (`sandbox.json`).
//! * `harness` (feature `harness`): what the function crates' integration tests share — a world
//!   started and always stopped around a scenario, and helpers to drive and read it.
//!
//! The emulators implement the wire protocols on their own: this crate shares no code or types
//! with `common`, `aws-topology` or `ispn-client`.

pub mod aws_front;
pub mod deployed;
pub mod ga;
#[cfg(feature = "harness")]
pub mod harness;
pub mod ispn;
pub mod lambda_host;
pub mod moto;
pub mod net;
pub mod timeline;
pub mod tls;
pub mod world;
