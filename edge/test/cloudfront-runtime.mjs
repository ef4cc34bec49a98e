// A stand-in for the CloudFront Functions JavaScript runtime 2.0, for tests. No package emulates
// it, so this does the two things that matter:
//   - loadFunction: runs the source in an empty node:vm context holding only the globals the
//     runtime documents (no process, no timers, no Map/Set/Proxy/Reflect/Intl, `require` only for
//     the runtime's own modules), in strict mode as the runtime does;
//   - runtimeProblems: parses the source and lists every construct the runtime does not
//     support (it rejects the whole function at publish time otherwise), plus the size limit.
// Source of truth: AWS's "JavaScript runtime 2.0 features for CloudFront Functions".
import { createHash, createHmac } from 'node:crypto';
import querystring from 'node:querystring';
import { readFileSync } from 'node:fs';
import vm from 'node:vm';
import { parse } from 'acorn';
import { ancestor } from 'acorn-walk';

// CloudFront Functions quota: maximum function size.
export const MAX_FUNCTION_BYTES = 10 * 1024;

// Globals the runtime documents (core objects, error types, global functions and constants).
export const RUNTIME_GLOBALS = new Set([
  'Object', 'String', 'Number', 'Boolean', 'Math', 'Date', 'Function', 'RegExp', 'JSON', 'Array',
  'Float32Array', 'Float64Array', 'Int8Array', 'Int16Array', 'Int32Array', 'Uint8Array',
  'Uint8ClampedArray', 'Uint16Array', 'Uint32Array', 'ArrayBuffer', 'DataView', 'Promise', 'Symbol',
  'TextDecoder', 'TextEncoder', 'console', 'Error', 'EvalError', 'InternalError', 'RangeError',
  'ReferenceError', 'SyntaxError', 'TypeError', 'URIError', 'globalThis', 'decodeURI',
  'decodeURIComponent', 'encodeURI', 'encodeURIComponent', 'isFinite', 'isNaN', 'parseFloat',
  'parseInt', 'atob', 'btoa', 'NaN', 'Infinity', 'undefined', 'arguments', 'Buffer', 'require',
]);

// Modules `require` may load in the runtime.
export const RUNTIME_MODULES = new Set(['crypto', 'querystring', 'cloudfront']);

// Static methods the runtime documents on the built-ins most likely to be reached for.
const STATIC_METHODS = {
  Object: ['create', 'defineProperties', 'defineProperty', 'freeze', 'getOwnPropertyDescriptor',
    'getOwnPropertyDescriptors', 'getOwnPropertyNames', 'getPrototypeOf', 'isExtensible',
    'isFrozen', 'isSealed', 'keys', 'preventExtensions', 'seal', 'assign', 'entries', 'values',
    'prototype', 'is', 'setPrototypeOf'],
  String: ['fromCharCode', 'fromCodePoint', 'prototype'],
  Array: ['isArray', 'of', 'prototype'],
  Number: ['EPSILON', 'MAX_SAFE_INTEGER', 'MIN_SAFE_INTEGER', 'MAX_VALUE', 'MIN_VALUE', 'NaN',
    'NEGATIVE_INFINITY', 'POSITIVE_INFINITY', 'isFinite', 'isInteger', 'isNaN', 'isSafeInteger',
    'parseInt', 'parseFloat', 'prototype'],
  JSON: ['parse', 'stringify'],
  Promise: ['all', 'allSettled', 'any', 'reject', 'resolve', 'race', 'prototype'],
};

// ES 5.1 assignment operators plus ES 7 `**=`; the ES 2021 logical assignments are not listed.
const ASSIGNMENT_OPERATORS = new Set(['=', '+=', '-=', '*=', '/=', '%=', '<<=', '>>=', '>>>=',
  '&=', '^=', '|=', '**=']);

// Intrinsics a fresh vm context has but the runtime does not.
const NOT_IN_RUNTIME = ['Map', 'Set', 'WeakMap', 'WeakSet', 'WeakRef', 'FinalizationRegistry',
  'Proxy', 'Reflect', 'Intl', 'BigInt', 'BigInt64Array', 'BigUint64Array', 'SharedArrayBuffer',
  'Atomics', 'WebAssembly', 'eval', 'escape', 'unescape', 'AggregateError'];

