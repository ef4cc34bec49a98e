// Runs the real origin binary for the browser test: embedded store in a temporary DATA_DIR,
// loopback only, stoppable and restartable on the same port with the same data.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';

const READY_TIMEOUT_MS = 30_000;
const READY_POLL_MS = 25;
const STOP_TIMEOUT_MS = 15_000;

// A port the kernel just handed out and released; the origin binds it next.
export async function freeLoopbackPort() {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

export class OriginProcess {
  #child = null;
  #output = [];

  constructor({ binary, dataDir, port }) {
    if (!existsSync(binary)) {
      throw new Error(`origin binary ${binary} is missing: build it with \`cargo build -p counter-origin\` (or set ORIGIN_BIN)`);
    }
    Object.assign(this, { binary, dataDir, port });
    this.baseUrl = `http://127.0.0.1:${port}`;
  }

  // Recent output, for failure messages.
  get output() {
    return this.#output.join('').slice(-4000);
  }

  async start() {
    if (this.#child) throw new Error('origin already running');
    const child = spawn(this.binary, [], {
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        DATA_DIR: this.dataDir,
        LISTEN_ADDR: `127.0.0.1:${this.port}`,
        METRICS_ADDR: '127.0.0.1:0',
        DRAIN_PERIOD_MS: '0',
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#child = child;
    for (const stream of [child.stdout, child.stderr]) {
      stream.setEncoding('utf8');
      stream.on('data', (chunk) => {
        this.#output.push(chunk);
        if (this.#output.length > 200) this.#output.shift();
      });
    }
    const exited = once(child, 'exit').then(([code, signal]) => {
      throw new Error(`origin exited during start-up (code ${code}, signal ${signal}):\n${this.output}`);
    });
    exited.catch(() => {});
    await Promise.race([this.#waitReady(), exited]);
  }

  // Polls /readyz: the origin gives no other start-up signal, and the deadline bounds the wait.
  async #waitReady() {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (Date.now() < deadline) {
      try {
        const response = await fetch(`${this.baseUrl}/readyz`);
        await response.arrayBuffer();
        if (response.status === 200) return;
      } catch {
        // not listening yet
      }
      await delay(READY_POLL_MS);
    }
    throw new Error(`origin not ready within ${READY_TIMEOUT_MS} ms:\n${this.output}`);
  }

  async stop() {
    const child = this.#child;
    if (!child) return;
    this.#child = null;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    const [code, signal] = await exited;
    clearTimeout(timer);
    if (signal === 'SIGKILL') throw new Error(`origin ignored SIGTERM for ${STOP_TIMEOUT_MS} ms:\n${this.output}`);
    if (code !== 0) throw new Error(`origin exited with code ${code} after SIGTERM:\n${this.output}`);
  }
}
