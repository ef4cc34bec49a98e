// Binds the counter page's document to CounterClient (counter.js holds the behaviour).
// Loaded as a module from /assets/ (no inline script: the page runs under a strict CSP).
import { CounterClient, newIdempotencyKey } from './counter.js';

const valueEl = document.getElementById('value');
const mineEl = document.getElementById('mine');
const button = document.getElementById('increment');
const errorMessage = document.getElementById('error-message');
const retryButton = document.getElementById('retry');
const numberFormat = new Intl.NumberFormat();

// Only touch what changed: rewriting an aria-live region with the same text would make screen
// readers announce it again.
function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

function render(state) {
  if (state.value === null) {
    setText(valueEl, state.error ? '—' : '…');
  } else {
    setText(valueEl, numberFormat.format(state.value));
    valueEl.dataset.value = state.value.toString();
  }
  valueEl.setAttribute('aria-busy', String(state.value === null && !state.error));

  setText(mineEl, state.mine === null ? '' : `Your click made it ${numberFormat.format(state.mine)}.`);

  // aria-disabled rather than `disabled`: a disabled button drops keyboard focus mid-click.
  button.setAttribute('aria-disabled', String(state.writing));
  setText(button, state.writing ? 'Adding…' : 'Add one');

  document.body.classList.toggle('has-error', state.error !== null);
  setText(errorMessage, state.error === null ? '' : state.error.message);
  retryButton.hidden = state.error === null;
}

const client = new CounterClient({
  fetch: (url, init) => window.fetch(url, init),
  setTimeout: (callback, ms) => window.setTimeout(callback, ms),
  clearTimeout: (id) => window.clearTimeout(id),
  now: () => Date.now(),
  random: Math.random,
  newKey: () => newIdempotencyKey(window.crypto),
  onChange: render,
});

button.addEventListener('click', () => client.increment());
retryButton.addEventListener('click', () => client.retry());
document.addEventListener('visibilitychange', () => client.setVisible(document.visibilityState === 'visible'));
window.addEventListener('online', () => client.refresh());

render(client.state);
client.start(document.visibilityState === 'visible');
