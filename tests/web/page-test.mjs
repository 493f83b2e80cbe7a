// The web page of `siamese serve` in headless Chromium (run by scripts/page-check, which starts
// the server): verify two images, search the gallery with one, compare what the page shows with
// the API's own answers, and save a screenshot.
// Usage: node page-test.mjs URL IMAGE_A IMAGE_B SCREENSHOT.png
import { chromium } from "playwright-core";
import { readFileSync } from "node:fs";

const [url, imageA, imageB, screenshot] = process.argv.slice(2);
const failures = [];
const check = (ok, what) => { if (!ok) failures.push(what); };

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox"] });
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  const offsite = [];
  // Previews of the chosen files are blob: URLs, local to the page.
  page.on("request", (r) => { if (!r.url().startsWith(url) && !r.url().startsWith("blob:")) offsite.push(r.url()); });
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  await page.goto(url + "/");
  await page.waitForSelector("#health .ok", { timeout: 15000 });
  const health = await page.textContent("#health");
  const info = await (await fetch(url + "/v1/info")).json();
  check(health.includes(`index: ${info.index.size} items`), `the page shows the index size ${info.index.size}: "${health}"`);

  // Verify: the two images through the page, and the same pair through the JSON API.
  await page.setInputFiles("#a-file", imageA);
  await page.setInputFiles("#b-file", imageB);
  await page.click("#compare");
  await page.waitForFunction(() => /distance/.test(document.querySelector("#verdict").textContent), null, { timeout: 15000 });
  const verdict = await page.textContent("#verdict");
  const b64 = (f) => readFileSync(f).toString("base64");
  const api = await (await fetch(url + "/v1/compare", {
    method: "POST", body: JSON.stringify({ a: { image: b64(imageA) }, b: { image: b64(imageB) } }),
  })).json();
  check(verdict.includes(`distance ${api.distance.toFixed(4)}`), `verdict "${verdict}" shows the API's distance ${api.distance.toFixed(4)}`);
  check(verdict.startsWith(api.same ? "same" : "different"), `verdict "${verdict}" says same=${api.same}`);

  // Search: image A is in the gallery, so it is its own nearest neighbour.
  await page.setInputFiles("#q-file", imageA);
  await page.fill("#k", "5");
  await page.click("#search");
  await page.waitForFunction(() => document.querySelectorAll("#hits .hit").length > 0, null, { timeout: 15000 });
  const hits = await page.$$eval("#hits .hit", (cards) => cards.map((c) => c.textContent));
  const apiHits = (await (await fetch(url + "/v1/search", {
    method: "POST", body: JSON.stringify({ input: { image: b64(imageA) }, k: 5 }),
  })).json()).hits;
  check(hits.length === apiHits.length, `${hits.length} cards shown, the API found ${apiHits.length}`);
  apiHits.forEach((h, i) => check(hits[i] && hits[i].includes(h.key) && hits[i].includes(h.distance.toFixed(4)),
    `card ${i} "${hits[i]}" shows ${h.key} at ${h.distance.toFixed(4)}`));
  await page.screenshot({ path: screenshot, fullPage: true });
  check(offsite.length === 0, `requests left the service: ${offsite.join(", ")}`);
  check(pageErrors.length === 0, `script errors: ${pageErrors.join("; ")}`);
  console.log(JSON.stringify({ verdict, hits: hits.length, failures }));
} finally {
  await browser.close();
}
process.exit(failures.length ? 1 : 0);
