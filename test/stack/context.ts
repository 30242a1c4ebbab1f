// Where the stack keeps things, and the per-service context the CLI hands to each StackService.
import { mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { StackContext } from './service.ts';

/** The repository root: test/stack/ is two levels below it. */
export const repoDir = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Folder of this file, for LDIF and other files shipped beside the services. */
export const stackSourceDir = dirname(fileURLToPath(import.meta.url));

export const envFile = join(repoDir, '.stack.env');

export function cacheDir(): string {
  return process.env.PARLEY_STACK_CACHE || join(homedir(), '.cache', 'parley-stack');
}

export function runDir(): string {
  return process.env.PARLEY_STACK_DIR || join(repoDir, '.stack');
}

export function pidFile(ctx: StackContext, name: string): string {
  return join(ctx.runDir, `${name}.pid`);
}

export function logFile(ctx: StackContext, name: string): string {
  return join(ctx.runDir, `${name}.log`);
}

/** A context whose progress lines carry the service name, unless the service already wrote one. */
export function serviceContext(name: string, print: (line: string) => void = console.log): StackContext {
  const ctx: StackContext = {
    cacheDir: cacheDir(),
    runDir: runDir(),
    progress(message) {
      print(message.startsWith('[') ? message : `[${name}] ${message}`);
    },
  };
  mkdirSync(ctx.cacheDir, { recursive: true });
  mkdirSync(ctx.runDir, { recursive: true });
  return ctx;
}

/** "1.2 s" / "2 min 03 s" for the timings the CLI prints. */
export function formatDuration(ms: number): string {
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
}

/** Runs one step of a service and prints how long it took. */
export async function timed<T>(ctx: StackContext, step: string, fn: () => Promise<T>): Promise<T> {
  const started = Date.now();
  ctx.progress(`${step} ...`);
  try {
    const result = await fn();
    ctx.progress(`${step} done (${formatDuration(Date.now() - started)})`);
    return result;
  } catch (err) {
    ctx.progress(`${step} FAILED after ${formatDuration(Date.now() - started)}`);
    throw err;
  }
}
