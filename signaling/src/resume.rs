//! Resuming a session after its connection dropped: same client id, same seat, nothing lost either way.
//!
//! A drop (the socket vanished, or went silent) does not leave the room at once. The gateway calls
//! [`Peer::suspend`]: the member stays, holding its seat and client id, and its queue passes to an *away*
//! queue that keeps guaranteed frames (at most `replay_frames`; one more ends the session as a slow consumer)
//! and drops unguaranteed ones, which are stale by the time anyone could read them. The others get
//! `peer_reconnecting`. Within `resume_window_secs` the client reconnects with the resume token of its
//! `welcome` (or of its last `resumed`) and [`Hub::try_resume`] gives it a new connection of the same session;
//! after the window the member leaves with the reason its drop recorded, at the time it was last seen.
//!
//! **Exactly once, both ways.** Frames lost in flight when a TCP connection dies were written by one side
//! and never read by the other, so neither side's queue knows about them. Each side therefore counts: the
//! server counts the frames its writer took for this session (and keeps the last `unacked_frames` of them),
//! the client counts the frames it read. The resuming client says how many it read (`received`); the server
//! writes again those it took after that, then what queued while the client was away, then live traffic.
//! The other way round, the `resumed` frame says how many client frames the server applied, and the client
//! sends again its own frames after that. A client that read fewer than the ring still holds cannot be
//! continued exactly: its resume is refused ([`ResumeError::Gap`]) and it joins afresh.
//!
//! A resume while the session's connection still looks alive (the client noticed the drop first, which
//! is the common case) closes that connection with 4000 "superseded" and continues on the new one: a token
//! can't be used by two connections. (Should that old connection still be delivering frames as the resume takes
//! over — a dropped one is not — a frame it applies in that instant may be counted after `received` was read,
//! and the client sends it again.) Kicks, bans, a newer join of the same seat and the end of the room
//! all remove the member, and with it the right to resume.

use crate::admission::{PeerInfo, RoomId};
use crate::close::{CloseCode, CloseFrame};
use crate::config::SignalingConfig;
use crate::event::{LeaveReason, RoomEventKind};
use crate::fanout::Envelope;
use crate::hub::{now_ms, Hub};
use crate::outbox::{Delivery, Outbox, PeerQueue};
use crate::peer::Peer;
use crate::protocol::ServerMessage;
use crate::room::Room;
use crate::stats::Stats;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Makes the resume token a `welcome` or `resumed` frame carries. The gateway signs it: signalling holds no
/// secret. Called with no lock held.
pub trait ResumeIssuer: Send + Sync + 'static {
    fn issue(&self, info: &PeerInfo) -> Option<String>;
}

impl<F> ResumeIssuer for F
where
    F: Fn(&PeerInfo) -> Option<String> + Send + Sync + 'static,
{
    fn issue(&self, info: &PeerInfo) -> Option<String> {
        self(info)
    }
}

/// A member whose connection is gone: since when, and what its departure records if it does not come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Away {
    pub(crate) since: i64,
    pub(crate) reason: LeaveReason,
}

/// A verified resume request: the gateway checked the token (signature, expiry, event, single use) and that
/// the ticket still admits; these are its claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    pub room_id: RoomId,
    pub client_id: String,
    pub seat_key: String,
    /// Frames of this session the client read, over all its connections (every frame but `feed`).
    pub received: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResumeError {
    /// The window passed, or a kick, a ban, a newer join of the seat or the room's end ended the session.
    #[error("resume refused: the session is over")]
    Gone,
    #[error("resume refused: the token names another seat")]
    WrongSeat,
    /// The client read fewer frames than the server still keeps, or more than it wrote.
    #[error("resume refused: frames were lost beyond what the server keeps")]
    Gap,
    #[error("server shutting down")]
    ShuttingDown,
}

