// The shared side of the browser tests: launching Debian's Chromium headless with the flags this machine needs,
// reading the orchestrator's arguments, and reporting one JSON result back to it.
//
// A Rust integration test (the orchestrator) starts the real gateway, seeds what the scenario needs, then runs
// `node browser-tests/<script>.mjs '<json args>'` and asserts on the single JSON object the script prints on its
// last stdout line. Everything else the script wants to say goes to stderr. See README.md.

import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

export const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";

/** Flags for headless Chromium on a machine with no GPU, no display and no outside network. */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--use-angle=swiftshader",
  "--enable-unsafe-swiftshader",
];

/** Fake camera, microphone and screen, granted without a prompt; WebRTC host candidates on loopback. */
export const MEDIA_ARGS = [
  "--use-fake-device-for-media-stream",
  "--use-fake-ui-for-media-stream",
  "--auto-select-desktop-capture-source=Entire screen",
  "--disable-features=WebRtcHideLocalIpsWithMdns",
];

/**
 * Launches Chromium with a fresh profile. Returns `{ browser, context, close }`; `close()` also removes the
 * profile. `options.media` adds MEDIA_ARGS; `options.args` appends more flags.
 */
export async function launch(options = {}) {
  const userDataDir = mkdtempSync(join(tmpdir(), "dlux-chromium-"));
  const args = [...CHROMIUM_ARGS, ...(options.media ? MEDIA_ARGS : []), ...(options.args || [])];
  // A persistent context is how playwright passes --user-data-dir; it is one browser with many pages.
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args,
    viewport: options.viewport || { width: 960, height: 600 },
    timeout: options.timeout || 20000,
  });
  const close = async () => {
    await context.close().catch(() => {});
    rmSync(userDataDir, { recursive: true, force: true });
  };
  return { browser: context.browser(), context, close };
}

/**
 * The orchestrator's arguments: the JSON object in argv[2] (or in the file named by `@path`).
 * Exits with a usage message when there is none.
 */
export async function readArgs() {
  const raw = process.argv[2];
  if (!raw) {
    process.stderr.write(`usage: node ${process.argv[1]} '<json args>'\n`);
    process.exit(2);
  }
  if (raw.startsWith("@")) {
    const { readFileSync } = await import("node:fs");
    return JSON.parse(readFileSync(raw.slice(1), "utf8"));
  }
  return JSON.parse(raw);
}

/** Prints the result object as the last stdout line, the one the orchestrator parses. */
export function report(result) {
  process.stdout.write(JSON.stringify(result) + "\n");
}

/**
 * Runs `scenario(args, log)` and reports its result; a thrown error is reported as `{ ok: false, error }`
 * and exits non-zero. A watchdog ends the script after `args.timeout_ms` (default 50 s).
 */
export async function main(scenario) {
  const args = await readArgs();
  const log = (...parts) => process.stderr.write(parts.map((p) => (typeof p === "string" ? p : JSON.stringify(p))).join(" ") + "\n");
  const watchdog = setTimeout(() => {
    report({ ok: false, error: `timed out after ${args.timeout_ms || 50000} ms` });
    process.exit(3);
  }, args.timeout_ms || 50000);
  try {
    const result = await scenario(args, log);
    report({ ok: true, ...result });
    clearTimeout(watchdog);
    process.exit(0);
  } catch (e) {
    report({ ok: false, error: String(e && e.stack ? e.stack : e) });
    clearTimeout(watchdog);
    process.exit(1);
  }
}

/** A directory for screenshots, created if missing. */
export function artifactsDir(dir) {
  mkdirSync(dir, { recursive: true });
  return dir;
}

/**
 * Records what a page says and asks for: console lines, page errors, and every request to a host other than
 * `allowedOrigin` (aborted, so a page cannot reach out). Returns the live record.
 */
export async function watchPage(page, name, allowedOrigin) {
  const record = { name, console: [], errors: [], external: [] };
  page.on("console", (msg) => record.console.push(`${msg.type()}: ${msg.text()}`));
  page.on("pageerror", (err) => record.errors.push(String(err)));
  await page.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith(allowedOrigin) || url.startsWith("data:") || url.startsWith("blob:")) return route.continue();
    record.external.push(url);
    return route.abort();
  });
  return record;
}
