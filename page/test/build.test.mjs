// static/ is build output the origin embeds: it must be exactly what page/build.mjs makes from
// page/ now, contain nothing that a strict CSP blocks, and name every asset by its content hash.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { HASH_HEX_DIGITS, build, contentHash, render } from '../build.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const STATIC = join(ROOT, 'static');

function listFiles(dir) {
  return readdirSync(dir, { recursive: true })
    .map((name) => join(dir, name))
    .filter((path) => statSync(path).isFile())
    .map((path) => relative(dir, path))
    .sort();
}

const html = readFileSync(join(STATIC, 'index.html'), 'utf8');

describe('build', () => {
  it('static/ is up to date with page/ (run `node page/build.mjs` after editing page/)', () => {
    const out = mkdtempSync(join(tmpdir(), 'counter-page-'));
    try {
      build(out);
      assert.deepEqual(listFiles(STATIC), listFiles(out), 'same files');
      for (const path of listFiles(out)) {
        assert.ok(readFileSync(join(STATIC, path)).equals(readFileSync(join(out, path))), `static/${path} is stale`);
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('is deterministic', () => {
    const [a, b] = [render(), render()];
    assert.deepEqual([...a.keys()], [...b.keys()]);
    for (const [path, bytes] of a) assert.ok(bytes.equals(b.get(path)), path);
  });

  it('names every asset by the hash of its content', () => {
    for (const name of readdirSync(join(STATIC, 'assets'))) {
      const match = new RegExp(`^[a-z0-9-]+\\.([0-9a-f]{${HASH_HEX_DIGITS}})\\.[a-z0-9]+$`).exec(name);
      assert.ok(match, `${name} has a content hash`);
      assert.equal(match[1], contentHash(readFileSync(join(STATIC, 'assets', name))), `${name} matches its content`);
    }
  });

  it('references only assets that exist, and modules import only hashed siblings', () => {
    const referenced = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
    assert.ok(referenced.length >= 3);
    for (const url of referenced) {
      assert.match(url, /^\/assets\//, `${url} is a hashed asset`);
      assert.ok(statSync(join(STATIC, url)).isFile(), `${url} exists`);
    }
    for (const name of readdirSync(join(STATIC, 'assets')).filter((n) => n.endsWith('.js'))) {
      const source = readFileSync(join(STATIC, 'assets', name), 'utf8');
      for (const [, spec] of source.matchAll(/\bfrom\s+'([^']+)'/g)) {
        assert.match(spec, /^\.\/[a-z0-9-]+\.[0-9a-f]{16}\.js$/, `${name} imports ${spec}`);
        assert.ok(statSync(join(STATIC, 'assets', spec)).isFile(), `${spec} exists`);
      }
    }
  });
});

describe('works under the strict CSP', () => {
  it('no inline script', () => {
    for (const [, tag, body] of html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)) {
      assert.match(tag, /\bsrc="/, 'every script is external');
      assert.equal(body.trim(), '', 'and empty');
    }
  });

  it('no inline style, event handlers or javascript: URLs', () => {
    assert.doesNotMatch(html, /<style\b/i);
    assert.doesNotMatch(html, /\sstyle\s*=/i);
    assert.doesNotMatch(html, /\son[a-z]+\s*=/i);
    assert.doesNotMatch(html, /javascript:/i);
  });

  it('nothing from another origin', () => {
    for (const path of listFiles(STATIC)) {
      assert.doesNotMatch(readFileSync(join(STATIC, path), 'utf8'), /(?:src|href)="(?:https?:)?\/\//, path);
    }
  });
});

describe('accessible markup', () => {
  it('has a language, a title and a viewport', () => {
    assert.match(html, /<html lang="en">/);
    assert.match(html, /<title>[^<]+<\/title>/);
    assert.match(html, /<meta name="viewport"/);
  });

  it('the count is read with its label, and is not itself a live region', () => {
    const count = /<p class="count">([\s\S]*?)<\/p>/.exec(html)[1];
    assert.match(count, /id="value-label"[^>]*>[^<]+</, 'the label comes first and has text');
    const value = /<[a-z]+ id="value"([^>]*)>/.exec(html)[1];
    // A busy counter changes on nearly every refresh; announcing them all would drown the page.
    assert.doesNotMatch(value, /aria-live|role=/);
    assert.doesNotMatch(html, /<output\b/, '<output> is a live region (role status)');
  });

  it('buttons are real buttons with text', () => {
    for (const [, attrs, text] of html.matchAll(/<button\b([^>]*)>([^<]*)<\/button>/g)) {
      assert.match(attrs, /type="button"/);
      assert.ok(text.trim().length > 0);
    }
  });

  it("one polite status region says the click's result or the problem", () => {
    assert.match(html, /<p id="message"[^>]*role="status"[^>]*aria-atomic="true"/);
    assert.match(html, /<button id="increment"[^>]*aria-describedby="message"/, 'the button is described by it');
  });

  it('count changes have their own polite region, hidden from view', () => {
    assert.match(html, /<p id="announcer" class="visually-hidden" aria-live="polite" aria-atomic="true"><\/p>/);
  });

  it('one button', () => {
    assert.equal([...html.matchAll(/<button\b/g)].length, 1);
  });
});
