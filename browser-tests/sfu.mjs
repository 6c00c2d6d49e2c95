// Voice and screen share through the gateway's SFU in real Chromium with fake media (issue 25). Driven by
// gateway/tests/api/browser_sfu.rs: a host and three listeners load the dlux adapter from the gateway and join an
// `sfu` room; each listener's getStats() must show inbound audio bytes and a non-zero audio level from the
// host; a host's HTTP mute must stop the bytes at the SFU although the host's browser keeps sending; the host's
// screen share must reach every listener. A listener given only a TURN-over-TCP server with
// iceTransportPolicy "relay" (when `turn_tcp` is set) must hear the host too.
// With `ice_tcp`, one listener whose page drops the SFU's UDP candidate from the answer reaches it over ICE-TCP.
import { launch, main, watchPage } from "./lib/browser.mjs";

const PAGE = (base) => `<!doctype html><meta charset="utf-8"><title>sfu</title>
<button id="share">share</button><video id="screen" autoplay muted playsinline></video>
<script src="${base}/naf-dlux-adapter.js"></script>`;

/** Polls `fn` (in node) until it returns a truthy value; throws `what` after `ms`. */
async function until(what, fn, ms = 20000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function join(context, args, name, token, extra, log, tcpOnly) {
  const started = Date.now();
  const page = await context.newPage();
  const record = await watchPage(page, name, args.base_url);
  if (tcpOnly) {
    // As behind a firewall that drops UDP: the SFU's answer keeps only its TCP candidate (ICE over TCP).
    await page.addInitScript(() => {
      const original = RTCPeerConnection.prototype.setRemoteDescription;
      RTCPeerConnection.prototype.setRemoteDescription = function (description) {
        if (description && description.sdp) {
          const sdp = description.sdp
            .split("\r\n")
            .filter((line) => !(line.startsWith("a=candidate") && line.includes(" udp ")))
            .join("\r\n");
          description = { type: description.type, sdp };
        }
        return original.call(this, description);
      };
    });
  }
  // A document the gateway itself served (Chromium's local-network checks treat a page made up by the driver
  // as public and refuse its WebSocket to 127.0.0.1), then the test's markup written into it.
  await page.goto(`${args.base_url}/api/health`);
  await page.setContent(PAGE(args.base_url));
  await page.waitForFunction(() => typeof window.DluxAdapter === "function");
  await page.evaluate(
    ({ url, token, host, extra }) => {
      const a = new window.DluxAdapter();
      window.adapter = a;
      a.setServerConnectListeners((id) => (window.myId = id), (code, reason) => (window.failure = { code, reason }));
      a.setRoomOccupantListener(() => {});
      a.setDataChannelListeners(() => {}, () => {}, () => {});
      a.setWebRtcOptions({ audio: host, video: false, datachannel: true });
      a.setJoinCredentials(Object.assign({ websocket_url: url, session_token: token }, extra || {}));
      document.getElementById("share").onclick = () => a.startScreenShare();
      a.connect();
    },
    { url: `${args.base_url.replace("http", "ws")}/event/${args.event_id}`, token, host: name === "host", extra },
  );
  await until(`${name} joined`, () => page.evaluate(() => window.myId || (window.failure && JSON.stringify(window.failure))));
  const failure = await page.evaluate(() => window.failure);
  if (failure) throw new Error(`${name} refused: ${JSON.stringify(failure)}; console: ${JSON.stringify(record.console)}`);
  try {
    // ICE through a TURN relay over TCP takes an allocation and its checks through the relay: on a loaded machine
    // that is seconds, so the relay-only listener gets the driver's longer wait.
    const ms = extra && extra.ice_transport_policy === "relay" ? 60000 : 20000;
    await until(`${name} connected to the SFU`, () => page.evaluate(() => window.adapter.sfu && window.adapter.sfu.pc.connectionState === "connected"), ms);
    if (log) log(`${name} connected to the SFU in ${Date.now() - started} ms`);
  } catch (e) {
    const state = await page.evaluate(async () => {
      const pc = window.adapter.sfu && window.adapter.sfu.pc;
      if (!pc) return { iceServers: window.adapter.iceServers };
      const candidates = [];
      (await pc.getStats()).forEach((s) => {
        if (s.type === "local-candidate" || s.type === "remote-candidate" || s.type === "candidate-pair") candidates.push(s);
      });
      return { connection: pc.connectionState, ice: pc.iceConnectionState, gathering: pc.iceGatheringState, candidates };
    });
    throw new Error(`${e.message}: ${JSON.stringify(state)}; console: ${JSON.stringify(record.console)}; errors: ${JSON.stringify(record.errors)}`);
  }
  return { page, record, name };
}

/** What one listener received: audio bytes and level, video bytes and frame size, the candidate pair used. */
async function received(page) {
  return page.evaluate(async () => {
    const stats = await window.adapter.sfu.pc.getStats();
    const out = { audio_bytes: 0, audio_level: 0, audio_energy: 0, video_bytes: 0, frame_width: 0, local_candidate: null };
    const byId = {};
    stats.forEach((s) => (byId[s.id] = s));
    stats.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "audio") {
        out.audio_bytes += s.bytesReceived || 0;
        out.audio_level = Math.max(out.audio_level, s.audioLevel || 0);
        out.audio_energy += s.totalAudioEnergy || 0;
      }
      if (s.type === "inbound-rtp" && s.kind === "video") {
        out.video_bytes += s.bytesReceived || 0;
        out.frame_width = Math.max(out.frame_width, s.frameWidth || 0);
      }
    });
    // The pair the transport uses now (its `selectedCandidatePairId`), rather than any nominated pair: a pair's
    // `nominated` flag can lag the first packets it carried.
    let pair = null;
    stats.forEach((s) => {
      if (s.type === "transport" && s.selectedCandidatePairId) pair = byId[s.selectedCandidatePairId] || pair;
    });
    if (!pair) stats.forEach((s) => {
      if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pair = s;
    });
    const local = pair && byId[pair.localCandidateId];
    if (local) out.local_candidate = { type: local.candidateType, protocol: local.protocol, relay_protocol: local.relayProtocol || null };
    return out;
  });
}

