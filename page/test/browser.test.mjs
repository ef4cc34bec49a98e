// The page in a real headless Chromium against the real origin (embedded store), stopped and
// restarted: it loads clean under the CSP, a click adds exactly one, and each state — idle,
// pending, success, error while the origin is down, the unconfirmed click once it is back, a
// narrow screen — says one thing, offers one button and moves nothing on the page. Time inside the
// page is Playwright's fake clock, so refreshes and retries happen when the test says, not after
// real waits. A screenshot of each state goes to artifacts/page/.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, extname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { ANNOUNCE_INTERVAL_MS } from '../src/counter.js';
import { OriginProcess, freeLoopbackPort } from './origin-process.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const ORIGIN_BIN = process.env.ORIGIN_BIN ?? join(ROOT, 'target', 'debug', 'counter-origin');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SCREENSHOTS = join(ROOT, 'artifacts', 'page');
const EDGE = JSON.parse(readFileSync(join(ROOT, 'edge', 'cloudfront.json'), 'utf8'));
const CSP = EDGE.response_headers_policy.security_headers.content_security_policy.content_security_policy;
const T0 = new Date('2026-01-01T12:00:00Z');
const WAIT_MS = 15_000;
const CLOCK_STEP_MS = 1_000;
const WIDE = { width: 800, height: 600 };
// A state of each phase with each problem it can carry, the largest count the store holds where a
// number is said: every message the page has.
const MAX = '9223372036854775807';
const ALL_MESSAGES = [
  { phase: 'confirmed', mine: MAX },
  ...['network', 'busy', 'unavailable', 'invalid'].map((kind) => ({ phase: 'down', problem: { kind } })),
  ...['network', 'busy', 'unavailable'].map((kind) => ({ phase: 'failed', problem: { kind } })),
  { phase: 'unconfirmed' },
  { phase: 'refused', problem: { kind: 'refused', status: 413 } },
  { phase: 'refused', problem: { kind: 'invalid' } },
].map((state) => ({ value: MAX, stale: true, mine: null, problem: null, ...state }));
const NARROW = { width: 360, height: 640 };

const CONTENT_TYPES = {
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.svg': 'image/svg+xml',
  '.html': 'text/html',
};

let dataDir;
let origin;
let browser;
let page;
const consoleErrors = [];
const pageErrors = [];
const posts = [];
// Set by the tests of the outage, in order: the count when the origin stopped, and where the
// POSTs of the click made during the outage begin.
let countBeforeOutage;
let outageClickFrom;

const apiValue = async () => BigInt((await (await fetch(`${origin.baseUrl}/api/counter`)).json()).value);
const shownValue = async () => BigInt(await page.locator('#value').getAttribute('data-value'));
const waitForShown = (value) => page.locator(`#value[data-value="${value}"]`).waitFor({ timeout: WAIT_MS });
const isApi = (method) => (request) => request.url().endsWith('/api/counter') && request.method() === method;
const cspViolations = () => page.evaluate(() => window.__cspViolations);

// Moves the page's fake clock on in small steps until the page sends `method /api/counter`. One
// long leap would also fire that request's own 10 s timeout before its answer could arrive.
async function advanceUntilRequest(method, limitMs = 120_000) {
  let sent = false;
  const listener = (request) => {
    if (isApi(method)(request)) sent = true;
  };
  page.on('request', listener);
  try {
    for (let elapsed = 0; !sent; elapsed += CLOCK_STEP_MS) {
      if (elapsed >= limitMs) throw new Error(`no ${method} /api/counter within ${limitMs} ms of page time`);
      await page.clock.runFor(CLOCK_STEP_MS);
    }
  } finally {
    page.off('request', listener);
  }
}

