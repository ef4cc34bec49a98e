// CloudFront viewer-request function (runtime cloudfront-js-2.0), attached to every behaviour.
//
// It runs before the cache lookup, so it decides what can reach the cache key and the origin:
//   - only the paths the origin serves get through; private ones (/metrics, /healthz, /readyz)
//     and anything unknown are answered 404 here, without an origin round trip;
//   - each served path has a fixed set of methods; others get 405 with `Allow`, and OPTIONS is
//     answered here (same origin, no CORS), so the origin only ever sees GET, HEAD and POST;
//   - query strings and cookies are dropped (nothing the origin serves uses them), so
//     `?cachebust=…` cannot split the read path's cache or reach the origin;
//   - `/` becomes `/index.html`, so both share one cache entry.
//
// Runtime constraints shape the code (the edge tests enforce them): ES 5.1 plus const/let, arrow
// functions and template literals; no Map/Set, for-of, destructuring, spread or classes; no
// timers; 10 KB at most. Read-only headers (host, via, content-length, transfer-encoding) are
// never touched: changing one fails the request.

var READ_WRITE = 'GET, HEAD, POST, OPTIONS';
var READ_ONLY = 'GET, HEAD, OPTIONS';

// Exact paths outside /assets/ and the methods each one accepts.
var ROUTES = {
  '/api/counter': READ_WRITE,
  '/index.html': READ_ONLY,
};

// Content-hashed assets as page/build.mjs names them: `<name>.<16 hex>.<ext>`. A shape check
// rather than a list, so a release of the page needs no new function.
var ASSET = /^\/assets\/[a-z0-9][a-z0-9-]*\.[0-9a-f]{16}\.(css|js|mjs|svg|png|ico|json|txt|webmanifest|woff2)$/;

// Headers a viewer must never get to the origin. `x-origin-verify` is the secret CloudFront adds
// as an origin custom header for the ALB; a viewer copy is dropped so it cannot be probed.
var STRIPPED_HEADERS = ['x-origin-verify'];

// Only a write may carry an idempotency key; on a read it would be a stray header.
var WRITE_ONLY_HEADERS = ['idempotency-key'];

// An answer made at the edge: never cached, and JSON like the origin's own errors.
function respond(statusCode, statusDescription, allow, message) {
  var headers = {
    'cache-control': { value: 'no-store' },
    'x-content-type-options': { value: 'nosniff' },
  };
  if (allow) {
    headers.allow = { value: allow };
  }
  var response = { statusCode: statusCode, statusDescription: statusDescription, headers: headers };
  if (message) {
    headers['content-type'] = { value: 'application/json' };
    response.body = { encoding: 'text', data: JSON.stringify({ error: message }) };
  }
  return response;
}

function allowedMethods(uri) {
  if (Object.prototype.hasOwnProperty.call(ROUTES, uri)) {
    return ROUTES[uri];
  }
  if (ASSET.test(uri)) {
    return READ_ONLY;
  }
  return null;
}

function handler(event) {
  var request = event.request;
  var uri = request.uri === '/' ? '/index.html' : request.uri;

  var allow = allowedMethods(uri);
  if (allow === null) {
    return respond(404, 'Not Found', null, 'not found');
  }
  var method = request.method;
  if (method === 'OPTIONS') {
    return respond(204, 'No Content', allow, null);
  }
  if (allow.split(', ').indexOf(method) === -1) {
    return respond(405, 'Method Not Allowed', allow, 'method not allowed');
  }

  request.uri = uri;
  request.querystring = {};
  request.cookies = {};
  var i;
  for (i = 0; i < STRIPPED_HEADERS.length; i++) {
    delete request.headers[STRIPPED_HEADERS[i]];
  }
  if (method !== 'POST') {
    for (i = 0; i < WRITE_ONLY_HEADERS.length; i++) {
      delete request.headers[WRITE_ONLY_HEADERS[i]];
    }
  }
  return request;
}
