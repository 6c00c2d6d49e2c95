// networked-aframe over the dlux adapter in a real browser (issue 9). Driven by gateway/tests/api/browser_naf.rs.
//
// Args (JSON): {
//   base_url, event_id, artifacts_dir,
//   alice: <join response, stored in sessionStorage as the join page does>,
//   bob: <session token, passed as #token=>,
//   outsider: <session token whose ticket does not admit to this event>,
//   extra: <valid session token for a room already full>
// }
// Result: per page, its client id, the remote entities it saw, the movement latency, chat, microphone audio and
// screen share across, the failure codes, what left the origin, page errors.

import { join } from "node:path";
import { artifactsDir, launch, main, watchPage } from "./lib/browser.mjs";

const TARGET = { x: 2.5, y: 1.6, z: -1.25 };

/** Remote networked entities on a page: owner, network id, current position. */
function remoteEntities() {
  return Object.values(NAF.entities.entities)
    .filter((el) => el.components.networked && el.components.networked.data.owner !== NAF.clientId && !el.components.networked.data.persistent)
    .map((el) => ({
      owner: el.components.networked.data.owner,
      networkId: el.components.networked.data.networkId,
      position: el.object3D.position.toArray(),
    }));
}

async function openScene(context, args, name, { token, join: joinResponse }) {
  const page = await context.newPage();
  const record = await watchPage(page, name, args.base_url);
  if (joinResponse) {
    await page.addInitScript(
      ([key, value]) => {
        if (!sessionStorage.getItem(key + ":used")) {
          sessionStorage.setItem(key, value);
          sessionStorage.setItem(key + ":used", "1");
        }
      },
      [`dlux-join:${args.event_id}`, JSON.stringify(joinResponse)],
    );
  }
  const hash = token ? `#token=${encodeURIComponent(token)}` : "";
  await page.goto(`${args.base_url}/scenes/event.html?event=${args.event_id}${hash}`);
  return { page, record };
}

/** Waits for the scene to connect or fail; returns `window.dluxScene`'s status, client id and failure. */
async function settled(page, timeout = 30000) {
  await page.waitForFunction(() => window.dluxScene && (window.dluxScene.status === "connected" || window.dluxScene.failure), null, {
    timeout,
  });
  return page.evaluate(() => ({
    status: window.dluxScene.status,
    clientId: window.dluxScene.clientId,
    failure: window.dluxScene.failure,
    statusText: document.getElementById("status").textContent,
  }));
}

