//! The HTTP plumbing under the API: the accept loop and its connection limits (`server`), the rules every
//! response follows (`policy`), which origins may call us (`origins`), who the client is behind a proxy
//! (`client_address`), the one timestamp format of JSON responses (`time`), and the web files served where no route answers (`web`).

pub mod client_address;
pub mod origins;
pub mod policy;
pub mod server;
pub mod time;
pub mod web;
