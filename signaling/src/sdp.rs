//! Just enough SDP reading to enforce a host's mute.
//!
//! A muted peer must not (re)negotiate an audio track it sends. We do not parse SDP in
//! general; we look for an `m=audio` section with a non-zero port whose direction (its own
//! `a=` attribute, else the session-level one, else the default `sendrecv`) lets the
//! offerer send.

fn direction(line: &str) -> Option<bool> {
    match line.trim_end() {
        "a=sendrecv" | "a=sendonly" => Some(true),
        "a=recvonly" | "a=inactive" => Some(false),
        _ => None,
    }
}

/// Whether this session description has the author sending audio.
pub(crate) fn sends_audio(sdp: &str) -> bool {
    let mut session_sends = true;
    // (is audio with a live port, sends) for the media section being read.
    let mut section: Option<(bool, Option<bool>)> = None;
    let mut verdict = false;
    let mut close = |section: Option<(bool, Option<bool>)>, session_sends: bool| {
        if let Some((true, sends)) = section {
            verdict |= sends.unwrap_or(session_sends);
        }
    };
    for line in sdp.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(rest) = line.strip_prefix("m=") {
            close(section, session_sends);
            let mut fields = rest.split_whitespace();
            let is_audio = fields.next() == Some("audio");
            let live_port = fields.next().is_some_and(|port| port != "0");
            section = Some((is_audio && live_port, None));
        } else if let Some(sends) = direction(line) {
            match section.as_mut() {
                Some((_, dir)) => *dir = Some(sends),
                None => session_sends = sends,
            }
        }
    }
    close(section, session_sends);
    verdict
}

#[cfg(test)]
mod tests {
    use super::sends_audio;

    #[test]
    fn reads_audio_direction() {
        let send = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendrecv\r\nm=video 9 UDP 96\r\na=sendonly\r\n";
        assert!(sends_audio(send));
        let recv = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=recvonly\r\nm=video 9 UDP 96\r\na=sendonly\r\n";
        assert!(!sends_audio(recv));
        let default_dir = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n";
        assert!(sends_audio(default_dir));
        let session_inactive = "v=0\r\na=inactive\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n";
        assert!(!sends_audio(session_inactive));
        let rejected = "v=0\r\nm=audio 0 UDP/TLS/RTP/SAVPF 111\r\na=sendrecv\r\n";
        assert!(!sends_audio(rejected));
        let video_only = "v=0\r\nm=video 9 UDP 96\r\na=sendrecv\r\n";
        assert!(!sends_audio(video_only));
    }
}
