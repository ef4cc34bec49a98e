// The page in a real headless Chromium against the real origin (embedded store): it loads clean
// under the CSP, shows the value, a click adds exactly one, and the error state comes and goes
// with the origin. Time inside the page is Playwright's fake clock, so refreshes and retries
// happen when the test says, not after real waits. Screenshots go to artifacts/.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, extname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { OriginProcess, freeLoopbackPort } from './origin-process.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const ORIGIN_BIN = process.env.ORIGIN_BIN ?? join(ROOT, 'target', 'debug', 'counter-origin');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = join(ROOT, 'artifacts');
const EDGE = JSON.parse(readFileSync(join(ROOT, 'edge', 'cloudfront.json'), 'utf8'));
const CSP = EDGE.response_headers_policy.security_headers.content_security_policy.content_security_policy;
const T0 = new Date('2026-01-01T12:00:00Z');
const WAIT_MS = 15_000;
const CLOCK_STEP_MS = 1_000;

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
    const context = await browser.newContext({ viewport: { width: 800, height: 600 } });
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

  it('loads with no console errors or CSP violations and shows the value', async () => {
    const before = await apiValue();
    await page.goto(`${origin.baseUrl}/`);
    await waitForShown(before);
    assert.equal(await page.locator('#value').getAttribute('aria-busy'), 'false');
    assert.equal(await page.getByRole('button', { name: 'Add one' }).count(), 1);
    assert.deepEqual(await cspViolations(), []);
    assert.deepEqual(consoleErrors, []);
    assert.deepEqual(pageErrors, []);
  });

  it("a click adds exactly one and shows the POST's own answer", async () => {
    const before = await shownValue();
    await page.getByRole('button', { name: 'Add one' }).click();
    await waitForShown(before + 1n);
    assert.match(await page.locator('#mine').textContent(), new RegExp(`${before + 1n}\\.$`));
    assert.equal(await apiValue(), before + 1n);
    assert.equal(posts.length, 1);
    assert.match(posts[0], /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
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
    assert.equal(await page.locator('#increment').getAttribute('aria-disabled'), 'false');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'increment', 'focus stays');
    assert.equal(new Set(posts).size, posts.length, 'every click has its own key');
  });

  it('has no console errors or CSP violations while the origin is up (screenshot)', async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'page.png') });
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
          retry: contrast('--fg', '--error-bg'),
        };
      });
      for (const [pair, ratio] of Object.entries(ratios)) {
        assert.ok(ratio >= 4.5, `${colorScheme} ${pair}: ${ratio.toFixed(2)}:1`);
      }
    }
    await page.emulateMedia({ colorScheme: 'light' });
  });

  it('shows an error when the origin stops and clears it by itself when it is back', async () => {
    const shown = await shownValue();
    await origin.stop();
    const failedRead = page.waitForEvent('requestfailed', { predicate: isApi('GET'), timeout: WAIT_MS });
    await advanceUntilRequest('GET'); // the next 5–10 s refresh
    await failedRead;
    await page.locator('#retry').waitFor({ state: 'visible', timeout: WAIT_MS });
    assert.match(await page.locator('#error-message').textContent(), /can't reach/i);
    assert.equal(await shownValue(), shown, 'the last value stays on screen');

    await origin.start();
    const read = page.waitForResponse((r) => isApi('GET')(r.request()) && r.status() === 200, { timeout: WAIT_MS });
    await advanceUntilRequest('GET'); // the next read after the backoff
    await read;
    await page.locator('#retry').waitFor({ state: 'hidden', timeout: WAIT_MS });
    assert.equal(await page.locator('#error-message').textContent(), '');
  });

  it('a click while the origin is down ends in an error; "Try again" counts it exactly once', async () => {
    const before = await apiValue();
    await origin.stop();
    const firstPost = posts.length;
    const failedPost = () => page.waitForEvent('requestfailed', { predicate: isApi('POST'), timeout: WAIT_MS });

    let failed = failedPost();
    await page.getByRole('button', { name: 'Add one' }).click();
    await failed;
    assert.equal(await page.locator('#increment').getAttribute('aria-disabled'), 'true', 'busy while retrying');
    for (let retry = 1; retry < 3; retry += 1) {
      failed = failedPost();
      await advanceUntilRequest('POST'); // the automatic retry after ~1 s, then ~2 s
      await failed;
    }
    await page.locator('#retry').waitFor({ state: 'visible', timeout: WAIT_MS });
    assert.match(await page.locator('#error-message').textContent(), /may not have been counted/);
    assert.equal(await page.locator('#increment').getAttribute('aria-disabled'), 'false');
    await page.screenshot({ path: join(ARTIFACTS, 'page-error.png') });

    await origin.start();
    await page.getByRole('button', { name: 'Try again' }).click();
    await waitForShown(before + 1n);
    await page.locator('#retry').waitFor({ state: 'hidden', timeout: WAIT_MS });
    assert.equal(await apiValue(), before + 1n, 'counted once');
    const keys = posts.slice(firstPost);
    assert.ok(keys.length >= 4, `${keys.length} POSTs: three failed tries and the successful one`);
    assert.equal(new Set(keys).size, 1, 'all with the same Idempotency-Key');
    assert.deepEqual(await cspViolations(), []);
    assert.deepEqual(pageErrors, []);
  });
});
