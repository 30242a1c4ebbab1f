// A Parley in a process of its own, for tests that kill it.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { httpClient, type TestParley } from './parley.ts';

export const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface ChildParley {
  proc: ChildProcess;
  mqttPort: number;
  httpPort: number;
}

/** Starts `parley start` with `env` and reads the ports it chose from its start-up log line. */
export async function startChild(env: Record<string, string>, role = 'all'): Promise<ChildParley> {
  const proc = spawn(process.execPath, ['--import', 'tsx', path.join(repo, 'cli/parley.ts'), 'start', '--role', role], {
    cwd: repo,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env, PARLEY_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = readline.createInterface({ input: proc.stdout! });
  const started = await new Promise<{ mqtt: number; http: number }>((resolve, reject) => {
    proc.once('exit', (code) => reject(new Error(`parley exited with ${code} before it started`)));
    lines.on('line', (line) => {
      try {
        const rec = JSON.parse(line);
        if (rec.msg === 'parley started') resolve({ mqtt: rec.mqtt, http: rec.http });
      } catch {
        /* not a log line */
      }
    });
  });
  return { proc, mqttPort: started.mqtt, httpPort: started.http };
}

export function killChild(child: ChildParley, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  return new Promise((resolve) => {
    if (child.proc.exitCode !== null || child.proc.signalCode !== null) return resolve();
    child.proc.once('exit', () => resolve());
    child.proc.kill(signal);
  });
}

/** A child Parley with the HTTP helper of an in-process one, for the device helpers of ./parley.ts. */
export interface ParleyProcess {
  child: ChildParley;
  parley: TestParley;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export async function startParleyProcess(env: Record<string, string>, role = 'all'): Promise<ParleyProcess> {
  const child = await startChild(env, role);
  const parley = {
    running: { mqttPort: child.mqttPort, httpPort: child.httpPort },
    http: httpClient(`http://127.0.0.1:${child.httpPort}`),
  } as unknown as TestParley;
  return { child, parley, kill: (signal) => killChild(child, signal) };
}
