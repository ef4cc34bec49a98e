// The counter page's behaviour, kept free of the DOM so Node can test it with fake time and a
// fake network (page/test/counter.test.mjs); view.js turns its state into words and app.js binds
// both to the document.
//
// Promises it keeps:
//   - one state at a time (`phase`): the page never says two things, such as a click's success
//     and an error, at once, and an error ends as soon as the API answers again;
//   - the value shown never goes down: reads may come from an edge cache a second or two old, and
//     answers can arrive out of order, so the page shows the highest value it has seen;
//   - a click shows the value its own POST produced, and a click is counted at most once: its
//     retries (automatic, or the person's "Send it again") reuse one Idempotency-Key until it
//     succeeds;
//   - refreshes are gentle: every 5–10 s with jitter, none while the tab is hidden; while the
//     API fails they back off only to READ_BACKOFF_MAX_MS (honouring a longer Retry-After), so the
//     error clears within a few seconds of the API answering again;
//   - a busy counter is not read out on every refresh: changes that refreshes bring are announced
//     at most every ANNOUNCE_INTERVAL_MS, and an announced count never lags the person's own
//     confirmed click.

export const API_PATH = '/api/counter';
export const REFRESH_MIN_MS = 5_000;
export const REFRESH_JITTER_MS = 5_000;
// Reads are answered by the edge cache (stale-if-error included), so a failing read costs the
// origin nothing and a short ceiling costs little; a long one kept the error on screen for up to
// a minute after the API was back.
export const READ_BACKOFF_BASE_MS = 1_000;
export const READ_BACKOFF_MAX_MS = 5_000;
export const REQUEST_TIMEOUT_MS = 10_000;
// Automatic tries of one click before the error state; the waits between them grow from ~1 s.
export const WRITE_ATTEMPTS = 3;
export const WRITE_RETRY_BASE_MS = 1_000;
// A Retry-After longer than this is not waited out with the button busy: the click goes to the
// error state at once and the person decides when to try again.
export const WRITE_RETRY_MAX_WAIT_MS = 5_000;
// Shortest time between two announcements of a count that refreshes brought (screen readers).
export const ANNOUNCE_INTERVAL_MS = 30_000;

// `{"value": N}` → N as a BigInt. The store's counter is a 64-bit integer, beyond what a JS
// number holds exactly, so the digits are read from the text once JSON.parse has vouched for it.
export function parseCounterBody(text) {
  const body = JSON.parse(text);
  if (body === null || typeof body !== 'object' || typeof body.value !== 'number') {
    throw new TypeError('expected {"value": <integer>}');
  }
  const digits = /"value"\s*:\s*(\d+)\s*[,}]/.exec(text);
  if (digits === null) {
    throw new TypeError('expected a non-negative integer value');
  }
  return BigInt(digits[1]);
}

// Retry-After as milliseconds from now: delta-seconds or an HTTP date; null when absent or bad.
export function parseRetryAfter(header, nowMs) {
  if (header === null || header === undefined) return null;
  const text = String(header).trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  if (Number.isNaN(date)) return null;
  return Math.max(0, date - nowMs);
}

// Next refresh while healthy: uniform in [5 s, 10 s), so many open tabs do not move in lockstep.
export function refreshDelay(random) {
  return REFRESH_MIN_MS + Math.floor(random() * REFRESH_JITTER_MS);
}

// Next refresh after `failures` consecutive failed reads: 2 s, 4 s, then 5 s, each between half
// and all of that (jitter spreads the reconnect of many tabs after an outage).
export function readBackoffDelay(failures, random) {
  const ceiling = Math.min(READ_BACKOFF_MAX_MS, READ_BACKOFF_BASE_MS * 2 ** failures);
  return Math.ceil(ceiling / 2 + random() * (ceiling / 2));
}

// Wait before automatic try `attempt + 1` of a click: ~1 s, ~2 s, … with jitter.
export function writeRetryDelay(attempt, random) {
  const ceiling = WRITE_RETRY_BASE_MS * 2 ** (attempt - 1);
  return Math.ceil(ceiling / 2 + random() * (ceiling / 2));
}

