// The viewer-request function, table-driven: every path (served, private, unknown, look-alike)
// × every method CloudFront lets through. The expectations are written out here, independently
// of the function's own tables, and the served assets are read from static/ so a page release the
// function would not let through fails here rather than in production.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadFunction } from './cloudfront-runtime.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { handler } = loadFunction(join(ROOT, 'edge', 'functions', 'viewer-request.js'));

// The handler edits the event in place, so it gets a copy and the original stays the reference.
// Results are objects of the vm context's realm; compare them as plain data.
const run = (event) => JSON.parse(JSON.stringify(handler(structuredClone(event))));

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];
const PAGE = ['GET', 'HEAD'];
const API = ['GET', 'HEAD', 'POST'];

const SERVED = new Map([
  ['/', { forwardAs: '/index.html', methods: PAGE }],
  ['/index.html', { forwardAs: '/index.html', methods: PAGE }],
  ['/api/counter', { forwardAs: '/api/counter', methods: API }],
  // The next release's asset: the function checks the shape, not a list.
  ['/assets/app.0123456789abcdef.js', { forwardAs: '/assets/app.0123456789abcdef.js', methods: PAGE }],
]);
for (const name of readdirSync(join(ROOT, 'static', 'assets'))) {
  SERVED.set(`/assets/${name}`, { forwardAs: `/assets/${name}`, methods: PAGE });
}

const NOT_SERVED = [
  '/metrics', '/healthz', '/readyz', // private: the origin's probes and metrics
  '/api', '/api/', '/api/counter/', '/api/counter/1', '/api/counters', '/API/counter',
  '/api/counter%2F', '/%61pi/counter', '//api/counter', '/api//counter',
  '/index.htm', '/index.html/', '/index.html.bak', '//', '/favicon.ico', '/robots.txt', '/.env',
  '/.git/config', '/static/index.html', '/assets/', '/assets/app.js',
  '/assets/app.0123456789abcde.js', // 15 hex digits
  '/assets/app.0123456789ABCDEF.js', // upper case
  '/assets/app.0123456789abcdef.exe', '/assets/app.0123456789abcdef.js.map',
  '/assets/../metrics', '/assets/sub/app.0123456789abcdef.js', '/assets/.0123456789abcdef.js',
];

function viewerEvent(method, uri) {
  const headers = {
    host: { value: 'd111111abcdef8.cloudfront.net' },
    'user-agent': { value: 'test' },
    'accept-encoding': { value: 'br, gzip' },
    via: { value: '2.0 example' },
    'idempotency-key': { value: '3f0e2a55-3c41-4bbd-9d1e-2f9b0a8c7d61' },
    'x-origin-verify': { value: 'guess' },
  };
  if (method === 'POST') headers['content-length'] = { value: '0' };
  return {
    version: '1.0',
    context: { eventType: 'viewer-request', distributionId: 'EDFDVBD6EXAMPLE', requestId: 'r1' },
    viewer: { ip: '198.51.100.7' },
    request: {
      method,
      uri,
      querystring: { cachebust: { value: '1' }, a: { value: '1', multiValue: [{ value: '1' }, { value: '2' }] } },
      headers,
      cookies: { session: { value: 'abc' } },
    },
  };
}

function assertResponseShape(response) {
  assert.equal(typeof response.statusCode, 'number');
  assert.equal(typeof response.statusDescription, 'string');
  for (const [name, header] of Object.entries(response.headers)) {
    assert.equal(name, name.toLowerCase(), 'header names are lower case');
    assert.equal(typeof header.value, 'string', `${name} has a string value`);
  }
  assert.equal(response.headers['cache-control'].value, 'no-store', 'edge answers are never cached');
  assert.equal(response.headers['x-content-type-options'].value, 'nosniff');
}

const allowSet = (response) => response.headers.allow.value.split(', ').sort();

describe('served paths × methods', () => {
  for (const [uri, { forwardAs, methods }] of SERVED) {
    for (const method of METHODS) {
      const event = viewerEvent(method, uri);
      if (method === 'OPTIONS') {
        it(`${method} ${uri} → 204 at the edge with Allow`, () => {
          const response = run(event);
          assertResponseShape(response);
          assert.equal(response.statusCode, 204);
          assert.deepEqual(allowSet(response), [...methods, 'OPTIONS'].sort());
          assert.equal(response.body, undefined);
        });
      } else if (methods.includes(method)) {
        it(`${method} ${uri} → forwarded as ${forwardAs}, normalised`, () => {
          const request = run(event);
          assert.equal(request.statusCode, undefined, 'a request, not a response');
          assert.equal(request.method, method);
          assert.equal(request.uri, forwardAs);
          assert.deepEqual(request.querystring, {}, 'query string dropped');
          assert.deepEqual(request.cookies, {}, 'cookies dropped');
          assert.equal(request.headers['x-origin-verify'], undefined, 'viewer cannot send the origin secret');
          // Read-only headers must come back untouched, or CloudFront fails the request.
          assert.deepEqual(request.headers.host, event.request.headers.host);
          assert.deepEqual(request.headers.via, event.request.headers.via);
          assert.deepEqual(request.headers['content-length'], event.request.headers['content-length']);
          assert.deepEqual(request.headers['accept-encoding'], event.request.headers['accept-encoding']);
          if (method === 'POST') {
            assert.deepEqual(request.headers['idempotency-key'], event.request.headers['idempotency-key']);
          } else {
            assert.equal(request.headers['idempotency-key'], undefined, 'no idempotency key on reads');
          }
        });
      } else {
        it(`${method} ${uri} → 405 with Allow`, () => {
          const response = run(event);
          assertResponseShape(response);
          assert.equal(response.statusCode, 405);
          assert.deepEqual(allowSet(response), [...methods, 'OPTIONS'].sort());
          assert.equal(response.headers['content-type'].value, 'application/json');
          assert.deepEqual(JSON.parse(response.body.data), { error: 'method not allowed' });
        });
      }
    }
  }
});

describe('private and unknown paths × methods → 404 at the edge', () => {
  for (const uri of NOT_SERVED) {
    for (const method of METHODS) {
      it(`${method} ${uri}`, () => {
        const response = run(viewerEvent(method, uri));
        assertResponseShape(response);
        assert.equal(response.statusCode, 404);
        assert.equal(response.headers.allow, undefined);
        assert.equal(response.body.encoding, 'text');
        assert.deepEqual(JSON.parse(response.body.data), { error: 'not found' });
      });
    }
  }
});

describe('static/ and the function agree', () => {
  it('static/ holds index.html and assets only, all of them served', () => {
    const top = readdirSync(join(ROOT, 'static')).sort();
    assert.deepEqual(top, ['assets', 'index.html']);
    const html = readFileSync(join(ROOT, 'static', 'index.html'), 'utf8');
    for (const [, path] of html.matchAll(/(?:src|href)="(\/[^"]*)"/g)) {
      assert.ok(SERVED.has(path), `${path} referenced by index.html is served`);
      assert.equal(run(viewerEvent('GET', path)).uri, path);
    }
  });
});