// What the page shows now, as a person sees it: displayed text only (innerText skips the message
// form that CSS hides), and the buttons that are on screen.
function shownNow() {
  return page.evaluate(() => {
    const message = document.getElementById('message');
    return {
      phase: document.body.dataset.state,
      label: document.getElementById('value-label').innerText,
      message: message.innerText.trim(),
      tone: message.dataset.tone,
      buttons: [...document.querySelectorAll('button')]
        .filter((button) => button.checkVisibility())
        .map((button) => ({ name: button.innerText, busy: button.getAttribute('aria-disabled') === 'true' })),
    };
  });
}

// Waits for `phase`, then holds the page to saying exactly `expected` with one button.
async function expectState(phase, { label = 'Current count', message = '', tone = 'none', button = 'Add one', busy = false }) {
  await page.locator(`body[data-state="${phase}"]`).waitFor({ state: 'attached', timeout: WAIT_MS });
  assert.deepEqual(await shownNow(), { phase, label, message, tone, buttons: [{ name: button, busy }] });
  assert.equal(await page.getByRole('button').count(), 1, 'one button in the accessibility tree');
}

// Where everything is: the same in every state of one viewport, or the page jumped.
function layout() {
  return page.evaluate(() => {
    const box = (selector) => {
      const { top, height } = document.querySelector(selector).getBoundingClientRect();
      return { top, height };
    };
    const message = document.getElementById('message');
    return {
      heading: box('h1'),
      label: box('#value-label'),
      value: box('#value'),
      button: { ...box('#increment'), width: document.getElementById('increment').getBoundingClientRect().width },
      message: box('#message'),
      messageFits: message.scrollHeight <= message.clientHeight,
      noSideScroll: document.documentElement.scrollWidth <= window.innerWidth,
    };
  });
}

const layoutFor = new Map();
async function expectNoJump() {
  const { width } = page.viewportSize();
  const now = await layout();
  assert.ok(now.messageFits, 'the message fits the room kept for it');
  assert.ok(now.noSideScroll, 'no sideways scrolling');
  if (!layoutFor.has(width)) layoutFor.set(width, now);
  assert.deepEqual(now, layoutFor.get(width), `nothing moved at ${width} px`);
}

async function screenshot(name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  // Transitions finished: the picture shows the state, not the way into it.
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), animations: 'disabled' });
}

// Stops the origin and runs page time on to the next refresh, which fails.
async function stopOriginAndRead() {
  await origin.stop();
  const failedRead = page.waitForEvent('requestfailed', { predicate: isApi('GET'), timeout: WAIT_MS });
  await advanceUntilRequest('GET');
  await failedRead;
}

// Starts the origin and runs page time on to the next refresh (after the backoff), which succeeds.
async function startOriginAndRead() {
  await origin.start();
  const read = page.waitForResponse((r) => isApi('GET')(r.request()) && r.status() === 200, { timeout: WAIT_MS });
  await advanceUntilRequest('GET');
  await read;
}