/** What the adapter knows of the SFU's slots, for a timeout's message. */
async function adapterState(page) {
  return page.evaluate(() => {
    const a = window.adapter;
    const sfu = a.sfu;
    return {
      my_id: a.myId,
      session: a.sfuSession,
      tracks: a.sfuTracks,
      slots: sfu ? sfu.slots.map((s) => (s.track ? s.track.readyState : null)) : null,
      link_tracks: sfu ? sfu.tracks : null,
      remote_streams: Object.keys(a.remoteStreams),
      pending: Object.keys(a.pendingStreams),
      connection: sfu ? sfu.pc.connectionState : null,
    };
  });
}

async function sent(page) {
  return page.evaluate(async () => {
    let bytes = 0;
    (await window.adapter.sfu.pc.getStats()).forEach((s) => {
      if (s.type === "outbound-rtp" && s.kind === "audio") bytes += s.bytesSent || 0;
    });
    return bytes;
  });
}

/** The level and bytes of the inbound audio that plays `window[name]` (a stream getMediaStream resolved). */
async function receivedOn(page, name) {
  return page.evaluate(async (name) => {
    const stream = window[name];
    const id = stream && stream.getAudioTracks()[0] && stream.getAudioTracks()[0].id;
    const out = { audio_bytes: 0, audio_level: 0 };
    (await window.adapter.sfu.pc.getStats()).forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "audio" && s.trackIdentifier === id) {
        out.audio_bytes += s.bytesReceived || 0;
        out.audio_level = Math.max(out.audio_level, s.audioLevel || 0);
      }
    });
    return out;
  }, name);
}

/**
 * Issue 25's stage: the creator invites listener-0 onto the stage over HTTP; its adapter is told it may publish,
 * negotiates a publishing connection and turns its (fake) microphone on; listener-1 hears it (bytes and level on
 * the track that plays the speaker, while the host's seat is still muted at the SFU). Taken off the stage, the
 * speaker is told, and listener-1's bytes stop.
 */
