// A Parley in a process of its own, for tests that kill it.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

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