main(async (args, log) => {
  const out = artifactsDir(args.artifacts_dir);
  const started = Date.now();
  const steps = {};
  const step = (name) => (steps[name] = Date.now() - started);
  const { context, close } = await launch({ media: true });
  try {
    // Both attendees load the scene at once.
    const [alice, bob] = await Promise.all([
      openScene(context, args, "alice", { join: args.alice }),
      openScene(context, args, "bob", { token: args.bob }),
    ]);
    const [aliceState, bobState] = await Promise.all([settled(alice.page), settled(bob.page)]);
    log("alice", aliceState, "bob", bobState);
    if (aliceState.status !== "connected") throw new Error(`alice did not connect: ${JSON.stringify(aliceState)}`);
    if (bobState.status !== "connected") throw new Error(`bob did not connect: ${JSON.stringify(bobState)}`);
    step("bob_connected");
    // Each sees the other's avatar: NAF's full sync on the adapter's open(id).
    const seenBy = async (page, owner) => {
      const t0 = Date.now();
      await page.waitForFunction((o) => Object.values(NAF.entities.entities).some((el) => el.components.networked.data.owner === o), owner, {
        timeout: 10000,
      });
      return Date.now() - t0;
    };
    const aliceSeesBobMs = await seenBy(alice.page, bobState.clientId);
    const bobSeesAliceMs = await seenBy(bob.page, aliceState.clientId);

    step("avatars_seen");
    // Alice moves; Bob's copy of her avatar follows.
    const moveStart = Date.now();
    await alice.page.evaluate((p) => document.getElementById("player").setAttribute("position", p), TARGET);
    await bob.page.waitForFunction(
      ([owner, t]) =>
        Object.values(NAF.entities.entities).some((el) => {
          if (el.components.networked.data.owner !== owner) return false;
          const p = el.object3D.position;
          return Math.abs(p.x - t.x) < 0.01 && Math.abs(p.y - t.y) < 0.01 && Math.abs(p.z - t.z) < 0.01;
        }),
      [aliceState.clientId, TARGET],
      { timeout: 10000 },
    );
    const moveMs = Date.now() - moveStart;

    step("moved");
    // Chat through the page's form reaches the other page.
    await alice.page.fill("#chat-input", "hello from alice");
    await alice.page.click("#chat-send");
    await bob.page.waitForFunction(() => document.getElementById("chat-log").textContent.includes("hello from alice"), null, {
      timeout: 5000,
    });

    step("chat");
    // Microphone audio (fake device) over the relayed WebRTC negotiation: Bob gets Alice's stream.
    const audio = await bob.page
      .evaluate(
        (owner) =>
          Promise.race([
            NAF.connection.adapter.getMediaStream(owner, "audio").then((s) => s.getAudioTracks().length),
            // Media over a relayed negotiation is the slowest step on a loaded two-core machine.
            new Promise((resolve) => setTimeout(() => resolve(0), 20000)),
          ]),
        aliceState.clientId,
      )
      .catch((e) => {
        log("audio", String(e));
        return 0;
      });

    step("audio");
    // Alice shares her screen (Chromium's fake screen) with the page's button; Bob's stage shows it.
    await alice.page.click("#screen-toggle");
    const screenWidth = await bob.page
      .waitForFunction(
        (owner) => {
          const video = document.getElementById("screen-video-" + owner);
          const material = document.getElementById("stage-screen").getAttribute("material");
          const shown = material && material.src === video;
          return video && shown && video.srcObject && video.videoWidth > 0 ? video.videoWidth : false;
        },
        aliceState.clientId,
        { timeout: 20000 },
      )
      .then((handle) => handle.jsonValue())
      .catch(async (e) => {
        log("screen share", String(e));
        log(
          "bob sees",
          await bob.page.evaluate((owner) => {
            const a = NAF.connection.adapter;
            const link = a.links[owner];
            const streams = a.remoteStreams[owner] || {};
            return {
              peer: a.peers[owner],
              streams: Object.keys(streams).map((k) => [k, streams[k].getTracks().map((t) => t.kind + ":" + t.readyState)]),
              signaling: link && link.pc.signalingState,
              connection: link && link.pc.connectionState,
              receivers: link && link.pc.getReceivers().map((r) => r.track.kind + ":" + r.track.readyState),
              video: !!document.getElementById("screen-video-" + owner),
            };
          }, aliceState.clientId),
        );
        log("alice console", alice.record.console.filter((l) => /dlux|rror|arn/.test(l)));
        log("bob console", bob.record.console.filter((l) => /dlux|rror|arn/.test(l)));
        return 0;
      });
    const aliceScreenPressed = await alice.page.getAttribute("#screen-toggle", "aria-pressed");

    step("screen");
    // The page's microphone button follows the adapter (it turned the mic on by itself, `audio: true`).
    const aliceMicPressed = await alice.page.getAttribute("#mic-toggle", "aria-pressed");

    await alice.page.waitForTimeout(300); // a frame or two after the last move
    await alice.page.screenshot({ path: join(out, "naf-alice.png") });
    await bob.page.screenshot({ path: join(out, "naf-bob.png") });
    const canvasPixels = await bob.page.evaluate(() => {
      // WebGL really drew: render a frame and read it back in the same task (the drawing buffer is not
      // preserved across frames), then count distinct colours on a coarse grid.
      const scene = document.querySelector("a-scene");
      scene.renderer.render(scene.object3D, scene.camera);
      const gl = scene.renderer.getContext();
      const w = gl.drawingBufferWidth;
      const h = gl.drawingBufferHeight;
      const pixels = new Uint8Array(w * h * 4);
      gl.readPixels(0, 0, w, h, gl.RGBA, gl.UNSIGNED_BYTE, pixels);
      const colours = new Set();
      for (let y = 0; y < h; y += 10) {
        for (let x = 0; x < w; x += 10) {
          const i = (y * w + x) * 4;
          colours.add((pixels[i] << 16) | (pixels[i + 1] << 8) | pixels[i + 2]);
        }
      }
      return colours.size;
    });

    step("screenshots");
    // A ticket of another event: NAF's connect-failure callback with 4403. A third valid ticket while two
    // attendees fill the room: 4409. (The outsider takes no seat, so both can knock at once.)
    const [outsider, extra] = await Promise.all([
      openScene(context, args, "outsider", { token: args.outsider }),
      openScene(context, args, "extra", { token: args.extra }),
    ]);
    const [outsiderState, extraState] = await Promise.all([settled(outsider.page), settled(extra.page)]);
    await extra.page.screenshot({ path: join(out, "naf-room-full.png") });

    step("refusals");
    const pages = [alice, bob, outsider, extra].map((p) => p.record);
    const aliceRemote = await alice.page.evaluate(remoteEntities);
    const bobRemote = await bob.page.evaluate(remoteEntities);
    return {
      alice: { ...aliceState, remote: aliceRemote, sees_peer_ms: aliceSeesBobMs },
      bob: { ...bobState, remote: bobRemote, sees_peer_ms: bobSeesAliceMs, audio_tracks_from_alice: audio },
      alice_mic_pressed: aliceMicPressed,
      alice_screen_pressed: aliceScreenPressed,
      bob_sees_screen_width: screenWidth,
      move_observed_ms: moveMs,
      outsider: outsiderState,
      extra: extraState,
      canvas_colours: canvasPixels,
      external_requests: pages.flatMap((p) => p.external),
      page_errors: pages.flatMap((p) => p.errors.map((e) => `${p.name}: ${e}`)),
      console_errors: pages.flatMap((p) => p.console.filter((l) => l.startsWith("error")).map((l) => `${p.name}: ${l}`)),
      elapsed_ms: Date.now() - started,
      steps_ms: steps,
    };
  } finally {
    await close();
  }
});