async function stageSpeaker(args, listeners, log) {
  const [speaker, listener] = listeners;
  const speakerId = await speaker.page.evaluate(() => window.myId);
  const stage = (method) =>
    fetch(`${args.base_url}/api/events/${args.event_id}/stage/${speakerId}`, { method, headers: { authorization: `Bearer ${args.creator}` } });
  await speaker.page.evaluate(() => {
    window.publishTold = [];
    document.body.addEventListener("dlux-sfu-session", (e) => window.publishTold.push(e.detail.publish));
  });
  const before = (await received(listener.page)).audio_bytes;
  const invited = await stage("POST");
  if (invited.status !== 204) throw new Error(`invite answered ${invited.status}: ${await invited.text()}`);
  await until("the speaker is told it may publish", () => speaker.page.evaluate(() => window.publishTold.includes(true)));
  await until("the speaker's publishing connection is up", () =>
    speaker.page.evaluate(() => window.adapter.sfu && window.adapter.sfu.publish && window.adapter.sfu.pc.connectionState === "connected"));
  const micOn = await speaker.page.evaluate(() => window.adapter.enableMicrophone(true));
  await listener.page.evaluate((id) => {
    window.adapter.getMediaStream(id).then((stream) => {
      const el = new Audio();
      el.srcObject = stream;
      el.play().catch(() => {});
      window.speakerAudio = stream;
    });
  }, speakerId);
  const heard = await until("listener-1 hears the stage speaker", async () => {
    const total = (await received(listener.page)).audio_bytes;
    const r = await receivedOn(listener.page, "speakerAudio");
    return total > before && r.audio_bytes > 0 && r.audio_level > 0 ? { ...r, total_bytes: total } : null;
  });
  log("listener-1 hears the stage speaker:", heard);

  // Off the stage: it is told, and nothing of it reaches the listener any more.
  const removed = await stage("DELETE");
  if (removed.status !== 204) throw new Error(`removal answered ${removed.status}: ${await removed.text()}`);
  await until("the speaker is told it no longer publishes", () => speaker.page.evaluate(() => window.publishTold.at(-1) === false));
  let last = (await received(listener.page)).audio_bytes;
  const settled = await until("listener-1's bytes stop", async () => {
    await new Promise((r) => setTimeout(r, 1000));
    const now = (await received(listener.page)).audio_bytes;
    const stopped = now === last;
    last = now;
    return stopped ? now : null;
  }, 15000);
  const out = {
    speaker_id: speakerId,
    mic_on: micOn,
    told: await speaker.page.evaluate(() => window.publishTold),
    heard,
    listener_bytes_before: before,
    listener_bytes_after_removal: settled,
    speaker_mic_after_removal: await speaker.page.evaluate(() => !!window.adapter.localAudio),
  };
  log("stage:", out);
  return out;
}

