// The page's behaviour (src/counter.js) under a fake clock and a fake API: what it shows, what it
// sends, and how often — deterministic, no real time passes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CounterClient,
  READ_BACKOFF_MAX_MS,
  REFRESH_JITTER_MS,
  REFRESH_MIN_MS,
  REQUEST_TIMEOUT_MS,
  WRITE_ATTEMPTS,
  newIdempotencyKey,
  parseCounterBody,
  parseRetryAfter,
  readBackoffDelay,
} from '../src/counter.js';

// Lets every promise chain started by a callback run to its next real wait.
const settle = async () => {
  for (let i = 0; i < 5; i += 1) await new Promise((resolve) => setImmediate(resolve));
};

class FakeClock {
  now = 0;
  #timers = new Map();
  #nextId = 1;

  setTimeout = (callback, ms) => {
    const id = this.#nextId++;
    this.#timers.set(id, { at: this.now + Math.max(0, ms), callback });
    return id;
  };

  clearTimeout = (id) => {
    this.#timers.delete(id);
  };

  get pending() {
    return [...this.#timers.values()].map((t) => t.at - this.now).sort((a, b) => a - b);
  }

  // Moves time forward, firing due timers in order and letting their async work settle.
  async advance(ms) {
    const end = this.now + ms;
    await settle();
    for (;;) {
      let nextId = null;
      let next = null;
      for (const [id, timer] of this.#timers) {
        if (timer.at <= end && (next === null || timer.at < next.at)) [nextId, next] = [id, timer];
      }
      if (next === null) break;
      this.#timers.delete(nextId);
      this.now = next.at;
      next.callback();
      await settle();
    }
    this.now = end;
  }
}

const reply = (status, body, headers = {}) => ({
  ok: status >= 200 && status < 300,
  status,
  headers: new Headers(headers),
  text: async () => (typeof body === 'string' ? body : JSON.stringify(body)),
});
const HANG = Symbol('hang');
const NETWORK_DOWN = () => new TypeError('Failed to fetch');

// An API whose answer to each request is decided by `respond(request)`; records every request.
function fakeApi(respond) {
  const api = { requests: [], respond };
  api.fetch = (url, init) => {
    const request = { url, method: init.method, cache: init.cache, key: init.headers['Idempotency-Key'] };
    api.requests.push(request);
    return new Promise((resolve, reject) => {
      const answer = api.respond(request);
      if (answer === HANG) {
        init.signal.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
      } else if (answer instanceof Error) {
        reject(answer);
      } else {
        resolve(answer);
      }
    });
  };
  api.count = (method) => api.requests.filter((r) => r.method === method).length;
  return api;
}

// A counter behind the fake API that counts POSTs once per idempotency key, like the origin.
function counterApi(start = 0) {
  let value = start;
  const byKey = new Map();
  return fakeApi((request) => {
    if (request.method === 'GET') return reply(200, { value });
    if (!byKey.has(request.key)) byKey.set(request.key, ++value);
    return reply(200, { value: byKey.get(request.key) });
  });
}

function setup(api, { visible = true, random = () => 0.5 } = {}) {
  const clock = new FakeClock();
  let keys = 0;
  const client = new CounterClient({
    fetch: api.fetch,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    now: () => clock.now,
    random,
    newKey: () => `key-${++keys}`,
    onChange: () => {},
  });
  client.start(visible);
  return { client, clock };
}

describe('parsing', () => {
  it('reads {"value": N} exactly, beyond 2^53', () => {
    assert.equal(parseCounterBody('{"value": 42}'), 42n);
    assert.equal(parseCounterBody('{"value":9223372036854775807}'), 9223372036854775807n);
    assert.equal(parseCounterBody('{"value": 9007199254740993}'), 9007199254740993n);
  });

  it('rejects what is not a non-negative integer value', () => {
    for (const body of ['', 'null', '[]', '{}', '{"value":"1"}', '{"value":-1}', '{"value":1.5}', '{"value":1e3}', '{"error":"x"}']) {
      assert.throws(() => parseCounterBody(body), `${body} is rejected`);
    }
  });

  it('Retry-After as seconds or an HTTP date', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    assert.equal(parseRetryAfter('3', now), 3000);
    assert.equal(parseRetryAfter('Thu, 01 Jan 2026 00:00:10 GMT', now), 10_000);
    assert.equal(parseRetryAfter('Wed, 31 Dec 2025 00:00:00 GMT', now), 0);
    assert.equal(parseRetryAfter(null, now), null);
    assert.equal(parseRetryAfter('soon', now), null);
  });

  it('idempotency keys are version-4 UUIDs, also without crypto.randomUUID', () => {
    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
    assert.match(newIdempotencyKey(globalThis.crypto), uuid);
    const fallback = newIdempotencyKey({ getRandomValues: (a) => globalThis.crypto.getRandomValues(a) });
    assert.match(fallback, uuid);
    assert.notEqual(fallback, newIdempotencyKey({ getRandomValues: (a) => globalThis.crypto.getRandomValues(a) }));
  });
});