describe('the page in Chromium against a running origin', () => {
  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'counter-browser-'));
    origin = new OriginProcess({ binary: ORIGIN_BIN, dataDir, port: await freeLoopbackPort() });
    await origin.start();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      chromiumSandbox: false, // CI runs as root, where Chromium's sandbox cannot start
      args: ['--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const context = await browser.newContext({ viewport: WIDE });
    page = await context.newPage();
    page.on('console', (message) => {
      if (message.type() === 'error') consoleErrors.push(message.text());
    });
    page.on('pageerror', (error) => pageErrors.push(String(error)));
    page.on('request', (request) => {
      if (isApi('POST')(request)) posts.push(request.headers()['idempotency-key']);
    });
    await page.addInitScript(() => {
      window.__cspViolations = [];
      document.addEventListener('securitypolicyviolation', (event) => {
        window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
      });
    });
    // Page time runs from T0 until paused; pause a minute ahead so the jump is never "to the past".
    await page.clock.install({ time: T0 });
    await page.clock.pauseAt(new Date(T0.getTime() + 60_000));
  });

  after(async () => {
    await browser?.close();
    await origin?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('the origin serves the page with the headers the edge relies on', async () => {
    const index = await fetch(`${origin.baseUrl}/`);
    assert.equal(index.status, 200);
    assert.match(index.headers.get('content-type'), /^text\/html/);
    assert.equal(index.headers.get('content-security-policy'), CSP, 'origin CSP = edge CSP');
    assert.equal(index.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(index.headers.get('referrer-policy'), 'no-referrer');
    assert.equal(index.headers.get('x-frame-options'), 'DENY');
    assert.match(index.headers.get('cache-control'), /s-maxage=60/);
    assert.equal(await index.text(), readFileSync(join(ROOT, 'static', 'index.html'), 'utf8'));

    for (const name of readdirSync(join(ROOT, 'static', 'assets'))) {
      const asset = await fetch(`${origin.baseUrl}/assets/${name}`);
      assert.equal(asset.status, 200, name);
      assert.ok(asset.headers.get('content-type').startsWith(CONTENT_TYPES[extname(name)]), `${name} content type`);
      assert.equal(asset.headers.get('cache-control'), 'public, max-age=31536000, immutable', name);
      assert.ok(asset.headers.get('etag'), `${name} has an ETag`);
      await asset.arrayBuffer();
    }

    const read = await fetch(`${origin.baseUrl}/api/counter`);
    assert.match(read.headers.get('cache-control'), /s-maxage=\d+/, 'reads are cacheable at the edge');
    await read.arrayBuffer();
  });


  it('idle: loads with no console errors or CSP violations, shows the value, says nothing', async () => {
    const before = await apiValue();
    await page.goto(`${origin.baseUrl}/`);
    await waitForShown(before);
    await expectState('idle', {});
    assert.equal(await page.locator('#value').getAttribute('aria-busy'), 'false');
    await expectNoJump();
    await screenshot('1-idle');
    assert.deepEqual(await cspViolations(), []);
    assert.deepEqual(consoleErrors, []);
    assert.deepEqual(pageErrors, []);
  });

  it('pending: one busy button while the click is in flight, then the click’s own number', async () => {
    const before = await shownValue();
    let release;
    const held = new Promise((resolve) => {
      release = resolve;
    });
    // Holds the POST between the page and the origin, so the pending state lasts until looked at.
    await page.route('**/api/counter', async (route) => {
      if (route.request().method() === 'POST') await held;
      await route.continue();
    });
    await page.getByRole('button', { name: 'Add one' }).click();
    await expectState('sending', { button: 'Adding…', busy: true });
    await expectNoJump();
    await screenshot('2-pending');
    await page.keyboard.press('Enter'); // pressing again while pending sends nothing
    assert.equal(posts.length, 1);

    release();
    await expectState('confirmed', { message: `Your click made it ${before + 1n}.`, tone: 'info' });
    await page.unroute('**/api/counter');
    await waitForShown(before + 1n);
    assert.equal(await apiValue(), before + 1n);
    assert.equal(posts.length, 1);
    assert.match(posts[0], /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    await expectNoJump();
    await screenshot('3-success');
  });

  it('works from the keyboard and keeps focus on the button', async () => {
    const before = await shownValue();
    // Clicking the heading moves focus (and where Tab starts) to the top of the page.
    await page.locator('h1').click();
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'increment', 'Tab reaches the button first');
    await page.keyboard.press('Enter');
    await waitForShown(before + 1n);
    await page.keyboard.press('Space');
    await waitForShown(before + 2n);
    await expectState('confirmed', { message: `Your click made it ${before + 2n}.`, tone: 'info' });
    assert.equal(await page.evaluate(() => document.activeElement.id), 'increment', 'focus stays');
    assert.equal(new Set(posts).size, posts.length, 'every click has its own key');
    assert.deepEqual(await cspViolations(), []);
    assert.deepEqual(consoleErrors, []);
    assert.deepEqual(pageErrors, []);
  });

  it('text contrast is at least 4.5:1 in light and dark schemes', async () => {
    for (const colorScheme of ['light', 'dark']) {
      await page.emulateMedia({ colorScheme });
      const ratios = await page.evaluate(() => {
        const style = getComputedStyle(document.documentElement);
        const rgb = (name) => {
          const hex = style.getPropertyValue(name).trim().replace('#', '');
          return [0, 2, 4].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255);
        };
        const luminance = (name) => {
          const [r, g, b] = rgb(name).map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
          return 0.2126 * r + 0.7152 * g + 0.0722 * b;
        };
        const contrast = (a, b) => {
          const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
          return (hi + 0.05) / (lo + 0.05);
        };
        return {
          text: contrast('--fg', '--bg'),
          label: contrast('--muted', '--bg'),
          button: contrast('--accent-fg', '--accent'),
          error: contrast('--error-fg', '--error-bg'),
          notice: contrast('--fg', '--notice-bg'),
        };
      });
      for (const [pair, ratio] of Object.entries(ratios)) {
        assert.ok(ratio >= 4.5, `${colorScheme} ${pair}: ${ratio.toFixed(2)}:1`);
      }
    }
    await page.emulateMedia({ colorScheme: 'light' });
  });

  it('every message the page can say fits the room kept for it, wide and narrow', async () => {
    const viewModule = /<link rel="modulepreload" href="(\/assets\/view\.[0-9a-f]+\.js)">/.exec(
      readFileSync(join(ROOT, 'static', 'index.html'), 'utf8'),
    )[1];
    for (const viewport of [WIDE, NARROW]) {
      await page.setViewportSize(viewport);
      const overflowing = await page.evaluate(async ({ url, states }) => {
        const { viewOf } = await import(url);
        const format = (n) => new Intl.NumberFormat().format(n);
        const message = document.getElementById('message');
        const parts = [...message.children];
        const saved = parts.map((part) => part.textContent);
        const tone = message.dataset.tone;
        const height = message.getBoundingClientRect().height;
        const misfits = [];
        for (const state of states) {
          const big = (v) => (v === null ? null : BigInt(v));
          const view = viewOf({ ...state, value: big(state.value), mine: big(state.mine), announced: null }, format);
          message.dataset.tone = view.message.tone;
          [parts[0].textContent, parts[1].textContent] = [view.message.long, view.message.short];
          if (message.scrollHeight > message.clientHeight || message.getBoundingClientRect().height !== height) {
            misfits.push(message.innerText);
          }
        }
        parts.forEach((part, i) => {
          part.textContent = saved[i];
        });
        message.dataset.tone = tone;
        return misfits;
      }, { url: viewModule, states: ALL_MESSAGES });
      assert.deepEqual(overflowing, [], `${viewport.width} px: every message fits`);
    }
    await page.setViewportSize(WIDE);
  });

  it('a busy counter: the number follows every refresh, screen readers hear it at most every so often', async () => {
    // The only live regions: the status message and the count announcer.
    assert.equal(await page.getByRole('status').count(), 1);
    assert.equal(await page.locator('[aria-live]').count(), 1);
    await page.evaluate(() => {
      window.__announced = [];
      new MutationObserver(() => {
        window.__announced.push({ at: Date.now(), text: document.getElementById('announcer').textContent });
      }).observe(document.getElementById('announcer'), { childList: true, characterData: true, subtree: true });
    });
    const ownResult = (await shownNow()).message;
    const start = await page.evaluate(() => Date.now());
    const REFRESHES = 12;
    for (let i = 0; i < REFRESHES; i += 1) {
      // Someone else clicks; the page's next refresh shows it.
      const other = await fetch(`${origin.baseUrl}/api/counter`, { method: 'POST', headers: { 'Idempotency-Key': crypto.randomUUID() } });
      const value = BigInt((await other.json()).value);
      const read = page.waitForResponse((r) => isApi('GET')(r.request()) && r.status() === 200, { timeout: WAIT_MS });
      await advanceUntilRequest('GET');
      await read;
      await waitForShown(value);
    }
    const elapsed = (await page.evaluate(() => Date.now())) - start;
    const announced = await page.evaluate(() => window.__announced);
    assert.ok(announced.length >= 1, 'a change is announced');
    assert.ok(
      announced.length <= Math.floor(elapsed / ANNOUNCE_INTERVAL_MS) + 1,
      `${announced.length} announcements in ${elapsed} ms of ${REFRESHES} refreshes`,
    );
    for (let i = 1; i < announced.length; i += 1) {
      assert.ok(announced[i].at - announced[i - 1].at >= ANNOUNCE_INTERVAL_MS, 'spaced by the interval');
    }
    for (const { text } of announced) assert.match(text, /^The count is now [\d,]+\.$/);
    await expectState('confirmed', { message: ownResult, tone: 'info' });
  });

  it('error while down: the success gives way to the error, the number is the last known', async () => {
    const shown = await shownValue();
    countBeforeOutage = await apiValue();
    await stopOriginAndRead();
    await expectState('down', {
      label: 'Last known count',
      message: "Can't reach the counter right now. The page keeps trying.",
      tone: 'error',
    });
    assert.doesNotMatch(await page.locator('body').innerText(), /Your click made it/);
    assert.equal(await shownValue(), shown, 'the last value stays on screen');
    await expectNoJump();
    await screenshot('4-error-down');
  });

  it('a click while down: pending, then one button that offers to send it again', async () => {
    outageClickFrom = posts.length;
    const failedPost = () => page.waitForEvent('requestfailed', { predicate: isApi('POST'), timeout: WAIT_MS });
    let failed = failedPost();
    await page.getByRole('button', { name: 'Add one' }).click();
    await failed;
    await expectState('sending', { label: 'Last known count', button: 'Adding…', busy: true });
    await expectNoJump();
    await screenshot('5-pending-while-down');
    for (let retry = 1; retry < 3; retry += 1) {
      failed = failedPost();
      await advanceUntilRequest('POST'); // the automatic retry after ~1 s, then ~2 s
      await failed;
    }
    await expectState('failed', {
      label: 'Last known count',
      message: "Can't reach the counter right now. Your click wasn't confirmed; sending it again won't count it twice.",
      tone: 'error',
      button: 'Send it again',
    });
    assert.equal(posts.length - outageClickFrom, 3);
    await expectNoJump();
    await screenshot('6-error-click');
    await page.emulateMedia({ colorScheme: 'dark' });
    await screenshot('6-error-click-dark');
    await page.emulateMedia({ colorScheme: 'light' });
  });

  it('recovered: a successful read replaces the error with the unconfirmed click; sending it counts it once', async () => {
    await startOriginAndRead();
    await expectState('unconfirmed', {
      message: "Your last click wasn't confirmed — send it again?",
      tone: 'notice',
      button: 'Send it again',
    });
    const value = await apiValue();
    assert.equal(value, countBeforeOutage, 'the click did not reach the stopped origin');
    assert.equal(await shownValue(), value, 'the number is current');
    await expectNoJump();
    await screenshot('7-recovered-unconfirmed');

    await page.getByRole('button', { name: 'Send it again' }).click();
    await expectState('confirmed', { message: `Your click made it ${value + 1n}.`, tone: 'info' });
    assert.equal(await apiValue(), value + 1n, 'counted once');
    const keys = posts.slice(outageClickFrom);
    assert.equal(keys.length, 4, 'three failed tries and the one sent again');
    assert.equal(new Set(keys).size, 1, 'all with the same Idempotency-Key');
    assert.deepEqual(await cspViolations(), []);
    assert.deepEqual(pageErrors, []);
  });

  it('narrow screen: the short error text, in the same room; the error clears by itself', async () => {
    await page.setViewportSize(NARROW);
    await expectNoJump();
    await stopOriginAndRead();
    await expectState('down', { label: 'Last known count', message: "Can't reach the counter.", tone: 'error' });
    assert.equal(await page.locator('#message .long').isVisible(), false);
    await expectNoJump();
    await screenshot('8-narrow-error');

    await startOriginAndRead();
    await expectState('idle', {});
    await expectNoJump();
    await page.setViewportSize(WIDE);
  });
});
