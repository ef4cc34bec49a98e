// What the page says in each phase (src/view.js): one message, one button, the label of a stale
// number, and short wording for narrow screens.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SHORT_MAX_CHARS, viewOf } from '../src/view.js';

const format = (n) => new Intl.NumberFormat('en-US').format(n);
const base = { phase: 'idle', value: 1234n, stale: false, mine: null, problem: null, announced: null };
const view = (patch) => viewOf({ ...base, ...patch }, format);

const PROBLEMS = [{ kind: 'network' }, { kind: 'busy' }, { kind: 'unavailable' }];
// One state of each phase (every problem where the phase has one), as CounterClient makes them.
const STATES = [
  { phase: 'loading', value: null },
  { phase: 'idle' },
  { phase: 'sending' },
  { phase: 'sending', stale: true },
  { phase: 'confirmed', mine: 1234n },
  ...[...PROBLEMS, { kind: 'invalid' }].map((problem) => ({ phase: 'down', stale: true, problem })),
  { phase: 'down', value: null, stale: true, problem: { kind: 'network' } },
  ...PROBLEMS.map((problem) => ({ phase: 'failed', stale: true, problem })),
  { phase: 'unconfirmed' },
  { phase: 'refused', problem: { kind: 'refused', status: 400 } },
  { phase: 'refused', problem: { kind: 'invalid' } },
];

describe('view', () => {
  it('idle: the count, "Add one", nothing else said', () => {
    const v = view({});
    assert.equal(v.label, 'Current count');
    assert.equal(v.value, '1,234');
    assert.deepEqual(v.button, { text: 'Add one', busy: false });
    assert.deepEqual(v.message, { tone: 'none', long: '', short: '' });
    assert.equal(v.loading, false);
  });

  it('loading: a placeholder marked busy', () => {
    const v = view({ phase: 'loading', value: null });
    assert.equal(v.value, '…');
    assert.equal(v.loading, true);
    assert.equal(v.message.tone, 'none');
  });

  it('sending: one busy button, nothing said until the answer', () => {
    const v = view({ phase: 'sending' });
    assert.deepEqual(v.button, { text: 'Adding…', busy: true });
    assert.equal(v.message.tone, 'none');
  });

  it("confirmed: the click's own number", () => {
    const v = view({ phase: 'confirmed', mine: 8n, value: 9n });
    assert.equal(v.message.long, 'Your click made it 8.');
    assert.equal(v.message.tone, 'info');
    assert.equal(v.value, '9');
  });

  it('down: an error, and the number labelled as the last known', () => {
    const v = view({ phase: 'down', stale: true, problem: { kind: 'network' } });
    assert.equal(v.label, 'Last known count');
    assert.equal(v.value, '1,234');
    assert.equal(v.message.tone, 'error');
    assert.match(v.message.long, /^Can't reach the counter right now\./);
    assert.equal(v.message.short, "Can't reach the counter.");
    assert.doesNotMatch(v.message.long, /click/, 'says nothing about a click there was not');
    assert.deepEqual(v.button, { text: 'Add one', busy: false });
  });

  it('down before any value: a dash, not a number called last known', () => {
    const v = view({ phase: 'down', value: null, stale: true, problem: { kind: 'network' } });
    assert.equal(v.value, '—');
    assert.equal(v.label, 'Current count');
    assert.equal(v.loading, false);
  });

  it('failed: the error, and the one button re-sends the click', () => {
    const v = view({ phase: 'failed', stale: true, problem: { kind: 'network' } });
    assert.equal(v.message.tone, 'error');
    assert.match(v.message.long, /wasn't confirmed; sending it again won't count it twice\.$/);
    assert.deepEqual(v.button, { text: 'Send it again', busy: false });
    assert.equal(v.label, 'Last known count');
  });

  it('unconfirmed: no error, a question, and the same one button', () => {
    const v = view({ phase: 'unconfirmed' });
    assert.equal(v.message.long, "Your last click wasn't confirmed — send it again?");
    assert.equal(v.message.tone, 'notice');
    assert.deepEqual(v.button, { text: 'Send it again', busy: false });
    assert.equal(v.label, 'Current count');
  });

  it('refused: the status code; the button adds a new click', () => {
    const v = view({ phase: 'refused', problem: { kind: 'refused', status: 400 } });
    assert.equal(v.message.long, 'The counter refused that click (HTTP 400).');
    assert.equal(v.message.short, 'Click refused (HTTP 400).');
    assert.deepEqual(v.button, { text: 'Add one', busy: false });
  });

  it('a stale number is labelled as the last known in every phase', () => {
    for (const state of STATES) {
      const v = view(state);
      const stale = Boolean(state.stale) && ('value' in state ? state.value : base.value) !== null;
      assert.equal(v.label, stale ? 'Last known count' : 'Current count', state.phase);
    }
  });

  it('every message has a short form for narrow screens', () => {
    for (const state of STATES) {
      const { long, short } = view(state).message;
      assert.equal(long === '', short === '', `${state.phase}: both or neither`);
      assert.ok(short.length <= SHORT_MAX_CHARS, `${state.phase}: "${short}" is ${short.length} characters`);
      assert.ok(short.length <= long.length, `${state.phase}: short is not longer`);
      if (view(state).message.tone === 'error') assert.ok(short.length < long.length, `${state.phase}: shorter error`);
    }
  });

  it('the count announcement says the announced count, or nothing', () => {
    assert.equal(view({}).announcement, '');
    assert.equal(view({ announced: 1300n }).announcement, 'The count is now 1,300.');
  });
});
