// The load generator processes: forked workers, one request at a time each, answered in order.
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command, Reply } from './protocol.ts';

const WORKER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'worker.ts');

export class Generators {
  private readonly waiting: ((reply: Reply) => void)[][];

  private constructor(private readonly workers: ChildProcess[]) {
    this.waiting = workers.map(() => []);
    workers.forEach((w, i) => {
      w.on('message', (reply: Reply) => this.waiting[i].shift()?.(reply));
      w.on('exit', (code, signal) => {
        for (const waiter of this.waiting[i].splice(0)) waiter({ type: 'error', message: `generator ${i} exited (${code ?? signal})` });
      });
    });
  }

  /** `profileDir`: each generator writes a V8 CPU profile there when it exits. */
  static start(count: number, profileDir?: string): Generators {
    const prof = (i: number) => (profileDir ? ['--cpu-prof', '--cpu-prof-dir', path.join(profileDir, `generator${i}`)] : []);
    const workers = Array.from({ length: count }, (_, i) =>
      fork(WORKER, [], { execArgv: [...prof(i), '--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' }),
    );
    return new Generators(workers);
  }

  get size(): number {
    return this.workers.length;
  }

  get pids(): number[] {
    return this.workers.map((w) => w.pid!);
  }

  request<R extends Reply>(i: number, cmd: Command): Promise<R> {
    return new Promise((resolve, reject) => {
      this.waiting[i].push((reply) => (reply.type === 'error' ? reject(new Error(`generator ${i}: ${reply.message}`)) : resolve(reply as R)));
      this.workers[i].send(cmd);
    });
  }

  /** Sends each worker its own command and waits for every answer. */
  all<R extends Reply>(cmdFor: (i: number) => Command): Promise<R[]> {
    return Promise.all(this.workers.map((_, i) => this.request<R>(i, cmdFor(i))));
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            if (w.exitCode !== null) return resolve();
            w.once('exit', () => resolve());
            w.disconnect();
            setTimeout(() => w.kill('SIGKILL'), 5000).unref();
          }),
      ),
    );
  }
}

/** Splits `items` into `n` contiguous shares of nearly equal size. */
export function shares<T>(items: readonly T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < n; i++) out.push(items.slice(Math.floor((i * items.length) / n), Math.floor(((i + 1) * items.length) / n)));
  return out;
}
