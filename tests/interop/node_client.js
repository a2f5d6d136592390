#!/usr/bin/env node
// A node-redlock client for scripts/interop-test: one operation per process, against
// redis-servers on 127.0.0.1, so the shell can interleave it with the C++ `redlock` tool on
// the same keys.
//
//   node node_client.js --api v4|v5 --modules DIR PORTS COMMAND ARGS...
//
//   --modules DIR   a directory whose node_modules holds redlock and ioredis
//                   (tests/interop/v4 or v5 installed with `npm ci`)
//   PORTS           comma-separated loopback ports, e.g. 7001,7002,7003
//
//   acquire TTL_MS RESOURCE...       one attempt (retryCount 0); prints the value on stdout
//                                    and leaves the lock held (it expires at its TTL)
//   try TTL_MS RESOURCE...           one attempt; prints the value and releases at once
//   extend VALUE TTL_MS RESOURCE...  extend the lock with this value (as a Lock object)
//   release VALUE RESOURCE...        release the lock with this value (as a Lock object)
//
// Exit status: 0 success; 3 the library refused with its own error (v4 LockError,
// v5 ExecutionError), printed as "NAME: message" on stderr; 1 anything else (bad usage, an
// unexpected error, the 15 s deadline).
'use strict';

const path = require('path');
const { createRequire } = require('module');

const EXIT_REFUSED = 3;
const DEADLINE_MS = 15000;

function usage(message) {
  console.error(`node_client: ${message}`);
  console.error('usage: node_client.js --api v4|v5 --modules DIR PORTS ' +
                '(acquire TTL_MS | try TTL_MS | extend VALUE TTL_MS | release VALUE) RESOURCE...');
  process.exit(1);
}

function parse(argv) {
  const opts = { api: 'v4', modules: null };
  const rest = [];
  for (let i = 0; i < argv.length; ++i) {
    if (argv[i] === '--api') opts.api = argv[++i];
    else if (argv[i] === '--modules') opts.modules = argv[++i];
    else rest.push(argv[i]);
  }
  if (opts.api !== 'v4' && opts.api !== 'v5') usage(`unknown --api ${opts.api}`);
  if (!opts.modules) usage('--modules DIR is required');
  if (rest.length < 3) usage('too few arguments');
  opts.ports = rest[0].split(',').map(Number);
  if (opts.ports.some((p) => !Number.isInteger(p) || p <= 0)) usage(`bad PORTS ${rest[0]}`);
  opts.command = rest[1];
  const args = rest.slice(2);
  const ttl = (s) => {
    if (!/^[0-9]+$/.test(s || '')) usage(`bad TTL_MS ${s}`);
    return Number(s);
  };
  switch (opts.command) {
    case 'acquire':
    case 'try':
      opts.ttl = ttl(args[0]);
      opts.resources = args.slice(1);
      break;
    case 'extend':
      opts.value = args[0];
      opts.ttl = ttl(args[1]);
      opts.resources = args.slice(2);
      break;
    case 'release':
      opts.value = args[0];
      opts.resources = args.slice(1);
      break;
    default:
      usage(`unknown command ${opts.command}`);
  }
  if (!opts.resources.length) usage('no RESOURCE given');
  return opts;
}

// The two major versions differ in shape; this hides that behind one small interface.
function load(opts) {
  const req = createRequire(path.join(path.resolve(opts.modules), 'package.json'));
  const Redis = req('ioredis');
  const clients = opts.ports.map((port) => {
    const c = new Redis({ host: '127.0.0.1', port, connectTimeout: 2000,
                          maxRetriesPerRequest: 1, retryStrategy: () => null });
    c.on('error', (e) => console.error(`node_client: ioredis (port ${port}): ${e.message}`));
    return c;
  });
  const settings = { retryCount: 0, retryDelay: 200, retryJitter: 100, driftFactor: 0.01 };
  // One resource is passed as a string, as most v4 users do; several as an array.
  const resources = opts.resources.length === 1 && opts.api === 'v4'
    ? opts.resources[0] : opts.resources;
  if (opts.api === 'v4') {
    const Redlock = req('redlock');
    const redlock = new Redlock(clients, settings);
    redlock.on('clientError', (e) => console.error(`node_client: clientError: ${e.message}`));
    return {
      clients,
      isRefusal: (e) => e instanceof Redlock.LockError,
      // v4 settles an operation only after every server replied.
      settle: async () => {},
      acquire: (ttl) => redlock.lock(resources, ttl),
      release: (lock) => redlock.unlock(lock),
      extend: (lock, ttl) => redlock.extend(lock, ttl),
      // Lock(redlock, resource, value, expiration, attempts, attemptsRemaining)
      lockOf: (value, ttl) => new Redlock.Lock(redlock, resources, value, Date.now() + ttl, 1, 0),
    };
  }
  const mod = req('redlock');
  const Redlock = mod.default;
  const redlock = new Redlock(clients, settings);
  // v5 settles an operation as soon as a quorum voted; the other servers' replies (and a
  // NOSCRIPT -> EVAL fallback) may still be pending. Each attempt carries a promise of its
  // statistics that resolves once every vote is in: wait for those before closing, or a lock
  // may land on only a quorum of the servers.
  const allVotes = async (result) => {
    await Promise.all(result && Array.isArray(result.attempts) ? result.attempts : []);
    return result;
  };
  return {
    clients,
    isRefusal: (e) => e instanceof mod.ExecutionError,
    settle: allVotes,
    acquire: (ttl) => redlock.acquire(resources, ttl).then(allVotes),
    release: (lock) => redlock.release(lock).then(allVotes),
    extend: (lock, ttl) => redlock.extend(lock, ttl).then(allVotes),
    // Lock(redlock, resources, value, attempts, expiration)
    lockOf: (value, ttl) => new mod.Lock(redlock, resources, value, [], Date.now() + ttl),
  };
}

async function main() {
  const opts = parse(process.argv.slice(2));
  setTimeout(() => {
    console.error(`node_client: no result within ${DEADLINE_MS} ms`);
    process.exit(1);
  }, DEADLINE_MS).unref();
  const api = load(opts);
  let status = 0;
  try {
    switch (opts.command) {
      case 'acquire': {
        const lock = await api.acquire(opts.ttl);
        console.log(lock.value);
        break;
      }
      case 'try': {
        const lock = await api.acquire(opts.ttl);
        console.log(lock.value);
        await api.release(lock);
        break;
      }
      case 'extend':
        // A Lock object carrying the given value, as if this process had acquired it.
        await api.extend(api.lockOf(opts.value, 60000), opts.ttl);
        break;
      case 'release':
        await api.release(api.lockOf(opts.value, 60000));
        break;
    }
  } catch (e) {
    console.error(`${e.name}: ${e.message}`);
    status = api.isRefusal(e) ? EXIT_REFUSED : 1;
    await api.settle(e);
  }
  // QUIT, not disconnect(): QUIT runs after every command already queued on the connection.
  await Promise.all(api.clients.map((c) => c.quit().catch(() => c.disconnect())));
  process.exitCode = status;
}

main().catch((e) => {
  console.error(`node_client: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
