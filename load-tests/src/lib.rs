//! Load generators and benchmarks: simulated networked-aframe clients against our gateway and against
//! networked-aframe's own socket.io server, on the same workload, with the figures written to
//! docs/BENCHMARKS.md.
//!
//! * [`target`] starts the server under test (the release gateway on a temp SQLite file, or the baseline with
//!   node), pinned to its own core, and samples its CPU and memory from /proc.
//! * [`seed`] makes events and tickets through the ticketing store, and [`wallet`] signs as a wallet does.
//! * [`client`] speaks both protocols: ours (docs/PROTOCOL.md) and socket.io's Engine.IO v4 framing.
//! * [`scenarios`] are the rows of the table; [`report`] renders the table and the chart.

pub mod client;
pub mod payload;
pub mod report;
pub mod scenarios;
pub mod seed;
pub mod sfu;
pub mod stats;
pub mod target;
pub mod wallet;
