// cloudfront.json is what Terraform turns into cache policies and behaviours: these tests hold it
// to the edge design (docs/design.md §3, §6) and to the function and the page it serves.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadFunction } from './cloudfront-runtime.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const config = JSON.parse(readFileSync(join(ROOT, 'edge', 'cloudfront.json'), 'utf8'));
const { handler } = loadFunction(join(ROOT, 'edge', 'functions', 'viewer-request.js'));

const YEAR = 365 * 24 * 3600;
// Decided with the origin (docs: cross-part decisions); the origin sends the same value.
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
  "manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
// The method sets CloudFront accepts for allowed_methods / cached_methods.
const ALLOWED_METHOD_SETS = [
  ['GET', 'HEAD'],
  ['GET', 'HEAD', 'OPTIONS'],
  ['GET', 'HEAD', 'OPTIONS', 'PUT', 'POST', 'PATCH', 'DELETE'],
].map((set) => [...set].sort().join());
const CACHED_METHOD_SETS = [['GET', 'HEAD'], ['GET', 'HEAD', 'OPTIONS']].map((set) => [...set].sort().join());

const behaviours = [{ path_pattern: '*', ...config.default_behavior }, ...config.ordered_behaviors];

// CloudFront path patterns: `*` any run of characters (slashes included), `?` one character,
// case-sensitive; the first matching ordered behaviour wins, else the default.
function globToRegExp(pattern) {
  const escaped = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${escaped}$`);
}
function behaviourFor(path) {
  return config.ordered_behaviors.find((b) => globToRegExp(b.path_pattern).test(path)) ?? config.default_behavior;
}
// What the function forwards for a viewer path (its uri after normalisation), or its status.
function edgeOutcome(method, uri) {
  const result = handler({ request: { method, uri, querystring: {}, headers: {}, cookies: {} } });
  return result.statusCode === undefined ? { forwarded: result.uri } : { status: result.statusCode };
}

describe('cache policies', () => {
  const policies = config.cache_policies;

  it('every policy keys on the path alone and compresses', () => {
    for (const [name, policy] of Object.entries(policies)) {
      assert.equal(policy.cookies, 'none', `${name}: cookies`);
      assert.deepEqual(policy.headers, [], `${name}: headers`);
      assert.equal(policy.query_strings, 'none', `${name}: query strings`);
      assert.equal(policy.gzip, true, `${name}: gzip`);
      assert.equal(policy.brotli, true, `${name}: brotli`);
      assert.ok(policy.min_ttl <= policy.default_ttl && policy.default_ttl <= policy.max_ttl, `${name}: TTL order`);
    }
  });

  it('the read path is cached about a second and honours the origin (min TTL 0)', () => {
    const read = policies['api-read'];
    assert.equal(read.min_ttl, 0, 'min 0: the origin decides (s-maxage), and no-store is obeyed');
    assert.equal(read.default_ttl, 1);
    assert.ok(read.max_ttl >= 1 && read.max_ttl <= 2, 'staleness at the edge is bounded by ~2 s');
  });

  it('hashed assets are cached for a year, without pinning errors for a year', () => {
    const assets = policies['static-immutable'];
    assert.equal(assets.default_ttl, YEAR);
    assert.equal(assets.max_ttl, YEAR);
    assert.equal(assets.min_ttl, 0, 'a min TTL would cache a mid-rollout 404 for as long');
  });

  it('the page is cached briefly', () => {
    const page = policies.page;
    assert.equal(page.min_ttl, 0);
    assert.ok(page.default_ttl > 0 && page.default_ttl <= 60);
    assert.ok(page.max_ttl <= 300);
  });
});

describe('behaviours', () => {
  it('reference existing policies and functions, with valid method sets', () => {
    for (const b of behaviours) {
      assert.ok(config.cache_policies[b.cache_policy], `${b.path_pattern}: cache policy ${b.cache_policy}`);
      if (b.origin_request_policy !== undefined) {
        assert.ok(config.origin_request_policies[b.origin_request_policy], `${b.path_pattern}: origin request policy`);
      }
      assert.ok(ALLOWED_METHOD_SETS.includes([...b.allowed_methods].sort().join()), `${b.path_pattern}: allowed_methods`);
      assert.ok(CACHED_METHOD_SETS.includes([...b.cached_methods].sort().join()), `${b.path_pattern}: cached_methods`);
      for (const fn of b.functions) assert.ok(config.functions[fn], `${b.path_pattern}: function ${fn}`);
    }
  });

  it('writes are never cached: only GET and HEAD are cached methods', () => {
    for (const b of behaviours) assert.deepEqual([...b.cached_methods].sort(), ['GET', 'HEAD'], b.path_pattern);
  });

  it('every behaviour runs the viewer-request function (the allow-list sees every request)', () => {
    for (const b of behaviours) assert.ok(b.functions.includes('viewer-request'), b.path_pattern);
  });

  it('every method reaches the function, so it (not CloudFront) answers 405 with Allow', () => {
    for (const b of behaviours) assert.equal(b.allowed_methods.length, 7, b.path_pattern);
  });

  it('each served path lands on the behaviour and cache policy meant for it', () => {
    const expected = [
      ['GET', '/', 'page'],
      ['GET', '/index.html', 'page'],
      ['GET', '/api/counter', 'api-read'],
      ['POST', '/api/counter', 'api-read'],
      ...readdirSync(join(ROOT, 'static', 'assets')).map((name) => ['GET', `/assets/${name}`, 'static-immutable']),
    ];
    for (const [method, path, policy] of expected) {
      const outcome = edgeOutcome(method, path);
      assert.ok(outcome.forwarded, `${method} ${path} is forwarded by the function`);
      // Behaviours match the viewer's path: the function's rewrite of / happens after selection.
      assert.equal(behaviourFor(path).cache_policy, policy, `${path} → ${policy}`);
      assert.equal(behaviourFor(outcome.forwarded).cache_policy, policy, `${outcome.forwarded} → ${policy}`);
    }
  });

  it('the write path forwards Idempotency-Key to the origin, and nothing else', () => {
    const api = behaviourFor('/api/counter');
    assert.ok(api.allowed_methods.includes('POST'));
    const policy = config.origin_request_policies[api.origin_request_policy];
    assert.ok(policy, '/api/* has an origin request policy');
    assert.deepEqual(policy.headers.map((h) => h.toLowerCase()), ['idempotency-key']);
    assert.equal(policy.cookies, 'none');
    assert.equal(policy.query_strings, 'none');
  });

  it('function sources exist and are viewer-request functions on cloudfront-js-2.0', () => {
    for (const [name, fn] of Object.entries(config.functions)) {
      assert.ok(existsSync(join(ROOT, 'edge', fn.source)), `${name}: ${fn.source}`);
      assert.equal(fn.runtime, 'cloudfront-js-2.0');
      assert.equal(fn.event_type, 'viewer-request');
    }
  });
});

describe('response headers policy (security headers)', () => {
  const security = config.response_headers_policy.security_headers;

  it('CSP is exactly the decided policy', () => {
    assert.equal(security.content_security_policy.content_security_policy, CSP);
  });

  it('HSTS for at least a year, subdomains included', () => {
    const hsts = security.strict_transport_security;
    assert.ok(hsts.access_control_max_age_sec >= YEAR);
    assert.equal(hsts.include_subdomains, true);
  });

  it('nosniff, no referrer, frames denied', () => {
    assert.equal(security.frame_options.frame_option, 'DENY');
    assert.equal(security.referrer_policy.referrer_policy, 'no-referrer');
    assert.ok(security.content_type_options);
  });

  it('the edge overrides whatever the origin sends', () => {
    for (const [name, header] of Object.entries(security)) assert.equal(header.override, true, name);
  });
});