// A random (version 4) UUID; crypto.randomUUID exists only in secure contexts, so plain-HTTP
// local runs on a LAN address use getRandomValues directly.
export function newIdempotencyKey(crypto) {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// What went wrong with one exchange, as the page tells it: `kind` is network | busy | unavailable
// | invalid | refused (with the HTTP `status`).
function classifyStatus(status) {
  if (status === 503 || status === 429) return { retryable: true, problem: { kind: 'busy' } };
  if (status >= 500 || status === 408) return { retryable: true, problem: { kind: 'unavailable' } };
  return { retryable: false, problem: { kind: 'refused', status } };
}

// Where a read moves the page. Reads never decide a click's fate: `sending` waits for the click's
// own answer, and a confirmed or refused click stays said while reads succeed. A failing API is
// the most current news, so it replaces whatever the page said before.
const AFTER_READ_OK = { loading: 'idle', down: 'idle', failed: 'unconfirmed' };
const AFTER_READ_FAILED = {
  loading: 'down',
  idle: 'down',
  confirmed: 'down',
  refused: 'down',
  down: 'down',
  unconfirmed: 'failed',
  failed: 'failed',
};

/**
 * State shown by the page, one `phase` at a time:
 *   loading      before the first answer;
 *   idle         the count, nothing to say;
 *   sending      a click is in flight (the waits between its automatic tries included);
 *   confirmed    the last click succeeded, `mine` is the value it produced;
 *   down         reads fail, `problem` says why;
 *   failed       a click is unconfirmed and the API still fails, `problem` says why;
 *   unconfirmed  that click is still unconfirmed but reads succeed again: send it again?
 *   refused      the API refused the click (`problem`); it is not retried.
 * Beside the phase: `value` (BigInt, null before the first answer) and `stale` (the latest
 * exchange failed, so `value` is the last known), and `announced` (the count the polite live
 * region says; null until a refresh brings news worth saying). `onChange(state)` follows every
 * change.
 *
 * deps: fetch, setTimeout, clearTimeout, now() → ms, random() → [0, 1), newKey() → string,
 * onChange(state).
 */
export class CounterClient {
  #deps;
  #state = { phase: 'loading', value: null, stale: false, mine: null, problem: null, announced: null };
  #visible = false;
  #reading = false;
  #readFailures = 0;
  #lastReadAt = -Infinity;
  #refreshTimer = null;
  // The unconfirmed click's key: kept until the click succeeds or is refused.
  #pendingKey = null;
  // The count a screen reader last heard (announced, on the page at load, or a click's own
  // answer), and when.
  #heard = null;
  #heardAt = -Infinity;
  #stopped = false;

  constructor(deps) {
    this.#deps = deps;
  }

  get state() {
    return this.#state;
  }

  // One read now, then periodic refreshes while `visible`.
  start(visible) {
    this.#visible = visible;
    this.refresh();
  }

  stop() {
    this.#stopped = true;
    this.#cancelRefresh();
  }

  setVisible(visible) {
    this.#visible = visible;
    if (!visible) {
      this.#cancelRefresh();
      return;
    }
    if (this.#reading || this.#refreshTimer !== null || this.#stopped) return;
    const since = this.#deps.now() - this.#lastReadAt;
    if (since >= REFRESH_MIN_MS) {
      this.refresh();
    } else {
      this.#scheduleRefresh(REFRESH_MIN_MS - since);
    }
  }

  async refresh() {
    if (this.#reading || this.#stopped) return;
    this.#cancelRefresh();
    this.#reading = true;
    this.#lastReadAt = this.#deps.now();
    const result = await this.#request('GET', null);
    this.#reading = false;
    if (this.#stopped) return;
    const phase = this.#state.phase;
    let retryAfterMs = 0;
    if (result.ok) {
      this.#readFailures = 0;
      const next = AFTER_READ_OK[phase] ?? phase;
      const patch = { ...this.#raise(result.value), stale: false };
      // While a click is in flight, or when the message changes (it is said by the status
      // region), a second voice would talk over the one that matters.
      const quiet = next === 'sending' || (next !== phase && next !== 'idle');
      Object.assign(patch, this.#announce(patch.value ?? this.#state.value, quiet));
      this.#update(next === phase ? patch : { ...patch, phase: next, problem: null });
    } else {
      this.#readFailures += 1;
      retryAfterMs = result.retryAfterMs;
      this.#update(
        phase === 'sending'
          ? { stale: true }
          : { stale: true, phase: AFTER_READ_FAILED[phase], mine: null, problem: result.problem },
      );
    }
    if (!this.#visible) return;
    const delay =
      this.#readFailures === 0
        ? refreshDelay(this.#deps.random)
        : Math.max(readBackoffDelay(this.#readFailures, this.#deps.random), retryAfterMs);
    this.#scheduleRefresh(delay);
  }

  // The page's one button. Ignored while a click is in flight; while a click is unconfirmed it
  // re-sends that click (same key), so pressing again can never count a click twice.
  async increment() {
    if (this.#state.phase === 'sending' || this.#stopped) return;
    const key = this.#pendingKey ?? this.#deps.newKey();
    this.#pendingKey = key;
    // The previous click's "made it N" would read as this click's outcome: say nothing meanwhile.
    this.#update({ phase: 'sending', mine: null, problem: null });
    for (let attempt = 1; ; attempt += 1) {
      const result = await this.#request('POST', key);
      if (this.#stopped) return;
      if (result.ok) {
        this.#pendingKey = null;
        this.#heard = result.value;
        this.#heardAt = this.#deps.now();
        // The message says the click's count; an older count left in the announcer would
        // contradict it, and repeating the new one would say it twice: the announcer empties.
        this.#update({
          ...this.#raise(result.value),
          stale: false,
          phase: 'confirmed',
          mine: result.value,
          announced: null,
        });
        if (this.#readFailures > 0) {
          // The API answers again: leave read backoff now rather than at its next read.
          this.#readFailures = 0;
          if (this.#refreshTimer !== null) this.#scheduleRefresh(refreshDelay(this.#deps.random));
        }
        return;
      }
      if (!result.retryable) {
        // Refused (4xx) or not understood: certainly not to be re-sent, so the next press starts
        // a fresh click.
        this.#pendingKey = null;
        this.#update({ phase: 'refused', problem: result.problem });
        return;
      }
      if (attempt >= WRITE_ATTEMPTS || result.retryAfterMs > WRITE_RETRY_MAX_WAIT_MS) {
        this.#update({ stale: true, phase: 'failed', problem: result.problem });
        return;
      }
      if (!this.#state.stale) this.#update({ stale: true });
      await this.#sleep(Math.max(writeRetryDelay(attempt, this.#deps.random), result.retryAfterMs));
      if (this.#stopped) return;
    }
  }

  // The value to show given an answer: never lower than one already shown.
  #raise(value) {
    return this.#state.value === null || value > this.#state.value ? { value } : {};
  }

  // A count that a refresh shows, said at most every ANNOUNCE_INTERVAL_MS: a busy counter changes
  // on nearly every refresh. The first count is on the page already, so it is not said.
  #announce(value, quiet) {
    const now = this.#deps.now();
    if (this.#heard === null) {
      this.#heard = value;
      this.#heardAt = now;
      return {};
    }
    if (quiet || value === this.#heard || now - this.#heardAt < ANNOUNCE_INTERVAL_MS) return {};
    this.#heard = value;
    this.#heardAt = now;
    return { announced: value };
  }

  #update(patch) {
    this.#state = { ...this.#state, ...patch };
    this.#deps.onChange(this.#state);
  }

  #scheduleRefresh(delayMs) {
    this.#cancelRefresh();
    this.#refreshTimer = this.#deps.setTimeout(() => {
      this.#refreshTimer = null;
      this.refresh();
    }, delayMs);
  }

  #cancelRefresh() {
    if (this.#refreshTimer !== null) {
      this.#deps.clearTimeout(this.#refreshTimer);
      this.#refreshTimer = null;
    }
  }

  #sleep(ms) {
    return new Promise((resolve) => this.#deps.setTimeout(resolve, ms));
  }

  // One HTTP exchange, bounded by REQUEST_TIMEOUT_MS, reduced to what the page acts on.
  async #request(method, key) {
    const controller = new AbortController();
    const timeout = this.#deps.setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    try {
      const response = await this.#deps.fetch(API_PATH, {
        method,
        // Reads revalidate with the server (edge) every time: the browser must not answer from
        // its own cache, stale-while-revalidate included. Writes are never cached.
        cache: method === 'GET' ? 'no-cache' : 'no-store',
        headers: key === null ? {} : { 'Idempotency-Key': key },
        signal: controller.signal,
      });
      if (!response.ok) {
        const { retryable, problem } = classifyStatus(response.status);
        const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'), this.#deps.now()) ?? 0;
        return { ok: false, retryable, problem, retryAfterMs };
      }
      const text = await response.text();
      try {
        return { ok: true, value: parseCounterBody(text) };
      } catch {
        return { ok: false, retryable: false, problem: { kind: 'invalid' }, retryAfterMs: 0 };
      }
    } catch {
      // Connection refused or reset, DNS, offline, or our own timeout: the request may or may
      // not have reached the origin, which is exactly what the idempotency key is for.
      return { ok: false, retryable: true, problem: { kind: 'network' }, retryAfterMs: 0 };
    } finally {
      this.#deps.clearTimeout(timeout);
    }
  }
}
