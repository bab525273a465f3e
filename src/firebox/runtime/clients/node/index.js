'use strict';
/**
 * Firebox's Node.js runtime client: speaks the Lambda Runtime API (2018-06-01) and runs
 * one handler, as AWS's nodejs runtimes do. Plain Node, no npm dependencies.
 *
 * Started as `node <dir>/index.js` (unsandboxed) or `node /var/runtime/index.js` (process
 * sandbox): nothing here depends on where this file lives.
 *
 * Handler "dir/file.fn.sub" → LAMBDA_TASK_ROOT/dir/file{.js,.mjs,.cjs}, export fn.sub.
 * Async handlers answer when their promise settles; callback handlers answer when the
 * callback is called and, while context.callbackWaitsForEmptyEventLoop is true (the
 * default), only once the event loop has nothing else to do ('beforeExit').
 */

const http = require('http');
const fs = require('fs');
const path = require('path');
const util = require('util');
const { pathToFileURL } = require('url');

// In a pooled sandbox this process was started before its function was known: Node's own
// start-up is then off the cold path. The environment arrives on a pipe once the function
// is mounted; until then nothing of the function's is reachable.
if (process.env.FIREBOX_CONFIG_FD) {
  const configFd = Number(process.env.FIREBOX_CONFIG_FD);
  const config = JSON.parse(fs.readFileSync(configFd, 'utf8'));
  fs.closeSync(configFd);
  for (const key of Object.keys(process.env)) delete process.env[key];
  Object.assign(process.env, config.env);
  // NODE_PATH (layers' node_modules) is read once at start-up: read it again.
  require('module').Module._initPaths();
  process.chdir(process.env.LAMBDA_TASK_ROOT || '/var/task');
}

const API = process.env.AWS_LAMBDA_RUNTIME_API || '127.0.0.1:9001';
const [API_HOST, API_PORT] = (() => {
  const i = API.lastIndexOf(':');
  return [API.slice(0, i), Number(API.slice(i + 1))];
})();
const PREFIX = '/2018-06-01/runtime';
// Free keep-alive sockets are unref'd by Node's agent, so an idle connection to the
// Runtime API never holds the event loop open ('beforeExit' still fires).
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

// --- Runtime API ----------------------------------------------------------------------

function request(method, urlPath, body, headers) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: API_HOST, port: API_PORT, method, path: PREFIX + urlPath, agent, headers: headers || {} },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

function postJSON(urlPath, obj, headers) {
  const body = Buffer.from(typeof obj === 'string' ? obj : JSON.stringify(obj));
  return request('POST', urlPath, body, Object.assign({ 'Content-Type': 'application/json', 'Content-Length': body.length }, headers || {}));
}

function postError(urlPath, shape) {
  return postJSON(urlPath, shape, { 'Lambda-Runtime-Function-Error-Type': shape.errorType });
}

// --- errors in AWS's shape ------------------------------------------------------------

function isError(e) {
  return util.types.isNativeError(e) || (e && typeof e === 'object' && typeof e.name === 'string' && typeof e.message === 'string');
}

function errorShape(e, errorType) {
  if (isError(e)) {
    return {
      errorType: errorType || e.name,
      errorMessage: e.message,
      trace: typeof e.stack === 'string' ? e.stack.split('\n') : [],
    };
  }
  return { errorType: errorType || typeof e, errorMessage: String(e), trace: [] };
}

function logError(requestId, shape) {
  const line = JSON.stringify(shape);
  process.stdout.write(`${new Date().toISOString()}\t${requestId || 'undefined'}\tERROR\tInvoke Error \t${line}\n`);
}

// --- logging: console.* → the function's log, with Lambda's prefix ----------------------

let currentRequestId;
function patchConsole() {
  const levels = { log: 'INFO', info: 'INFO', warn: 'WARN', error: 'ERROR', debug: 'DEBUG', trace: 'TRACE' };
  for (const [name, level] of Object.entries(levels)) {
    console[name] = (...args) => {
      let text = util.format(...args);
      if (name === 'trace') text = `Trace: ${text}\n${new Error().stack.split('\n').slice(2).join('\n')}`;
      // Lambda prints multi-line messages as one event: newlines become carriage returns.
      text = text.replace(/\n/g, '\r');
      process.stdout.write(`${new Date().toISOString()}\t${currentRequestId || 'undefined'}\t${level}\t${text}\n`);
    };
  }
}

// --- loading the handler --------------------------------------------------------------

class ImportModuleError extends Error {}
class HandlerNotFound extends Error {}
class MalformedHandlerName extends Error {}
class UserCodeSyntaxError extends Error {}
for (const [cls, name] of [[ImportModuleError, 'Runtime.ImportModuleError'], [HandlerNotFound, 'Runtime.HandlerNotFound'],
  [MalformedHandlerName, 'Runtime.MalformedHandlerName'], [UserCodeSyntaxError, 'Runtime.UserCodeSyntaxError']]) {
  Object.defineProperty(cls.prototype, 'name', { value: name });
}

