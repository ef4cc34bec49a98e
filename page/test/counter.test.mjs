// The page's behaviour (src/counter.js) under a fake clock and a fake API: what it shows, what it
// sends, and how often — deterministic, no real time passes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ANNOUNCE_INTERVAL_MS,
  CounterClient,
  READ_BACKOFF_MAX_MS,
  REFRESH_JITTER_MS,
  REFRESH_MIN_MS,
  REQUEST_TIMEOUT_MS,
  WRITE_ATTEMPTS,
  WRITE_RETRY_MAX_WAIT_MS,
  newIdempotencyKey,
  parseCounterBody,
  parseRetryAfter,
  readBackoffDelay,
  refreshDelay,
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

// What each phase may carry beside the value: a click's own answer only when confirmed, a
// problem only in the phases that report one. Checked on every change in every test.
const PHASES = ['loading', 'idle', 'sending', 'confirmed', 'down', 'failed', 'unconfirmed', 'refused'];
function assertConsistent(state) {
  assert.ok(PHASES.includes(state.phase), `known phase ${state.phase}`);
  assert.equal(state.mine !== null, state.phase === 'confirmed', `mine only when confirmed (${state.phase})`);
  assert.equal(state.problem !== null, ['down', 'failed', 'refused'].includes(state.phase), `problem only with an error (${state.phase})`);
  if (['down', 'failed'].includes(state.phase)) assert.equal(state.stale, true, `${state.phase}: the value is the last known`);
  if (state.phase === 'unconfirmed') assert.equal(state.stale, false);
}

function setup(api, { visible = true, random = () => 0.5 } = {}) {
  const clock = new FakeClock();
  let keys = 0;
  const states = [];
  const client = new CounterClient({
    fetch: api.fetch,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    now: () => clock.now,
    random,
    newKey: () => `key-${++keys}`,
    onChange: (state) => {
      assertConsistent(state);
      states.push({ ...state, at: clock.now });
    },
  });
  client.start(visible);
  return { client, clock, states };
}

const postKeys = (api) => api.requests.filter((r) => r.method === 'POST').map((p) => p.key);

// An API that can be switched down and up: down, every request fails to connect.
function switchableApi(start = 0) {
  const api = counterApi(start);
  const up = api.respond;
  api.down = () => {
    api.respond = NETWORK_DOWN;
  };
  api.up = () => {
    api.respond = up;
  };
  return api;
}

// Runs page time on until the next timer has fired (a refresh or a retry).
const nextTimer = (clock) => clock.advance(clock.pending[0]);

