#!/usr/bin/env node
// Builds the page the origin embeds: `static/index.html` plus content-hashed assets in
// `static/assets/`, from the sources in page/. A hashed name changes whenever the content does,
// so the edge and browsers may cache assets for a year as immutable; only index.html is short-lived.
//
//   node page/build.mjs [OUT_DIR]     (default: static/ at the repository root)
//
// Deterministic (same sources → same bytes), so a test can rebuild into a temporary directory
// and fail when the committed static/ is stale.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const PAGE_DIR = dirname(fileURLToPath(import.meta.url));
const SOURCES = join(PAGE_DIR, 'src');
export const DEFAULT_OUT_DIR = resolve(PAGE_DIR, '..', 'static');
// 16 hex digits (64 bits) of SHA-256: the viewer-request function accepts exactly this shape.
export const HASH_HEX_DIGITS = 16;

export function contentHash(bytes) {
  return createHash('sha256').update(bytes).digest('hex').slice(0, HASH_HEX_DIGITS);
}

function hashedName(fileName, bytes) {
  const dot = fileName.lastIndexOf('.');
  return `${fileName.slice(0, dot)}.${contentHash(bytes)}${fileName.slice(dot)}`;
}

function replaceOnce(text, needle, replacement, where) {
  const parts = text.split(needle);
  if (parts.length !== 2) {
    throw new Error(`${where}: expected exactly one ${JSON.stringify(needle)}, found ${parts.length - 1}`);
  }
  return parts.join(replacement);
}

// Returns the output as a map of path relative to the output directory → content (Buffer).
export function render() {
  const read = (name) => readFileSync(join(SOURCES, name));
  const assets = new Map();
  const url = (name) => `/assets/${name}`;

  // Leaves first: app.js imports the modules, so their hashed names go into app's content (and
  // therefore into app's hash).
  const modules = ['counter.js', 'view.js'];
  const names = {};
  for (const leaf of [...modules, 'style.css', 'icon.svg']) {
    const bytes = read(leaf);
    names[leaf] = hashedName(leaf, bytes);
    assets.set(names[leaf], bytes);
  }
  let appSource = read('app.js').toString('utf8');
  for (const module of modules) {
    appSource = replaceOnce(appSource, `from './${module}'`, `from './${names[module]}'`, 'src/app.js');
  }
  const app = Buffer.from(appSource, 'utf8');
  names['app.js'] = hashedName('app.js', app);
  assets.set(names['app.js'], app);

  let html = readFileSync(join(PAGE_DIR, 'index.template.html'), 'utf8');
  for (const [source, hashed] of Object.entries(names)) {
    html = replaceOnce(html, `{{${source}}}`, url(hashed), 'index.template.html');
  }
  const leftover = /\{\{[^}]*\}\}/.exec(html);
  if (leftover) throw new Error(`index.template.html: unknown placeholder ${leftover[0]}`);

  const files = new Map([['index.html', Buffer.from(html, 'utf8')]]);
  for (const [name, bytes] of assets) files.set(`assets/${name}`, bytes);
  return files;
}

// Writes the output into outDir, removing assets of earlier builds: the origin embeds every file
// under static/, so nothing stale may stay behind.
export function build(outDir = DEFAULT_OUT_DIR) {
  const files = render();
  const assetsDir = join(outDir, 'assets');
  mkdirSync(assetsDir, { recursive: true });
  for (const name of readdirSync(assetsDir)) {
    if (!files.has(`assets/${name}`)) rmSync(join(assetsDir, name), { recursive: true });
  }
  for (const [path, bytes] of files) writeFileSync(join(outDir, path), bytes);
  return files;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const outDir = resolve(process.argv[2] ?? DEFAULT_OUT_DIR);
  const files = build(outDir);
  for (const path of files.keys()) console.log(join(outDir, path));
}