main(async (args, log) => {
  const { context, close } = await launch({ media: true, args: ["--autoplay-policy=no-user-gesture-required"] });
  try {
    const host = await join(context, args, "host", args.host, null, log);
    const hostId = await host.page.evaluate(() => window.myId);
    const listeners = [];
    const direct = args.turn_tcp || args.ice_tcp ? 0 : args.listeners.length;
    for (let i = 0; i < direct; i++) {
      listeners.push(await join(context, args, `listener-${i}`, args.listeners[i], null, log));
    }
    if (args.ice_tcp) {
      listeners.push(await join(context, args, "listener-ice-tcp", args.listeners[0], null, log, true));
    }
    if (args.turn_tcp) {
      // Only a TURN server over TCP, and relay-only: UDP to the SFU is never tried.
      const extra = { ice_servers: [args.turn_tcp], ice_transport_policy: "relay" };
      listeners.push(await join(context, args, "listener-turn-tcp", args.turn_tcp_token, extra, log));
    }
    log("everyone is connected to the SFU; host", hostId);

    // Each listener plays what getMediaStream(host) resolves to, as networked-audio-source does.
    for (const l of listeners) {
      await l.page.evaluate((hostId) => {
        window.adapter.getMediaStream(hostId).then((stream) => {
          window.hostAudio = stream;
          const el = new Audio();
          el.srcObject = stream;
          el.play().catch(() => {});
          window.hostAudioElement = el;
        });
      }, hostId);
    }
    const audio = {};
    for (const l of listeners) {
      // The relay-only and ICE-TCP listeners prove the path (bytes over TCP); the direct listeners also prove the level
      // (Chromium's fake microphone beeps, and a loaded relay can sample its silences for the whole wait).
      let last = null;
      try {
        audio[l.name] = await until(`${l.name} hears the host`, async () => {
          const r = await received(l.page);
          const got = await l.page.evaluate(() => !!window.hostAudio);
          last = { got, ...r };
          // The path is read with the bytes: the sample counts only once the transport names the pair they took.
          return got && r.audio_bytes > 0 && r.local_candidate && (args.turn_tcp || args.ice_tcp || r.audio_level > 0) ? r : null;
        }, 30000);
      } catch (e) {
        throw new Error(`${e.message}; last sample ${JSON.stringify(last)}; adapter ${JSON.stringify(await adapterState(l.page))}; console: ${JSON.stringify(l.record.console)}`);
      }
      log(l.name, "hears the host:", audio[l.name]);
    }

    // The host shares its (fake) screen; every listener plays it.
    await host.page.click("#share");
    const screen = {};
    for (const l of listeners) {
      await l.page.evaluate((hostId) => {
        window.adapter.getMediaStream(hostId, "video").then((stream) => {
          const v = document.getElementById("screen");
          v.srcObject = stream;
          v.play().catch(() => {});
        });
      }, hostId);
      screen[l.name] = await until(`${l.name} sees the screen share`, async () => {
        const r = await received(l.page);
        const width = await l.page.evaluate(() => document.getElementById("screen").videoWidth);
        return r.video_bytes > 0 && width > 0 ? { video_bytes: r.video_bytes, video_width: width } : null;
      });
      log(l.name, "sees the screen:", screen[l.name]);
    }
    // The host's browser sends the screen as two simulcast layers; a listener that asks for the low one (as a
    // phone does by default) gets the smaller picture while the others keep the full one.
    let layers = null;
    if (listeners.length >= 2) {
      const [big, small] = listeners;
      await small.page.evaluate(() => window.adapter.setScreenLayer("low"));
      const width = (page) => page.evaluate(() => document.getElementById("screen").videoWidth);
      layers = await until("the listener that asked for the low layer sees the smaller picture", async () => {
        const [high, low] = [await width(big.page), await width(small.page)];
        return high > 0 && low > 0 && low < high ? { high_width: high, low_width: low } : null;
      }, 30000);
      log("simulcast:", layers);
    }

    // A host mutes the host's seat over HTTP. The host's browser then puts its microphone back on the
    // sender anyway, as a misbehaving client would: the SFU must still forward nothing.
    const res = await fetch(`${args.base_url}/api/events/${args.event_id}/attendees/${hostId}/mute`, {
      method: "POST",
      headers: { authorization: `Bearer ${args.creator}`, "content-type": "application/json" },
      body: JSON.stringify({ muted: true }),
    });
    if (res.status !== 204) throw new Error(`mute answered ${res.status}: ${await res.text()}`);
    await until("the host sees its mute", () => host.page.evaluate(() => window.adapter.muted));
    await host.page.evaluate(async () => {
      const mic = await navigator.mediaDevices.getUserMedia({ audio: true });
      await window.adapter.sfu.audioSender.replaceTrack(mic.getAudioTracks()[0]);
    });
    const sentAtMute = await sent(host.page);
    // Bytes stop: two samples a second apart equal (in-flight packets allowed to land first).
    const settle = async (page) => {
      let last = (await received(page)).audio_bytes;
      return until("the bytes stop growing", async () => {
        await new Promise((r) => setTimeout(r, 1000));
        const now = (await received(page)).audio_bytes;
        const stopped = now === last;
        last = now;
        return stopped ? now : null;
      }, 15000);
    };
    const muted = {};
    for (const l of listeners) muted[l.name] = { at_mute: await settle(l.page) };
    // The host keeps sending meanwhile; after a further 2 s of it the listeners' counters have not moved.
    await until("the host's browser sent 2 s more audio", async () => (await sent(host.page)) > sentAtMute + 8000, 15000);
    for (const l of listeners) {
      muted[l.name].after_more_host_audio = (await received(l.page)).audio_bytes;
      if (muted[l.name].after_more_host_audio !== muted[l.name].at_mute) throw new Error(`${l.name} still receives after the mute: ${JSON.stringify(muted[l.name])}`);
    }
    const hostSent = { at_mute: sentAtMute, later: await sent(host.page) };
    log("after the mute:", muted, "host sent", hostSent);
    const stage = args.turn_tcp || args.ice_tcp ? null : await stageSpeaker(args, listeners, log);
    const page_errors = [host, ...listeners].flatMap((p) => p.record.errors || []);
    return { host_id: hostId, audio, screen, layers, muted, host_sent: hostSent, stage, page_errors };
  } finally {
    await close();
  }
});