describe('reading', () => {
  it('shows the value and revalidates with the server (no browser cache)', async () => {
    const api = counterApi(7);
    const { client, clock } = setup(api);
    assert.equal(client.state.phase, 'loading');
    await clock.advance(0);
    assert.equal(client.state.phase, 'idle');
    assert.equal(client.state.value, 7n);
    assert.equal(client.state.stale, false);
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
      await nextTimer(clock);
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

  it('backs off while the API fails, up to a few seconds, and recovers by itself', async () => {
    const api = fakeApi(NETWORK_DOWN);
    const { client, clock } = setup(api, { random: () => 0.999 });
    await clock.advance(0);
    assert.equal(client.state.phase, 'down');
    const delays = [];
    for (let i = 0; i < 6; i += 1) {
      delays.push(clock.pending[0]);
      await nextTimer(clock);
    }
    assert.deepEqual(delays, [1, 2, 3, 4, 5, 6].map((n) => readBackoffDelay(n, () => 0.999)));
    assert.ok(delays.every((d, i) => i === 0 || d >= delays[i - 1]), 'non-decreasing');
    assert.ok(delays.at(-1) <= READ_BACKOFF_MAX_MS);

    const before = api.count('GET');
    await clock.advance(10 * 60_000);
    assert.ok(api.count('GET') - before <= 10 * 60_000 / (READ_BACKOFF_MAX_MS / 2), 'at most a read per backoff');

    // After ten minutes of failures, the error clears within ~5 s of the API answering.
    api.respond = () => reply(200, { value: 5 });
    await clock.advance(5_000);
    assert.equal(client.state.phase, 'idle', 'the error clears within 5 s of the API being back');
    assert.equal(client.state.value, 5n);
    assert.ok(clock.pending[0] <= REFRESH_MIN_MS + REFRESH_JITTER_MS, 'back to the normal rhythm');
    client.stop();
  });

  it('honours Retry-After on 503', async () => {
    const api = fakeApi(() => reply(503, { error: 'overloaded' }, { 'retry-after': '45' }));
    const { client, clock } = setup(api);
    await clock.advance(0);
    assert.deepEqual(client.state.problem, { kind: 'busy' });
    assert.ok(clock.pending[0] >= 45_000);
    client.stop();
  });

  it('times out a read that hangs', async () => {
    const api = fakeApi(() => HANG);
    const { client, clock } = setup(api);
    await clock.advance(REQUEST_TIMEOUT_MS);
    assert.equal(client.state.phase, 'down');
    assert.deepEqual(client.state.problem, { kind: 'network' });
    client.stop();
  });
});

// Every transition of `phase`, one test each; assertConsistent checks every state in between.
describe('one state at a time', () => {
  it('loading → down when the first read fails: no value, nothing to call last known', async () => {
    const { client, clock } = setup(fakeApi(NETWORK_DOWN));
    await clock.advance(0);
    assert.equal(client.state.phase, 'down');
    assert.equal(client.state.value, null);
    client.stop();
  });

  it('idle → down → idle: the value becomes the last known, then current again', async () => {
    const api = switchableApi(4);
    const { client, clock } = setup(api);
    await clock.advance(0);
    api.down();
    await nextTimer(clock);
    assert.equal(client.state.phase, 'down');
    assert.equal(client.state.stale, true);
    assert.equal(client.state.value, 4n, 'the last value stays');
    api.up();
    await nextTimer(clock);
    assert.equal(client.state.phase, 'idle');
    assert.equal(client.state.stale, false);
    assert.equal(client.state.problem, null);
    client.stop();
  });

  it('idle → sending → confirmed, with the value the click produced', async () => {
    const api = counterApi(7);
    const { client, clock } = setup(api);
    await clock.advance(0);
    const click = client.increment();
    assert.equal(client.state.phase, 'sending');
    await click;
    assert.equal(client.state.phase, 'confirmed');
    assert.equal(client.state.mine, 8n);
    client.stop();
  });

  it('confirmed stays while reads succeed, and gives way to down when they fail', async () => {
    const api = switchableApi(7);
    const { client, clock, states } = setup(api);
    await clock.advance(0);
    await client.increment();
    await nextTimer(clock);
    assert.equal(client.state.phase, 'confirmed', 'a read does not unsay the click');
    api.down();
    await nextTimer(clock);
    assert.equal(client.state.phase, 'down', 'success and error are never said together');
    assert.equal(client.state.mine, null);
    assert.ok(states.every((s) => !(s.mine !== null && s.problem !== null)));
    client.stop();
  });

  it('sending → failed after the automatic tries; the click keeps its key', async () => {
    const api = switchableApi(0);
    const { client, clock } = setup(api);
    await clock.advance(0);
    api.down();
    const click = client.increment();
    await clock.advance(60_000);
    await click;
    assert.equal(client.state.phase, 'failed');
    assert.deepEqual(client.state.problem, { kind: 'network' });
    assert.equal(client.state.stale, true);
    assert.deepEqual(new Set(postKeys(api)), new Set(['key-1']));
    assert.equal(postKeys(api).length, WRITE_ATTEMPTS);
    client.stop();
  });

  it('failed → unconfirmed when reads succeed again: the error goes, the click is offered again', async () => {
    const api = switchableApi(12);
    const { client, clock, states } = setup(api);
    await clock.advance(0);
    api.down();
    const click = client.increment();
    await clock.advance(60_000);
    await click;
    assert.equal(client.state.phase, 'failed');
    // Others click meanwhile; the next read after the backoff shows their count.
    api.up();
    await api.fetch('/api/counter', { method: 'POST', headers: { 'Idempotency-Key': 'other-1' } });
    await api.fetch('/api/counter', { method: 'POST', headers: { 'Idempotency-Key': 'other-2' } });
    await nextTimer(clock);
    assert.equal(client.state.phase, 'unconfirmed');
    assert.equal(client.state.problem, null, 'no error beside the new count');
    assert.equal(client.state.value, 14n);
    assert.equal(client.state.stale, false);
    const updatesWhileFailed = states.filter((s) => s.phase === 'failed' && s.value === 14n);
    assert.deepEqual(updatesWhileFailed, [], 'never a fresh count under the error');

    await client.increment();
    assert.equal(client.state.phase, 'confirmed');
    assert.equal(client.state.mine, 15n, 'counted once, now');
    assert.deepEqual(new Set(postKeys(api).filter((k) => k.startsWith('key-'))), new Set(['key-1']));
    client.stop();
  });

  it('unconfirmed → failed when the API fails again', async () => {
    const api = switchableApi(0);
    const { client, clock } = setup(api);
    await clock.advance(0);
    api.down();
    const click = client.increment();
    await clock.advance(60_000);
    await click;
    api.up();
    await nextTimer(clock);
    assert.equal(client.state.phase, 'unconfirmed');
    api.down();
    await nextTimer(clock);
    assert.equal(client.state.phase, 'failed');
    client.stop();
  });

  it('reads while a click is in flight change only the value and whether it is last known', async () => {
    const api = counterApi(3);
    const counter = api.respond;
    api.respond = (request) => (request.method === 'POST' ? HANG : counter(request));
    const { client, clock } = setup(api);
    await clock.advance(0);
    client.increment();
    await nextTimer(clock); // a refresh succeeds during the click
    assert.equal(client.state.phase, 'sending');
    api.respond = (request) => (request.method === 'POST' ? HANG : NETWORK_DOWN());
    await clock.advance(REFRESH_MIN_MS + REFRESH_JITTER_MS - 1);
    assert.equal(client.state.phase, 'sending', 'a failed read does not end the click');
    assert.equal(client.state.stale, true);
    assert.equal(client.state.problem, null);
    client.stop();
  });

  it('down → sending → confirmed: a click that gets through ends the outage', async () => {
    const api = switchableApi(2);
    const { client, clock } = setup(api);
    await clock.advance(0);
    api.down();
    await nextTimer(clock);
    assert.equal(client.state.phase, 'down');
    api.up();
    await client.increment();
    assert.equal(client.state.phase, 'confirmed');
    assert.equal(client.state.stale, false);
    client.stop();
  });

  it('refused: not retried, stays while reads succeed, and the next press is a new click', async () => {
    const api = fakeApi((request) => (request.method === 'GET' ? reply(200, { value: 0 }) : reply(400, { error: 'bad key' })));
    const { client, clock } = setup(api);
    await clock.advance(0);
    await client.increment();
    assert.equal(api.count('POST'), 1);
    assert.equal(client.state.phase, 'refused');
    assert.deepEqual(client.state.problem, { kind: 'refused', status: 400 });
    await nextTimer(clock);
    assert.equal(client.state.phase, 'refused');
    await client.increment();
    assert.deepEqual(postKeys(api), ['key-1', 'key-2']);
    client.stop();
  });

  it('a click answered with nonsense is refused, not re-sent', async () => {
    const api = fakeApi((request) => (request.method === 'GET' ? reply(200, { value: 0 }) : reply(200, 'not json')));
    const { client, clock } = setup(api);
    await clock.advance(0);
    await client.increment();
    assert.equal(client.state.phase, 'refused');
    assert.deepEqual(client.state.problem, { kind: 'invalid' });
    assert.equal(api.count('POST'), 1);
    client.stop();
  });

  it('refused → down when reads fail', async () => {
    const api = fakeApi((request) => (request.method === 'GET' ? reply(200, { value: 0 }) : reply(400, {})));
    const { client, clock } = setup(api);
    await clock.advance(0);
    await client.increment();
    api.respond = NETWORK_DOWN;
    await nextTimer(clock);
    assert.equal(client.state.phase, 'down');
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
    assert.deepEqual(postKeys(api), ['key-1', 'key-2']);
    assert.ok(api.requests.filter((r) => r.method === 'POST').every((p) => p.cache === 'no-store'));
    client.stop();
  });

  it('is busy while in flight and ignores presses meanwhile', async () => {
    const api = fakeApi((request) => (request.method === 'GET' ? reply(200, { value: 0 }) : HANG));
    const { client, clock } = setup(api);
    await clock.advance(0);
    const click = client.increment();
    assert.equal(client.state.phase, 'sending');
    client.increment();
    client.increment();
    await clock.advance(REQUEST_TIMEOUT_MS - 1);
    assert.equal(client.state.phase, 'sending');
    assert.equal(api.count('POST'), 1, 'presses while in flight send nothing');
    // Each try times out; after the last one the button is free again.
    await clock.advance(WRITE_ATTEMPTS * REQUEST_TIMEOUT_MS + 10_000);
    await click;
    // Reads still succeed here, so the failed click is already offered again.
    assert.equal(client.state.phase, 'unconfirmed');
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
    assert.equal(postKeys(api).length, 3);
    assert.deepEqual(new Set(postKeys(api)), new Set(['key-1']));
    assert.equal(client.state.value, 1n);
    assert.equal(client.state.phase, 'confirmed');
    client.stop();
  });

  it('a failing read does not replace a failed click', async () => {
    const api = fakeApi(NETWORK_DOWN);
    const { client, clock } = setup(api);
    await clock.advance(0);
    const click = client.increment();
    await clock.advance(60_000);
    await click;
    const reads = api.count('GET');
    await clock.advance(READ_BACKOFF_MAX_MS);
    assert.ok(api.count('GET') > reads, 'reads went on failing');
    assert.equal(client.state.phase, 'failed');
    client.stop();
  });

  it('a long Retry-After is not waited out with the button busy', async () => {
    const api = fakeApi((request) => (request.method === 'GET' ? reply(200, { value: 0 }) : reply(503, {}, { 'retry-after': String(WRITE_RETRY_MAX_WAIT_MS / 1000 + 1) })));
    const { client, clock } = setup(api);
    await clock.advance(0);
    await client.increment();
    assert.equal(api.count('POST'), 1);
    assert.equal(client.state.phase, 'failed');
    assert.deepEqual(client.state.problem, { kind: 'busy' });
    client.stop();
  });

  it('a successful click ends read backoff', async () => {
    const api = counterApi(0);
    const up = api.respond;
    api.respond = (request) => (request.method === 'GET' ? NETWORK_DOWN() : up(request));
    const { client, clock } = setup(api, { random: () => 0.999 });
    await clock.advance(0);
    await nextTimer(clock);
    await nextTimer(clock);
    assert.deepEqual(clock.pending, [readBackoffDelay(3, () => 0.999)], 'in backoff');
    api.respond = up;
    await client.increment();
    assert.equal(client.state.phase, 'confirmed');
    assert.deepEqual(clock.pending, [refreshDelay(() => 0.999)], 'normal rhythm again');
    client.stop();
  });
});

describe('announcing the count', () => {
  // A counter others click between every two refreshes.
  function busyApi(start = 100) {
    const api = counterApi(start);
    const counter = api.respond;
    let others = 0;
    api.respond = (request) => {
      if (request.method === 'GET') counter({ method: 'POST', key: `other-${++others}` });
      return counter(request);
    };
    return api;
  }

  const announcements = (states) => {
    const said = [];
    for (const state of states) {
      if (state.announced !== null && state.announced !== said.at(-1)?.value) said.push({ value: state.announced, at: state.at });
    }
    return said;
  };

  it('the first count is on the page already: not announced', async () => {
    const { client, clock } = setup(counterApi(3));
    await clock.advance(ANNOUNCE_INTERVAL_MS * 3);
    assert.equal(client.state.announced, null);
    client.stop();
  });

  it('a busy counter is announced at most every ANNOUNCE_INTERVAL_MS, not on every refresh', async () => {
    const api = busyApi();
    const { client, clock, states } = setup(api, { random: Math.random });
    await clock.advance(10 * 60_000);
    const shownValues = new Set(states.map((s) => s.value));
    const said = announcements(states);
    assert.ok(shownValues.size >= 60, `the number moved on every refresh (${shownValues.size} values)`);
    assert.ok(said.length >= 10 && said.length <= (10 * 60_000) / ANNOUNCE_INTERVAL_MS, `${said.length} announcements in 10 minutes`);
    for (let i = 1; i < said.length; i += 1) {
      assert.ok(said[i].at - said[i - 1].at >= ANNOUNCE_INTERVAL_MS, `announcement ${i} came ${said[i].at - said[i - 1].at} ms after the one before`);
    }
    client.stop();
  });

  it('a single change is announced once the interval has passed, not lost', async () => {
    const api = counterApi(1);
    const { client, clock } = setup(api);
    await clock.advance(0);
    await api.fetch('/api/counter', { method: 'POST', headers: { 'Idempotency-Key': 'other' } });
    await nextTimer(clock);
    assert.equal(client.state.value, 2n);
    assert.equal(client.state.announced, null, 'too soon after the page showed 1');
    await clock.advance(ANNOUNCE_INTERVAL_MS);
    assert.equal(client.state.announced, 2n);
    client.stop();
  });

  it("the person's own click is said by the message, not repeated as a count", async () => {
    const api = counterApi(1);
    const { client, clock } = setup(api);
    await clock.advance(ANNOUNCE_INTERVAL_MS);
    await client.increment();
    await clock.advance(ANNOUNCE_INTERVAL_MS * 2);
    assert.equal(client.state.phase, 'confirmed');
    assert.equal(client.state.announced, null, 'the count is what the click made it');
    client.stop();
  });

  it('an announced count never lags the person\'s own confirmed click', async () => {
    const api = counterApi(4);
    const { client, clock } = setup(api);
    await clock.advance(0);
    await api.fetch('/api/counter', { method: 'POST', headers: { 'Idempotency-Key': 'other' } });
    await clock.advance(ANNOUNCE_INTERVAL_MS + REFRESH_MIN_MS + REFRESH_JITTER_MS);
    assert.equal(client.state.announced, 5n, 'the other click was announced');
    await client.increment();
    assert.equal(client.state.mine, 6n);
    const { announced } = client.state;
    assert.ok(announced === null || announced >= 6n, `the announcer still says ${announced} beside "made it 6"`);
    client.stop();
  });

  it('quiet while a click is in flight and when the message changes', async () => {
    const api = busyApi();
    const counter = api.respond;
    const { client, clock, states } = setup(api);
    await clock.advance(ANNOUNCE_INTERVAL_MS * 2);
    const before = announcements(states).length;
    api.respond = (request) => (request.method === 'POST' ? HANG : counter(request));
    client.increment();
    await clock.advance(REQUEST_TIMEOUT_MS - 1); // a refresh brings news while the click waits
    assert.equal(client.state.phase, 'sending');
    assert.equal(announcements(states).length, before, 'nothing said over the pending click');
    // The click fails (reads still work), so the next refresh brings a new message.
    await clock.advance(60_000);
    assert.equal(client.state.phase, 'unconfirmed');
    const entered = states.find((s) => s.phase === 'unconfirmed');
    assert.equal(entered.announced, states[states.indexOf(entered) - 1].announced, 'the message speaks alone');
    client.stop();
  });
});
