// What the page says in each phase of CounterClient's state (counter.js): the label over the
// number, the number, the one button, one message and the count announced to screen readers.
// Pure, so Node tests every phase (page/test/view.test.mjs); app.js writes it into the document.
//
// Every message comes in a long form and a short one for narrow screens (≤ SHORT_MAX_CHARS, two
// lines at 320 px); style.css shows one of them, so only that one is read out.

export const SHORT_MAX_CHARS = 45;

const PROBLEMS = {
  network: { long: "Can't reach the counter right now.", short: "Can't reach the counter." },
  busy: { long: 'The counter is busy right now.', short: 'Counter busy.' },
  unavailable: { long: 'The counter is not answering right now.', short: 'Counter not answering.' },
  invalid: {
    long: 'The counter sent an answer this page does not understand.',
    short: 'Unexpected answer from the counter.',
  },
};

const ADD = { text: 'Add one', busy: false };
const BUTTONS = {
  // aria-disabled, not `disabled`: a disabled button drops keyboard focus mid-click.
  sending: { text: 'Adding…', busy: true },
  // The unconfirmed click is re-sent with its own key: the button says so rather than offering a
  // second one beside "Add one".
  failed: { text: 'Send it again', busy: false },
  unconfirmed: { text: 'Send it again', busy: false },
};

const NONE = { tone: 'none', long: '', short: '' };

function message({ phase, mine, problem }, format) {
  switch (phase) {
    case 'confirmed': {
      const text = `Your click made it ${format(mine)}.`;
      return { tone: 'info', long: text, short: text };
    }
    case 'down': {
      const said = PROBLEMS[problem.kind];
      return { tone: 'error', long: `${said.long} The page keeps trying.`, short: said.short };
    }
    case 'failed': {
      const said = PROBLEMS[problem.kind];
      return {
        tone: 'error',
        long: `${said.long} Your click wasn't confirmed; sending it again won't count it twice.`,
        short: `${said.short} Click not confirmed.`,
      };
    }
    case 'unconfirmed':
      return {
        tone: 'notice',
        long: "Your last click wasn't confirmed — send it again?",
        short: "Click not confirmed — send it again?",
      };
    case 'refused':
      if (problem.kind === 'refused') {
        return {
          tone: 'error',
          long: `The counter refused that click (HTTP ${problem.status}).`,
          short: `Click refused (HTTP ${problem.status}).`,
        };
      }
      return { tone: 'error', ...PROBLEMS[problem.kind] };
    default:
      return NONE;
  }
}

// state → { phase, label, value, loading, button: {text, busy}, message: {tone, long, short},
// announcement }. `format` turns a BigInt into the digits shown (Intl.NumberFormat#format).
export function viewOf(state, format) {
  const { phase, value, stale, announced } = state;
  return {
    phase,
    label: stale && value !== null ? 'Last known count' : 'Current count',
    value: value === null ? (stale ? '—' : '…') : format(value),
    loading: value === null && !stale,
    button: BUTTONS[phase] ?? ADD,
    message: message(state, format),
    announcement: announced === null ? '' : `The count is now ${format(announced)}.`,
  };
}
