//! signaling's integration tests, in one binary: rooms, moderation, resume and concurrency through the hub with
//! real WebSocket clients, and the dlux adapter run by node.

mod adapter;
mod audio_track;
mod concurrency;
mod moderation;
mod resume;
mod rooms;
mod shards;
