// Binds the counter page's document to CounterClient (counter.js holds the behaviour, view.js the
// words). Loaded as a module from /assets/ (no inline script: the page runs under a strict CSP).
import { CounterClient, newIdempotencyKey } from './counter.14ee986b44e1adb9.js';
import { viewOf } from './view.4205bcd3f7d12da6.js';

const label = document.getElementById('value-label');
const value = document.getElementById('value');
const button = document.getElementById('increment');
const message = document.getElementById('message');
const messageLong = message.querySelector('.long');
const messageShort = message.querySelector('.short');
const announcer = document.getElementById('announcer');
const numberFormat = new Intl.NumberFormat();
const format = (n) => numberFormat.format(n);

// Only touch what changed: rewriting a live region with the same text would make screen readers
// say it again.
function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

function render(state) {
  const view = viewOf(state, format);
  document.body.dataset.state = view.phase;
  setText(label, view.label);
  setText(value, view.value);
  if (state.value !== null) value.dataset.value = state.value.toString();
  value.setAttribute('aria-busy', String(view.loading));
  button.setAttribute('aria-disabled', String(view.button.busy));
  setText(button, view.button.text);
  message.dataset.tone = view.message.tone;
  setText(messageLong, view.message.long);
  setText(messageShort, view.message.short);
  setText(announcer, view.announcement);
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
document.addEventListener('visibilitychange', () => client.setVisible(document.visibilityState === 'visible'));
window.addEventListener('online', () => client.refresh());

render(client.state);
client.start(document.visibilityState === 'visible');