function runtimeRequire(name) {
  if (name === 'crypto') return Object.freeze({ createHash, createHmac });
  if (name === 'querystring') return querystring;
  throw new Error(`require('${name}') is not available in cloudfront-js-2.0`);
}

// Loads a function file into a fresh runtime-like context and returns its `handler`.
export function loadFunction(path) {
  return loadFunctionSource(readFileSync(path, 'utf8'), path);
}

export function loadFunctionSource(source, filename = 'function.js') {
  const logs = [];
  const context = vm.createContext(
    {
      console: Object.freeze({
        log: (...args) => {
          if (args.length !== 1) throw new Error('console.log takes one argument in CloudFront Functions');
          logs.push(String(args[0]));
        },
      }),
      require: runtimeRequire,
    },
    { codeGeneration: { strings: false, wasm: false } },
  );
  vm.runInContext(`for (const name of ${JSON.stringify(NOT_IN_RUNTIME)}) delete globalThis[name];`, context);
  vm.runInContext(`'use strict';\n${source}\n;globalThis.__handler = handler;`, context, { filename });
  const handler = context.__handler;
  if (typeof handler !== 'function') throw new Error(`${filename} does not define function handler(event)`);
  return { handler, logs, context };
}

// Every reason the runtime would reject `source`, as human-readable strings (empty when fine).
export function runtimeProblems(source) {
  const problems = [];
  const bytes = Buffer.byteLength(source, 'utf8');
  if (bytes > MAX_FUNCTION_BYTES) problems.push(`size ${bytes} B exceeds ${MAX_FUNCTION_BYTES} B`);

  let ast;
  try {
    // `script`, not `module`: the runtime has no import/export.
    ast = parse(source, { ecmaVersion: 2022, sourceType: 'script', locations: true });
  } catch (error) {
    return [...problems, `does not parse as a script: ${error.message}`];
  }
  const at = (node) => `line ${node.loc.start.line}`;
  const reject = (node, what) => problems.push(`${at(node)}: ${what} is not supported by cloudfront-js-2.0`);

  const declared = new Set();
  const references = [];

  if (!ast.body.some((node) => node.type === 'FunctionDeclaration' && node.id.name === 'handler')) {
    problems.push('no top-level `function handler(event)`');
  }

  const checkParams = (fn) => {
    fn.params.forEach((param, index) => {
      const isLastRest = param.type === 'RestElement' && index === fn.params.length - 1
        && param.argument.type === 'Identifier';
      if (param.type !== 'Identifier' && !isLastRest) reject(param, `parameter pattern ${param.type}`);
      if (param.type === 'Identifier') declared.add(param.name);
      if (isLastRest) declared.add(param.argument.name);
    });
    if (fn.generator) reject(fn, 'a generator function');
  };

  ancestor(ast, {
    FunctionDeclaration(node) {
      declared.add(node.id.name);
      checkParams(node);
    },
    FunctionExpression(node) {
      if (node.async) reject(node, 'an async function expression (async closure)');
      if (node.id) declared.add(node.id.name);
      checkParams(node);
    },
    ArrowFunctionExpression(node) {
      if (node.async) reject(node, 'an async arrow function (async closure)');
      checkParams(node);
    },
    VariableDeclarator(node) {
      if (node.id.type !== 'Identifier') reject(node, `destructuring (${node.id.type})`);
      else declared.add(node.id.name);
    },
    CatchClause(node) {
      if (node.param === null) reject(node, 'optional catch binding');
      else if (node.param.type !== 'Identifier') reject(node, 'a destructured catch parameter');
      else declared.add(node.param.name);
    },
    ClassDeclaration: (node) => reject(node, 'class'),
    ClassExpression: (node) => reject(node, 'class'),
    ForOfStatement: (node) => reject(node, 'for-of'),
    SpreadElement: (node) => reject(node, 'spread syntax'),
    ChainExpression: (node) => reject(node, 'optional chaining (?.)'),
    TaggedTemplateExpression: (node) => reject(node, 'a tagged template'),
    YieldExpression: (node) => reject(node, 'yield'),
    ImportExpression: (node) => reject(node, 'dynamic import()'),
    MetaProperty: (node) => reject(node, `${node.meta.name}.${node.property.name}`),
    PropertyDefinition: (node) => reject(node, 'a class field'),
    AssignmentPattern: (node) => reject(node, 'a default parameter value'),
    ObjectPattern: (node) => reject(node, 'destructuring'),
    ArrayPattern: (node) => reject(node, 'destructuring'),
    Property(node, ancestors) {
      const parent = ancestors[ancestors.length - 2];
      if (parent.type !== 'ObjectExpression') return;
      if (node.shorthand) reject(node, 'a shorthand property');
      if (node.method) reject(node, 'a method definition');
      if (node.computed) reject(node, 'a computed property name');
    },
    ArrayExpression(node) {
      if (node.elements.some((element) => element === null)) reject(node, 'an array hole');
    },
    LogicalExpression(node) {
      if (node.operator === '??') reject(node, 'nullish coalescing (??)');
    },
    AssignmentExpression(node) {
      if (!ASSIGNMENT_OPERATORS.has(node.operator)) reject(node, `the ${node.operator} operator`);
      if (node.left.type !== 'Identifier' && node.left.type !== 'MemberExpression') {
        reject(node, 'destructuring assignment');
      }
    },
    AwaitExpression(node, ancestors) {
      const inAsync = ancestors.some(
        (a) => (a.type === 'FunctionDeclaration' || a.type === 'FunctionExpression') && a.async,
      );
      if (!inAsync) reject(node, 'await outside an async function');
    },
    Literal(node) {
      if (typeof node.value === 'bigint' || node.bigint !== undefined) reject(node, 'a BigInt literal');
      if (node.regex && /[^gimsy]/.test(node.regex.flags)) reject(node, `regular expression flags /${node.regex.flags}`);
    },
    Identifier(node, ancestors) {
      references.push({ node, parent: ancestors[ancestors.length - 2] });
    },
    MemberExpression(node) {
      if (node.object.type !== 'Identifier' || node.computed) return;
      const allowed = STATIC_METHODS[node.object.name];
      if (allowed && !allowed.includes(node.property.name)) {
        reject(node, `${node.object.name}.${node.property.name}`);
      }
    },
    CallExpression(node) {
      const callee = node.callee;
      if (callee.type === 'Identifier' && callee.name === 'require') {
        const [name] = node.arguments;
        if (node.arguments.length !== 1 || name.type !== 'Literal' || !RUNTIME_MODULES.has(name.value)) {
          reject(node, `require(${name ? (name.raw ?? name.type) : ''}) (modules: ${[...RUNTIME_MODULES].join(', ')})`);
        }
      }
      if (callee.type === 'MemberExpression' && callee.object.type === 'Identifier'
        && callee.object.name === 'console' && node.arguments.length !== 1) {
        reject(node, 'console.log with more than one argument');
      }
    },
    NewExpression(node) {
      if (node.callee.type === 'Identifier' && node.callee.name === 'Function') {
        reject(node, 'the Function constructor');
      }
    },
  });

  // Free identifiers must be runtime globals. Scopes are flattened (any declaration anywhere
  // counts), which errs towards accepting; the vm context catches the rest when tests run.
  for (const { node, parent } of references) {
    const isPropertyName = (parent.type === 'MemberExpression' && parent.property === node && !parent.computed)
      || (parent.type === 'Property' && parent.key === node && !parent.computed)
      || parent.type === 'LabeledStatement' || parent.type === 'BreakStatement'
      || parent.type === 'ContinueStatement';
    if (isPropertyName || declared.has(node.name)) continue;
    if (!RUNTIME_GLOBALS.has(node.name)) reject(node, `the global \`${node.name}\``);
    if (node.name === 'Function' && parent.type === 'CallExpression' && parent.callee === node) {
      reject(node, 'the Function constructor');
    }
  }
  return problems;
}