impl ResumeError {
    /// 4401 (join again with fresh credentials), or 1001 when shutting down.
    pub fn close_frame(&self) -> CloseFrame {
        match self {
            ResumeError::ShuttingDown => CloseCode::Shutdown.into(),
            other => CloseFrame::new(CloseCode::Unauthorized, other.to_string()),
        }
    }

    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            ResumeError::Gone => "gone",
            ResumeError::WrongSeat => "wrong_seat",
            ResumeError::Gap => "gap",
            ResumeError::ShuttingDown => "shutting_down",
        }
    }
}

/// A resumed connection: hand `peer` and `outbox` to the socket loop as after an admission.
#[derive(Debug)]
pub struct Resumed {
    pub peer: Peer,
    pub outbox: Outbox,
    /// Frames written again: those lost in flight plus those queued while away.
    pub replayed: usize,
}

/// A session's queue, resumable when resuming is on.
pub(crate) fn session_queue(config: &SignalingConfig) -> Arc<PeerQueue> {
    let unacked = if config.resume_window_secs > 0 { config.unacked_frames } else { 0 };
    PeerQueue::resumable(config.guaranteed_queue, config.unguaranteed_queue, unacked, config.replay_frames.max(1))
}

impl Hub {
    /// See [`Peer::suspend`].
    pub(crate) fn suspend(&self, room: &Arc<Room>, info: &Arc<PeerInfo>, queue: &Arc<PeerQueue>, reason: LeaveReason) {
        let window = self.config().resume_window_secs;
        let runtime = tokio::runtime::Handle::try_current();
        if window == 0 || runtime.is_err() {
            self.remove_connection(room, &info.client_id, queue, reason);
            return;
        }
        let away_queue = session_queue(self.config());
        let since = now_ms();
        let placed = {
            let mut state = room.lock();
            let Some(member) = state.members.get_mut(&*info.client_id) else {
                return;
            };
            if !Arc::ptr_eq(&member.queue, queue) {
                return; // superseded, resumed elsewhere or removed: nothing of ours to keep
            }
            let Some(carried) = queue.hand_over(None) else {
                return;
            };
            away_queue.away(carried);
            member.queue = away_queue.clone();
            member.away = Some(Away { since, reason });
            member.placed.clone()
        };
        let until = since + i64::try_from(window.saturating_mul(1000)).unwrap_or(i64::MAX);
        let frame = ServerMessage::PeerReconnecting { client_id: &info.client_id, since, until }.encode();
        self.publish(
            room,
            Envelope {
                to: placed.audience(Some(info.client_id.clone())),
                delivery: Delivery::Guaranteed,
                payload: frame,
            },
        );
        tracing::debug!(room = info.room_id, client = %info.client_id, ?reason, "away");
        let (hub, room, client_id) = (self.clone(), room.clone(), info.client_id.clone());
        // The deadline is taken now, not when the task first runs.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(window);
        if let Ok(runtime) = runtime {
            runtime.spawn(async move {
                tokio::time::sleep_until(deadline).await;
                hub.expire(&room, &client_id, &away_queue);
            });
        }
    }

    /// The window passed: a member still away on `away_queue` leaves, its departure dated when it was last seen.
    fn expire(&self, room: &Arc<Room>, client_id: &str, away_queue: &Arc<PeerQueue>) {
        let removed = {
            let mut state = room.lock();
            match state.members.get(client_id) {
                Some(member) if Arc::ptr_eq(&member.queue, away_queue) && member.away.is_some() => {
                    state.remove(client_id)
                }
                _ => None,
            }
        };
        let Some(member) = removed else { return };
        let Away { since, reason } = member.away.expect("checked under the lock");
        Stats::inc(&self.stats().resumes_expired);
        self.forget(room, &member, away_queue, reason, since);
        tracing::debug!(room = room.id(), client = %client_id, ?reason, "resume window passed");
    }

    /// After a member was taken out of the room by this module: as `Hub::after_removal`, dated `at`.
    fn forget(&self, room: &Arc<Room>, member: &crate::room::Member, queue: &PeerQueue, reason: LeaveReason, at: i64) {
        let info = &member.info;
        queue.close(None);
        Stats::dec(&self.stats().peers);
        self.emit_at(info, at, RoomEventKind::Left { reason });
        if member.placed.stage() {
            room.stage.forget_owner(&info.client_id);
        }
        let left = ServerMessage::PeerLeft { client_id: &info.client_id, reason }.encode();
        self.publish(
            room,
            Envelope { to: member.placed.audience(None), delivery: Delivery::Guaranteed, payload: left },
        );
        self.drop_room_if_idle(room);
    }

