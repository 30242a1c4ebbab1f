// Foreground commands (installers, formatters) whose output is kept for the error message.
import { spawn, spawnSync } from 'node:child_process';

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  input?: string;
  /** Called for each output line, e.g. to turn Maven's download lines into progress. */
  onLine?: (line: string) => void;
}

export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly code: number | null,
    readonly output: string,
  ) {
    super(`${command} exited with ${code}\n${output.split('\n').slice(-30).join('\n')}`);
  }
}

/** Runs a command to the end; resolves with its combined output, rejects with the tail of it. */
export function run(command: string, args: string[], options: RunOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let output = '';
    let partial = '';
    const onData = (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      output += text;
      if (output.length > 1_000_000) output = output.slice(-500_000);
      if (!options.onLine) return;
      const lines = (partial + text).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) options.onLine(line);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    if (options.input !== undefined) child.stdin!.end(options.input);
    child.once('error', reject);
    child.once('close', (code) => {
      if (partial && options.onLine) options.onLine(partial);
      const shown = `${command} ${args.join(' ')}`;
      code === 0 ? resolve(output) : reject(new CommandError(shown, code, output));
    });
  });
}

/** True if `name` is an executable on PATH (or an absolute path that exists). */
export function hasCommand(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v "$1" >/dev/null 2>&1`, 'sh', name]).status === 0;
}
