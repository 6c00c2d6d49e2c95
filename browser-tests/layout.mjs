// Every page at a phone's and a desktop's size (issue 28), with realistic data the orchestrator seeded
// (gateway/tests/api/browser_pages.rs): nothing wider than the screen, the page's primary actions on screen, and
// an axe-core scan with no serious or critical violation. A screenshot of each page at each size goes to
// artifacts_dir as layout-<page>-<size>.png.
//
// Args (JSON): { base_url, artifacts_dir, pages: [{ name, path (or paths: { phone, desktop }), primary: [selector…], first_screen: [selector…],
//               session?: {…} (the creator's, put in sessionStorage as the dashboard keeps it) }] }
// Result: { pages: [{ name, size, overflow, hidden_actions, below_fold, violations, errors, external }] }

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { artifactsDir, launch, main, watchPage } from "./lib/browser.mjs";

const AXE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
const SIZES = [
  { size: "phone", viewport: { width: 390, height: 844 } },
  { size: "desktop", viewport: { width: 1366, height: 900 } },
];

/** What sticks out sideways: the page's own scroll width, and the widest offenders. */
const measure = () => {
  const width = document.documentElement.clientWidth;
  const wide = [...document.querySelectorAll("body *")]
    .filter((el) => {
      const r = el.getBoundingClientRect();
      return r.width > 0 && r.right > width + 1 && !el.closest(".scroll");
    })
    .slice(0, 5)
    .map((el) => `${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""}${el.className && typeof el.className === "string" ? "." + el.className.split(" ").join(".") : ""}`);
  return { scrollWidth: document.documentElement.scrollWidth, width, wide };
};

main(async (args, log) => {
  const shots = artifactsDir(args.artifacts_dir);
  const results = [];
  for (const { size, viewport } of SIZES) {
    const { context, close } = await launch({ viewport });
    try {
      for (const spec of args.pages) {
        const page = await context.newPage();
        if (spec.session) {
          await page.addInitScript((s) => sessionStorage.setItem("dlux-creator", JSON.stringify(s)), spec.session);
        }
        const record = await watchPage(page, `${spec.name}-${size}`, args.base_url);
        // A page whose address is good once (the scene's #token=) gives one per size.
        await page.goto(`${args.base_url}${spec.paths ? spec.paths[size] : spec.path}`);
        // Each page's primary actions are what it is for: wait until they exist (the data has loaded).
        for (const selector of spec.primary) await page.waitForSelector(selector, { state: "attached", timeout: 15000 });
        await page.evaluate(() => document.fonts.ready);
        const belowFold = [];
        for (const selector of spec.first_screen || []) {
          const top = await page.$eval(selector, (el) => el.getBoundingClientRect().top);
          if (top >= viewport.height) belowFold.push(`${selector} starts at ${Math.round(top)} px`);
        }
        await page.screenshot({ path: join(shots, `layout-${spec.name}-${size}.png`), fullPage: true });
        const hidden = [];
        for (const selector of spec.primary) {
          // A locator finds the element again if the page redrew it meanwhile.
          const el = page.locator(selector).first();
          await el.scrollIntoViewIfNeeded({ timeout: 5000 }).catch(() => {});
          const visible = await el.isVisible();
          const box = visible ? await el.boundingBox() : null;
          if (!visible || !box) hidden.push(`${selector}: not visible`);
          else if (box.x < 0 || box.x + box.width > viewport.width + 1) hidden.push(`${selector}: x ${Math.round(box.x)}–${Math.round(box.x + box.width)} outside ${viewport.width}`);
          else if (box.y < 0 || box.y + box.height > viewport.height + 1) hidden.push(`${selector}: cannot be scrolled into view`);
        }
        const overflow = await page.evaluate(measure);
        await page.evaluate(AXE);
        const axe = await page.evaluate(async () => {
          const r = await window.axe.run(document, { resultTypes: ["violations"] });
          return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ")) }));
        });
        const serious = axe.filter((v) => v.impact === "serious" || v.impact === "critical");
        if (axe.length) log(`${spec.name} ${size}: axe ${axe.map((v) => `${v.id} (${v.impact})`).join(", ")}`);
        results.push({
          name: spec.name, size,
          overflow: overflow.scrollWidth > overflow.width ? [`page ${overflow.scrollWidth} > ${overflow.width}`, ...overflow.wide] : [],
          hidden_actions: hidden, below_fold: belowFold, violations: serious,
          errors: record.errors, external: record.external,
        });
        await page.close();
      }
    } finally {
      await close();
    }
  }
  return { pages: results };
});