describe('reading', () => {
  it('shows the value and revalidates with the server (no browser cache)', async () => {
    const api = counterApi(7);
    const { client, clock } = setup(api);
    await clock.advance(0);
    assert.equal(client.state.value, 7n);
    assert.equal(api.requests[0].cache, 'no-cache');
    assert.equal(api.requests[0].key, undefined, 'no idempotency key on reads');
    client.stop();
  });

  it('never shows a smaller value than one it has shown', async () => {
    const answers = [10, 7, 12, 11];
    const api = fakeApi(() => reply(200, { value: answers.shift() }));
    const { client, clock } = setup(api);
    await clock.advance(0);
    const shown = [client.state.value];
    for (let i = 0; i < 3; i += 1) {
      await clock.advance(clock.pending[0]);
      shown.push(client.state.value);
    }
    assert.deepEqual(shown, [10n, 10n, 12n, 12n]);
    client.stop();
  });

  it('refreshes every 5–10 s with jitter: no polling storm', async () => {
    for (const [random, delay] of [[() => 0, REFRESH_MIN_MS], [() => 0.999, REFRESH_MIN_MS + 4995]]) {
      const api = counterApi();
      const { client, clock } = setup(api, { random });
      await clock.advance(0);
      assert.deepEqual(clock.pending, [delay]);
      client.stop();
    }
    const api = counterApi();
    const { client, clock } = setup(api, { random: Math.random });
    await clock.advance(10 * 60_000);
    const reads = api.count('GET');
    assert.ok(reads >= 60 && reads <= 121, `${reads} reads in 10 minutes`);
    client.stop();
  });

  it('pauses while the tab is hidden and catches up when it is shown', async () => {
    const api = counterApi();
    const { client, clock } = setup(api);
    await clock.advance(0);
    client.setVisible(false);
    assert.deepEqual(clock.pending, [], 'no timer while hidden');
    await clock.advance(30 * 60_000);
    assert.equal(api.count('GET'), 1, 'nothing fetched while hidden');
    client.setVisible(true);
    await clock.advance(0);
    assert.equal(api.count('GET'), 2, 'one read on becoming visible');
    assert.equal(clock.pending.length, 1, 'and refreshes resume');
    client.stop();
  });

  it('a tab opened in the background reads once, then waits until shown', async () => {
    const api = counterApi(3);
    const { client, clock } = setup(api, { visible: false });
    await clock.advance(5 * 60_000);
    assert.equal(client.state.value, 3n);
    assert.equal(api.count('GET'), 1);
    client.stop();
  });

  it('backs off while the API fails, up to a minute, and recovers by itself', async () => {
    const api = fakeApi(NETWORK_DOWN);
    const { client, clock } = setup(api, { random: () => 0.999 });
    await clock.advance(0);
    assert.equal(client.state.error.source, 'read');
    const delays = [];
    for (let i = 0; i < 6; i += 1) {
      delays.push(clock.pending[0]);
      await clock.advance(clock.pending[0]);
    }
    assert.deepEqual(delays, [1, 2, 3, 4, 5, 6].map((n) => readBackoffDelay(n, () => 0.999)));
    assert.ok(delays.every((d, i) => i === 0 || d >= delays[i - 1]), 'non-decreasing');
    assert.ok(delays.at(-1) <= READ_BACKOFF_MAX_MS);

    const before = api.count('GET');
    await clock.advance(10 * 60_000);
    assert.ok(api.count('GET') - before <= 10 * 60_000 / (READ_BACKOFF_MAX_MS / 2), 'at most a read per ~minute');

    api.respond = () => reply(200, { value: 5 });
    await clock.advance(READ_BACKOFF_MAX_MS);
    assert.equal(client.state.error, null, 'the error clears when the API is back');
    assert.equal(client.state.value, 5n);
    assert.ok(clock.pending[0] <= REFRESH_MIN_MS + REFRESH_JITTER_MS, 'back to the normal rhythm');
    client.stop();
  });

  it('honours Retry-After on 503', async () => {
    const api = fakeApi(() => reply(503, { error: 'overloaded' }, { 'retry-after': '45' }));
    const { client, clock } = setup(api);
    await clock.advance(0);
    assert.match(client.state.error.message, /busy/);
    assert.ok(clock.pending[0] >= 45_000);
    client.stop();
  });

  it('times out a read that hangs', async () => {
    const api = fakeApi(() => HANG);
    const { client, clock } = setup(api);
    await clock.advance(REQUEST_TIMEOUT_MS);
    assert.equal(client.state.error.source, 'read');
    client.stop();
  });
});