function splitHandler(handler) {
  const slash = handler.lastIndexOf('/');
  const dir = handler.slice(0, slash + 1);
  const rest = handler.slice(slash + 1);
  const dot = rest.indexOf('.');
  if (dot <= 0 || dot === rest.length - 1) throw new MalformedHandlerName('Bad handler');
  return [dir + rest.slice(0, dot), rest.slice(dot + 1)];
}

async function loadModule(root, moduleName) {
  const base = path.resolve(root, moduleName);
  let file = null;
  for (const ext of ['.js', '.mjs', '.cjs']) {
    if (fs.existsSync(base + ext)) { file = base + ext; break; }
  }
  if (file === null) {
    throw new ImportModuleError(`Error: Cannot find module '${moduleName}'\nRequire stack:\n- ${__filename}`);
  }
  try {
    if (file.endsWith('.mjs')) return await import(pathToFileURL(file).href);
    try {
      return require(file);
    } catch (e) {
      // A .js file in a "type": "module" package is ESM: load it as such.
      if (e && e.code === 'ERR_REQUIRE_ESM') return await import(pathToFileURL(file).href);
      throw e;
    }
  } catch (e) {
    if (e instanceof SyntaxError) throw new UserCodeSyntaxError(String(e));
    if (e && e.code === 'MODULE_NOT_FOUND') throw new ImportModuleError(String(e));
    if (e && e.code === 'ERR_MODULE_NOT_FOUND') throw new ImportModuleError(String(e));
    throw e;
  }
}

async function loadHandler(root, handlerString) {
  const [moduleName, attr] = splitHandler(handlerString);
  const mod = await loadModule(root, moduleName);
  const get = (obj) => attr.split('.').reduce((o, p) => (o == null ? undefined : o[p]), obj);
  let fn = get(mod);
  // A CommonJS module imported as ESM has its exports under `default`.
  if (typeof fn !== 'function' && mod && mod.default) fn = get(mod.default);
  if (typeof fn !== 'function') {
    throw new HandlerNotFound(`${handlerString} is undefined or not exported`);
  }
  return fn;
}

// --- streaming (awslambda.streamifyResponse) ------------------------------------------

const STREAMING = Symbol.for('aws.lambda.runtime.handler.streaming');

class ResponseStream extends require('stream').Writable {
  constructor(requestId) {
    super();
    this.contentType = 'application/octet-stream';
    this._started = false;
    this._requestId = requestId;
    this._done = new Promise((resolve, reject) => { this._resolve = resolve; this._reject = reject; });
  }

  setContentType(type) { this.contentType = type; }

  _start() {
    if (this._started) return;
    this._started = true;
    this._req = http.request({
      host: API_HOST, port: API_PORT, method: 'POST', agent,
      path: `${PREFIX}/invocation/${this._requestId}/response`,
      headers: {
        'Lambda-Runtime-Function-Response-Mode': 'streaming',
        'Transfer-Encoding': 'chunked',
        'Content-Type': this.contentType,
        Trailer: 'Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body',
      },
    }, (res) => { res.resume(); res.on('end', () => this._resolve(res.statusCode)); });
    this._req.on('error', (e) => this._reject(e));
  }

  _write(chunk, enc, cb) {
    this._start();
    if (this._req.write(chunk)) cb(); else this._req.once('drain', cb);
  }

  _final(cb) {
    this._start();
    this._req.end();
    cb();
  }

  fail(shape) {
    this._start();
    this._req.addTrailers({
      'Lambda-Runtime-Function-Error-Type': shape.errorType,
      'Lambda-Runtime-Function-Error-Body': Buffer.from(JSON.stringify(shape)).toString('base64'),
    });
    this._req.end();
  }
}

global.awslambda = {
  streamifyResponse(handler) {
    handler[STREAMING] = 'response';
    return handler;
  },
  HttpResponseStream: {
    from(stream, prelude) {
      stream.setContentType('application/vnd.awslambda.http-integration-response');
      stream.write(JSON.stringify(prelude));
      stream.write(Buffer.alloc(8));
      return stream;
    },
  },
};

// --- the context object ---------------------------------------------------------------

function makeContext(headers, finish) {
  const deadline = Number(headers['lambda-runtime-deadline-ms'] || 0);
  const parse = (v) => { if (!v) return undefined; try { return JSON.parse(v); } catch (e) { return undefined; } };
  const env = process.env;
  const context = {
    callbackWaitsForEmptyEventLoop: true,
    functionName: env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION,
    invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'],
    memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    awsRequestId: headers['lambda-runtime-aws-request-id'],
    logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME,
    identity: parse(headers['lambda-runtime-cognito-identity']),
    clientContext: parse(headers['lambda-runtime-client-context']),
    getRemainingTimeInMillis: () => Math.max(deadline - Date.now(), 0),
    // The legacy context methods.
    succeed: (result) => finish(null, result),
    fail: (err) => finish(err === undefined || err === null ? 'handled' : err),
    done: (err, result) => finish(err, result),
  };
  return context;
}

