// Drives the rt_server web client in Debian's firefox-esr over WebDriver BiDi (puppeteer-core).
//
//   node tests/support/firefox/drive.mjs URL [SCREENSHOT]
//
// Loads the page at URL, connects, sends a typed message and waits for the streamed reply and
// its audio, then speaks through Firefox's fake microphone (a steady tone), and takes a
// screenshot. Prints one JSON object on stdout for tests/e2e/web/test_firefox.py to assert on;
// exits 1 (with "error" in that object) when a step times out or the page misbehaves.
// Every wait is on page state (the DOM or window.rtStats), never a sleep.

import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import puppeteer from "puppeteer-core";

const FIREFOX = process.env.FIREFOX ?? "/usr/bin/firefox-esr";
const HERE = dirname(fileURLToPath(import.meta.url));
const STEP_TIMEOUT = 15_000; // one wait; the pytest side bounds the whole run
const REPLIES = ".bubble.assistant:not(.greeting)";
const DONE_REPLIES = `${REPLIES}:not(.streaming)`;
const TYPED = "hello firefox";

// Fake media, autoplay, and no network but loopback. puppeteer-core already turns off
// updates, safe browsing, add-on and search updates and points remote settings at a dummy
// host; these close what is left. Anything that still tries the internet meets a dead proxy.
const PREFS = {
  "media.navigator.streams.fake": true, // a generated tone instead of a microphone
  "media.navigator.permission.disabled": true, // no permission prompt
  "media.autoplay.default": 0, // allow audible playback
  "media.autoplay.block-webaudio": false,
  // No sound card here: without one an AudioContext never leaves "suspended" and resume()
  // never settles. Gecko's mock audio backend stands in for a device and keeps real time.
  "media.cubeb.force_mock_context": true,
  "app.normandy.enabled": false,
  "app.shield.optoutstudies.enabled": false,
  "app.update.auto": false,
  "app.update.enabled": false,
  "browser.aboutHomeStartupCache.enabled": false,
  "browser.discovery.enabled": false,
  "browser.newtabpage.activity-stream.feeds.section.topstories": false,
  "browser.newtabpage.activity-stream.feeds.snippets": false,
  "browser.newtabpage.activity-stream.showSponsored": false,
  "browser.newtabpage.activity-stream.showSponsoredTopSites": false,
  "browser.ping-centre.telemetry": false,
  "browser.region.network.url": "",
  "browser.region.update.enabled": false,
  "browser.safebrowsing.provider.google4.updateURL": "",
  "browser.safebrowsing.provider.mozilla.updateURL": "",
  "browser.safebrowsing.update.enabled": false,
  "browser.topsites.contile.enabled": false,
  "browser.vpn_promo.enabled": false,
  "captivedetect.canonicalURL": "",
  "datareporting.usage.uploadEnabled": false,
  "dom.push.connection.enabled": false,
  "dom.push.serverURL": "",
  "extensions.blocklist.enabled": false,
  "extensions.systemAddon.update.enabled": false,
  "geo.provider.network.url": "",
  "identity.fxaccounts.enabled": false,
  "media.gmp-gmpopenh264.enabled": false,
  "media.gmp-manager.url": "",
  "media.gmp-provider.enabled": false,
  "messaging-system.rsexperimentloader.enabled": false,
  "network.captive-portal-service.enabled": false,
  "network.connectivity-service.enabled": false,
  "network.dns.disablePrefetch": true,
  "network.predictor.enabled": false,
  "network.prefetch-next": false,
  "network.trr.mode": 5, // no DNS over HTTPS
  "network.proxy.type": 1,
  "network.proxy.http": "127.0.0.1",
  "network.proxy.http_port": 9, // nothing listens: a stray request fails at once
  "network.proxy.share_proxy_settings": true,
  "network.proxy.ssl": "127.0.0.1",
  "network.proxy.ssl_port": 9,
  "network.proxy.no_proxies_on": "localhost, 127.0.0.1, [::1]",
  "network.proxy.allow_hijacking_localhost": false,
  "security.OCSP.enabled": 0,
  "security.remote_settings.crlite_filters.enabled": false,
  "security.remote_settings.intermediates.enabled": false,
  "services.settings.server": "data:,#remote-settings-dummy/v1", // Remote Settings: no sync
  "toolkit.coverage.opt-out": true,
  "toolkit.telemetry.archive.enabled": false,
  "toolkit.telemetry.enabled": false,
  "toolkit.telemetry.server": "",
  "toolkit.telemetry.unified": false,
  "toolkit.telemetry.updatePing.enabled": false,
};