    /// Frames a peer's session holds now (waiting to be written, or kept in case a drop lost them) and their
    /// payload bytes; `None` if it is not in the room. Payloads are shared with the frames' other recipients.
    pub fn held_frames(&self, room_id: RoomId, client_id: &str) -> Option<(usize, usize)> {
        let room = self.room(room_id)?;
        let queue = room.lock().members.get(client_id).map(|m| m.queue.clone())?;
        Some(queue.held())
    }

    /// Continues a session on a new connection: its `resumed` frame, the frames it missed, then live traffic.
    /// The others see no leave and no join (`peer_resumed` if they were told it was reconnecting).
    pub fn try_resume(&self, resume: Resume) -> Result<Resumed, ResumeError> {
        let result = self.resume_inner(&resume);
        match &result {
            Ok(resumed) => {
                Stats::inc(&self.stats().resumes_succeeded);
                self.stats().frames_replayed.fetch_add(resumed.replayed as u64, Ordering::Relaxed);
            }
            Err(_) => Stats::inc(&self.stats().resumes_failed),
        }
        result
    }

    fn resume_inner(&self, resume: &Resume) -> Result<Resumed, ResumeError> {
        if self.is_shutting_down() {
            return Err(ResumeError::ShuttingDown);
        }
        let room = self.room(resume.room_id).ok_or(ResumeError::Gone)?;
        // The token is made before taking the lock (the issuer is the gateway's code); it names the member.
        let info =
            room.lock().members.get(resume.client_id.as_str()).map(|m| m.info.clone()).ok_or(ResumeError::Gone)?;
        if *info.seat_key != *resume.seat_key {
            return Err(ResumeError::WrongSeat);
        }
        let token = self.inner.resume.as_ref().and_then(|issuer| issuer.issue(&info));
        let queue = session_queue(self.config());
        let (replayed, was_away, inbound, placed) = {
            let mut state = room.lock();
            if state.banned.contains(&*info.seat_key) {
                return Err(ResumeError::Gone);
            }
            let member = state.members.get_mut(resume.client_id.as_str()).ok_or(ResumeError::Gone)?;
            if !Arc::ptr_eq(&member.info, &info) {
                return Err(ResumeError::Gone);
            }
            let close = if member.away.is_some() { None } else { Some(CloseCode::Superseded.into()) };
            let carried = member.queue.hand_over(close).ok_or(ResumeError::Gone)?;
            let Some(replayed) = carried.replay_count(resume.received) else {
                // Not continued exactly: the session ends here and the client joins afresh.
                let old = member.queue.clone();
                let removed = state.remove(resume.client_id.as_str()).expect("present under the lock");
                drop(state);
                self.forget(&room, &removed, &old, LeaveReason::Left, now_ms());
                return Err(ResumeError::Gap);
            };
            let first = ServerMessage::Resumed {
                client_id: &info.client_id,
                resume_token: token.as_deref(),
                server_time: now_ms(),
                received: member.inbound.load(Ordering::Acquire),
                replayed,
            }
            .encode();
            queue.resume_from(carried, resume.received, first);
            member.queue = queue.clone();
            (replayed, member.away.take().is_some(), member.inbound.clone(), member.placed.clone())
        };
        if was_away {
            let frame = ServerMessage::PeerResumed { client_id: &info.client_id }.encode();
            self.publish(
                &room,
                Envelope {
                    to: placed.audience(Some(info.client_id.clone())),
                    delivery: Delivery::Guaranteed,
                    payload: frame,
                },
            );
        }
        tracing::debug!(room = info.room_id, client = %info.client_id, replayed, was_away, "resumed");
        let peer = Peer::new(self.clone(), room, info, queue.clone(), inbound, placed);
        Ok(Resumed { peer, outbox: Outbox::new(queue), replayed })
    }
}