describe('clicking', () => {
  it("shows the POST's own answer, even when a read has shown more", async () => {
    const answers = { GET: [20], POST: [11] };
    const api = fakeApi((request) => reply(200, { value: answers[request.method].shift() }));
    const { client, clock } = setup(api);
    await clock.advance(0);
    await client.increment();
    assert.equal(client.state.mine, 11n, 'my click made it 11');
    assert.equal(client.state.value, 20n, 'the count shown does not go back to 11');
    client.stop();
  });

  it('a click increments by one and sends a fresh Idempotency-Key', async () => {
    const api = counterApi(5);
    const { client, clock } = setup(api);
    await clock.advance(0);
    await client.increment();
    await client.increment();
    assert.equal(client.state.value, 7n);
    const posts = api.requests.filter((r) => r.method === 'POST');
    assert.deepEqual(posts.map((p) => p.key), ['key-1', 'key-2']);
    assert.ok(posts.every((p) => p.cache === 'no-store'));
    client.stop();
  });

  it('is busy while in flight and ignores presses meanwhile', async () => {
    const api = fakeApi((request) => (request.method === 'GET' ? reply(200, { value: 0 }) : HANG));
    const { client, clock } = setup(api);
    await clock.advance(0);
    const click = client.increment();
    assert.equal(client.state.writing, true);
    client.increment();
    client.increment();
    await clock.advance(REQUEST_TIMEOUT_MS - 1);
    assert.equal(client.state.writing, true);
    assert.equal(api.count('POST'), 1, 'presses while in flight send nothing');
    // Each try times out; after the last one the button is free again.
    await clock.advance(WRITE_ATTEMPTS * REQUEST_TIMEOUT_MS + 10_000);
    await click;
    assert.equal(client.state.writing, false);
    assert.equal(api.count('POST'), WRITE_ATTEMPTS);
    client.stop();
  });

  it('retries a failed click with the same key, and counts it once', async () => {
    const api = counterApi(0);
    const realRespond = api.respond;
    let failures = 2;
    api.respond = (request) => (request.method === 'POST' && failures-- > 0 ? reply(503, { error: 'busy' }, { 'retry-after': '1' }) : realRespond(request));
    const { client, clock } = setup(api);
    await clock.advance(0);
    const click = client.increment();
    await clock.advance(10_000);
    await click;
    const posts = api.requests.filter((r) => r.method === 'POST');
    assert.equal(posts.length, 3);
    assert.deepEqual(new Set(posts.map((p) => p.key)), new Set(['key-1']));
    assert.equal(client.state.value, 1n);
    assert.equal(client.state.error, null);
    client.stop();
  });

  it(`gives up after ${WRITE_ATTEMPTS} tries; pressing again re-sends the same click`, async () => {
    const api = counterApi(0);
    const up = api.respond;
    api.respond = (request) => (request.method === 'POST' ? NETWORK_DOWN() : up(request));
    const { client, clock } = setup(api);
    await clock.advance(0);
    const click = client.increment();
    await clock.advance(60_000);
    await click;
    assert.equal(api.count('POST'), WRITE_ATTEMPTS);
    assert.equal(client.state.writing, false);
    assert.equal(client.state.error.source, 'write');
    assert.match(client.state.error.message, /will not count it twice/);

    // A read succeeding does not hide that the click has not gone through.
    await clock.advance(REFRESH_MIN_MS + REFRESH_JITTER_MS);
    assert.equal(client.state.error?.source, 'write');

    api.respond = up;
    await client.increment();
    const keys = api.requests.filter((r) => r.method === 'POST').map((p) => p.key);
    assert.deepEqual(new Set(keys), new Set(['key-1']), 'the same click, not a second one');
    assert.equal(client.state.value, 1n);
    assert.equal(client.state.mine, 1n);
    assert.equal(client.state.error, null);
    client.stop();
  });

  it("a failing read does not replace a failed click's message", async () => {
    const api = fakeApi(NETWORK_DOWN);
    const { client, clock } = setup(api);
    await clock.advance(0);
    const click = client.increment();
    await clock.advance(60_000);
    await click;
    const reads = api.count('GET');
    await clock.advance(READ_BACKOFF_MAX_MS);
    assert.ok(api.count('GET') > reads, 'reads went on failing');
    assert.equal(client.state.error.source, 'write');
    assert.match(client.state.error.message, /not count it twice/);
    client.stop();
  });

  it('"Try again" re-sends a failed click and reads again', async () => {
    const api = counterApi(0);
    const up = api.respond;
    api.respond = () => NETWORK_DOWN();
    const { client, clock } = setup(api);
    const click = client.increment();
    await clock.advance(60_000);
    await click;
    api.respond = up;
    const gets = api.count('GET');
    client.retry();
    await clock.advance(0);
    assert.equal(api.count('GET'), gets + 1);
    assert.equal(client.state.value, 1n);
    assert.equal(client.state.error, null);
    assert.deepEqual(new Set(api.requests.filter((r) => r.method === 'POST').map((p) => p.key)), new Set(['key-1']));
    client.stop();
  });

  it('a refused click (4xx) is not retried, and the next press is a new click', async () => {
    const api = fakeApi((request) => (request.method === 'GET' ? reply(200, { value: 0 }) : reply(400, { error: 'bad key' })));
    const { client, clock } = setup(api);
    await clock.advance(0);
    await client.increment();
    assert.equal(api.count('POST'), 1);
    assert.match(client.state.error.message, /HTTP 400/);
    await client.increment();
    assert.deepEqual(api.requests.filter((r) => r.method === 'POST').map((p) => p.key), ['key-1', 'key-2']);
    client.stop();
  });

  it('a long Retry-After is not waited out with the button busy', async () => {
    const api = fakeApi((request) => (request.method === 'GET' ? reply(200, { value: 0 }) : reply(503, {}, { 'retry-after': '120' })));
    const { client, clock } = setup(api);
    await clock.advance(0);
    await client.increment();
    assert.equal(api.count('POST'), 1);
    assert.equal(client.state.writing, false);
    assert.equal(client.state.error.source, 'write');
    client.stop();
  });

  it('a successful click ends read backoff', async () => {
    const api = counterApi(0);
    const up = api.respond;
    api.respond = (request) => (request.method === 'GET' ? NETWORK_DOWN() : up(request));
    const { client, clock } = setup(api, { random: () => 0.999 });
    await clock.advance(0);
    await clock.advance(clock.pending[0]);
    await clock.advance(clock.pending[0]);
    assert.ok(clock.pending[0] > REFRESH_MIN_MS + REFRESH_JITTER_MS, 'in backoff');
    api.respond = up;
    await client.increment();
    assert.equal(client.state.error, null);
    assert.ok(clock.pending[0] <= REFRESH_MIN_MS + REFRESH_JITTER_MS, 'normal rhythm again');
    client.stop();
  });
});
