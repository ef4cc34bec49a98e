// Every function listed in cloudfront.json must publish: within the size quota, using only syntax
// and globals cloudfront-js-2.0 has. The checker itself is tested on snippets the runtime rejects,
// so a permissive checker cannot pass silently.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { MAX_FUNCTION_BYTES, loadFunctionSource, runtimeProblems } from './cloudfront-runtime.mjs';

const EDGE_DIR = join(dirname(fileURLToPath(import.meta.url)), '..');
const config = JSON.parse(readFileSync(join(EDGE_DIR, 'cloudfront.json'), 'utf8'));

describe('published functions', () => {
  for (const [name, fn] of Object.entries(config.functions)) {
    const source = readFileSync(join(EDGE_DIR, fn.source), 'utf8');

    it(`${name}: runtime is cloudfront-js-2.0`, () => {
      assert.equal(fn.runtime, 'cloudfront-js-2.0');
    });

    it(`${name}: well under the ${MAX_FUNCTION_BYTES} B quota`, () => {
      const bytes = Buffer.byteLength(source, 'utf8');
      // Half the quota: room for a fix under pressure without a rewrite.
      assert.ok(bytes <= MAX_FUNCTION_BYTES / 2, `${fn.source} is ${bytes} B`);
    });

    it(`${name}: only syntax and globals the runtime supports`, () => {
      assert.deepEqual(runtimeProblems(source), []);
    });

    it(`${name}: loads in the runtime-like context`, () => {
      const { handler } = loadFunctionSource(source, fn.source);
      assert.equal(typeof handler, 'function');
    });
  }
});

describe('the runtime checker rejects what cloudfront-js-2.0 rejects', () => {
  const wrap = (body) => `function handler(event) {\n${body}\n  return event.request;\n}\n`;
  const cases = [
    ['class', 'class A {}', 'class'],
    ['for-of', 'for (const h of []) {}', 'for-of'],
    ['destructuring declaration', 'var { request } = event;', 'destructuring'],
    ['array destructuring', 'var [a] = [1];', 'destructuring'],
    ['spread', 'var a = [...[1]];', 'spread'],
    ['object spread', 'var a = { ...event };', 'spread'],
    ['optional chaining', 'var a = event?.request;', 'optional chaining'],
    ['nullish coalescing', 'var a = event.x ?? 1;', 'nullish coalescing'],
    ['logical assignment', 'var a = 1; a ||= 2;', '||='],
    ['default parameter', 'var f = function (a = 1) { return a; };', 'default parameter'],
    ['shorthand property', 'var a = 1; var o = { a };', 'shorthand property'],
    ['method definition', 'var o = { m() {} };', 'method definition'],
    ['computed key', 'var k = "a"; var o = { [k]: 1 };', 'computed property'],
    ['generator', 'var g = function* () {};', 'generator'],
    ['async closure', 'var f = async () => 1;', 'async arrow'],
    ['tagged template', 'var t = String.raw`x`;', 'tagged template'],
    ['Map', 'var m = new Map();', 'global `Map`'],
    ['Set', 'var s = new Set();', 'global `Set`'],
    ['setTimeout', 'setTimeout(function () {}, 1);', 'global `setTimeout`'],
    ['process', 'var e = process.env;', 'global `process`'],
    ['eval', 'eval("1");', 'global `eval`'],
    ['Function constructor', 'var f = new Function("return 1");', 'Function constructor'],
    ['undocumented static method', 'var o = Object.fromEntries([]);', 'Object.fromEntries'],
    ['require of a Node module', 'var fs = require("fs");', 'require("fs")'],
    ['console.log with two arguments', 'console.log("a", "b");', 'console.log'],
    ['BigInt literal', 'var n = 1n;', 'BigInt'],
    ['regexp unicode flag', 'var r = /a/u;', 'flags'],
    ['optional catch binding', 'try { } catch { }', 'optional catch binding'],
  ];
  for (const [title, body, expected] of cases) {
    it(title, () => {
      const problems = runtimeProblems(wrap(body));
      assert.ok(
        problems.some((problem) => problem.includes(expected)),
        `expected a problem mentioning ${JSON.stringify(expected)}, got ${JSON.stringify(problems)}`,
      );
    });
  }

  it('import/export (modules are not supported)', () => {
    assert.match(runtimeProblems('export function handler(event) { return event.request; }').join(), /does not parse/);
  });

  it('a missing handler', () => {
    assert.ok(runtimeProblems('function other() {}').some((p) => p.includes('handler')));
  });

  it('a function over the size quota', () => {
    const padding = `// ${'x'.repeat(MAX_FUNCTION_BYTES)}\n`;
    assert.ok(runtimeProblems(wrap('') + padding).some((p) => p.includes('exceeds')));
  });

  it('accepts what the runtime documents', () => {
    const source = wrap(`
      const crypto = require('crypto');
      let uri = \`\${event.request.uri}\`;
      var f = (a, ...rest) => a ** 2 + rest.length;
      var o = Object.assign({}, { a: 1 }, Object.entries({}));
      for (var k in o) { uri += k; }
      var r = /^\\/(?<first>[a-z]+)/g.exec(uri);
      console.log('uri ' + uri);
      var h = crypto.createHash('sha256').update(uri).digest('hex');`);
    assert.deepEqual(runtimeProblems(source), []);
  });
});

describe('the runtime-like context exposes only what the runtime has', () => {
  const probe = (expression) =>
    loadFunctionSource(`function handler(event) { return ${expression}; }`).handler({});

  for (const name of ['process', 'setTimeout', 'setInterval', 'setImmediate', 'queueMicrotask', 'Map', 'Set',
    'Proxy', 'Reflect', 'Intl', 'fetch', 'global']) {
    it(`no ${name}`, () => {
      assert.equal(probe(`typeof ${name}`), 'undefined');
    });
  }

  it('require allows only the runtime modules', () => {
    assert.equal(probe("typeof require('crypto').createHash"), 'function');
    assert.throws(() => probe("require('fs')"), /not available/);
    assert.throws(() => probe("require('child_process')"), /not available/);
  });

  it('no dynamic code evaluation', () => {
    // Errors come from the context's realm: compare names, not prototypes.
    assert.throws(() => probe("Function('return 1')()"), { name: 'EvalError' });
  });

  it('strict mode, as in the runtime', () => {
    assert.throws(() => probe('(undeclared = 1)'), { name: 'ReferenceError' });
  });
});