// --- the loop -------------------------------------------------------------------------

async function invokeOnce(handler) {
  const next = await request('GET', '/invocation/next');
  if (next.status !== 200) throw new Error(`Runtime API /next answered ${next.status}`);
  const h = next.headers;
  const requestId = h['lambda-runtime-aws-request-id'];
  currentRequestId = requestId;
  process.env._X_AMZN_TRACE_ID = h['lambda-runtime-trace-id'] || '';

  return new Promise((resolveInvoke) => {
    let finished = false;
    let context;
    const post = (err, result) => {
      const p = err !== null && err !== undefined
        ? (logError(requestId, errorShape(err)), postError(`/invocation/${requestId}/error`, errorShape(err)))
        : postJSON(`/invocation/${requestId}/response`, result === undefined ? 'null' : JSON.stringify(result));
      p.then(() => resolveInvoke(), () => resolveInvoke());
    };
    const finish = (err, result) => {
      if (finished) return;
      finished = true;
      if (context.callbackWaitsForEmptyEventLoop) {
        // Answer once everything the handler started has run ('beforeExit' fires when the
        // loop is empty); setImmediate covers a loop that is already empty.
        let done = false;
        const go = () => { if (!done) { done = true; process.removeListener('beforeExit', go); post(err, result); } };
        process.on('beforeExit', go);
      } else {
        post(err, result);
      }
    };
    context = makeContext(h, finish);
    let event;
    try {
      event = next.body.length ? JSON.parse(next.body.toString('utf8')) : {};
    } catch (e) {
      finished = true;
      post(e);
      return;
    }
    if (handler[STREAMING] === 'response') {
      const stream = new ResponseStream(requestId);
      let result;
      try {
        result = handler(event, stream, context);
      } catch (e) {
        result = Promise.reject(e);
      }
      Promise.resolve(result).then(
        () => {
          if (!stream.writableEnded) stream.end();
          stream._done.then(() => resolveInvoke(), () => resolveInvoke());
        },
        (e) => {
          const shape = errorShape(e);
          logError(requestId, shape);
          if (stream._started) {
            // Mid-stream: the error travels in the body's trailers, as Lambda expects.
            stream.fail(shape);
            stream._done.then(() => resolveInvoke(), () => resolveInvoke());
          } else {
            postError(`/invocation/${requestId}/error`, shape).then(() => resolveInvoke(), () => resolveInvoke());
          }
        },
      );
      return;
    }
    let ret;
    try {
      ret = handler(event, context, (err, result) => finish(err, result));
    } catch (e) {
      finished = true;
      post(e);
      return;
    }
    if (ret && typeof ret.then === 'function') {
      ret.then(
        (result) => { if (!finished) { finished = true; post(null, result); } },
        (e) => { if (!finished) { finished = true; post(e === undefined ? new Error('undefined') : e); } },
      );
    } else if (!finished) {
      // Neither a promise nor (yet) the callback: as on Lambda, the invocation ends with a
      // null result when the event loop runs dry without the callback being called.
      const dry = () => {
        process.removeListener('beforeExit', dry);
        if (!finished) { finished = true; post(null, undefined); }
      };
      process.on('beforeExit', dry);
    }
  });
}

async function main() {
  patchConsole();
  const root = process.env.LAMBDA_TASK_ROOT || '/var/task';
  let handler;
  try {
    handler = await loadHandler(root, process.env._HANDLER || '');
  } catch (e) {
    const shape = errorShape(e);
    logError(undefined, shape);
    await postError('/init/error', shape).catch(() => {});
    process.exit(1);
  }
  // An exception nobody caught during an invoke ends the environment, after reporting it.
  const fatal = (type) => (e) => {
    const shape = errorShape(e, type && !isError(e) ? type : undefined);
    logError(currentRequestId, shape);
    const id = currentRequestId;
    const p = id ? postError(`/invocation/${id}/error`, shape) : postError('/init/error', shape);
    p.finally(() => process.exit(128));
  };
  process.on('uncaughtException', fatal());
  process.on('unhandledRejection', (reason) => fatal('Runtime.UnhandledPromiseRejection')(
    isError(reason) ? reason : Object.assign(new Error(String(reason)), { name: 'Runtime.UnhandledPromiseRejection' })));
  for (;;) {
    await invokeOnce(handler);
    currentRequestId = undefined;
  }
}

main();