// Runs in the page before its own scripts. CSP violations become console errors too, whether
// or not the browser reports them itself; the microphone's stream is kept so that the driver
// can fall silent, the way a speaker does, to end the spoken turn.
function preload() {
  document.addEventListener("securitypolicyviolation", (event) => {
    console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI}`);
  });
  const devices = navigator.mediaDevices; // none in about:blank, before the page loads
  if (!devices) return;
  const getUserMedia = devices.getUserMedia.bind(devices);
  devices.getUserMedia = async (constraints) => {
    const stream = await getUserMedia(constraints);
    window.rtTestMic = stream;
    return stream;
  };
}

const report = { problems: [] };
let step = "launch";

async function main(url, screenshot) {
  const profile = await mkdtemp(join(tmpdir(), "rt-firefox-"));
  let browser;
  try {
    browser = await puppeteer.launch({
      browser: "firefox",
      executablePath: FIREFOX,
      headless: true,
      userDataDir: profile,
      extraPrefsFirefox: PREFS,
      defaultViewport: { width: 960, height: 600 },
      env: {
        ...process.env,
        MOZ_CRASHREPORTER_DISABLE: "1",
        // Gecko's own test mode: a connection to anything but loopback aborts instead of
        // leaving the machine, and a release build honours services.settings.server above.
        MOZ_DISABLE_NONLOCAL_CONNECTIONS: "1",
      },
      timeout: 30_000,
    });
    report.browser = await browser.version();
    const page = (await browser.pages())[0] ?? (await browser.newPage());
    page.setDefaultTimeout(STEP_TIMEOUT);
    page.on("pageerror", (error) => report.problems.push(`page error: ${error.message ?? error}`));
    page.on("console", (message) => {
      const text = message.text();
      if (message.type() === "error" || /Content[- ]Security[- ]Policy|CSP/i.test(text)) {
        report.problems.push(`console ${message.type()}: ${text}`);
      }
    });
    await page.evaluateOnNewDocument(preload);
    await conversation(page, url);
    step = "screenshot";
    await mkdir(dirname(screenshot), { recursive: true });
    await page.screenshot({ path: screenshot });
    report.screenshot = screenshot;
    step = "done";
  } finally {
    await browser?.close();
    await rm(profile, { recursive: true, force: true });
  }
}

async function conversation(page, url) {
  step = "load";
  await page.goto(url, { waitUntil: "load" });
  report.title = await page.title();

  step = "connect";
  await page.click("#connect");
  await page.waitForSelector('body[data-state="connected"]');
  await page.waitForFunction(() => document.querySelector(".bubble.greeting")?.textContent);
  report.status = await text(page, "#status");
  report.greeting = await text(page, ".bubble.greeting");

  step = "typed message";
  await page.type("#text", TYPED);
  await page.keyboard.press("Enter");
  await page.waitForSelector(DONE_REPLIES);
  report.userBubble = await text(page, ".bubble.user");
  report.reply = await text(page, DONE_REPLIES);
  report.replyId = await page.$eval(DONE_REPLIES, (element) => element.dataset.id);
  step = "reply audio";
  await page.waitForFunction(() => rtStats.samplesPlayed > 0 && rtStats.samplesQueued === 0);
  report.afterReply = await stats(page);

  step = "microphone";
  await page.click("#mic");
  await page.waitForSelector('body[data-mic="on"]');
  report.micButton = await text(page, "#mic");
  step = "microphone frames";
  await page.waitForFunction(() => rtStats.framesSent >= 50); // a second of 20 ms frames
  report.levelWhileTone = await page.evaluate(() => rtStats.level);
  step = "speech started";
  await page.waitForFunction(() => rtStats.speechStarted === 1);
  step = "fall silent";
  // The fake tone never stops; a disabled track sends silence, so server VAD ends the turn.
  await page.evaluate(() => window.rtTestMic.getAudioTracks().forEach((t) => (t.enabled = false)));
  step = "transcription";
  const spoken = ".bubble.user.speech:not(.pending):not(.partial)"; // the final transcript
  await page.waitForSelector(spoken);
  report.heard = await text(page, spoken);
  step = "spoken reply";
  await page.waitForFunction((selector) => document.querySelectorAll(selector).length === 2, {}, DONE_REPLIES);
  report.spokenReply = await page.$$eval(DONE_REPLIES, (elements) => elements.at(-1).textContent);
  step = "spoken reply audio";
  await page.waitForFunction(
    (before) => rtStats.samplesPlayed > before && rtStats.samplesQueued === 0,
    {},
    report.afterReply.samplesPlayed,
  );
  report.interrupted = await page.$$eval(".interrupted", (elements) => elements.length);
  report.stats = await stats(page);
}

const text = (page, selector) => page.$eval(selector, (element) => element.textContent);
const stats = (page) => page.evaluate(() => ({ ...window.rtStats }));

const [url, screenshot] = process.argv.slice(2);
if (!url) {
  console.error("usage: node drive.mjs URL [SCREENSHOT]");
  process.exit(2);
}
try {
  await main(url, resolve(screenshot ?? join(HERE, "..", "..", "..", "test-artifacts", "firefox.png")));
} catch (error) {
  report.error = `${step}: ${error?.message ?? error}`;
}
process.stdout.write(JSON.stringify(report) + "\n");
process.exit(report.error || report.problems.length ? 1 : 0);
