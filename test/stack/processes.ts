// Detached server processes tracked by pid files, so `down` stops exactly what `up` started.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { StackContext } from './service.ts';
import { logFile, pidFile } from './context.ts';

export interface DetachedOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

/**
 * Starts `command` in its own process group, stdout and stderr appended to `${runDir}/${name}.log`,
 * writes `${runDir}/${name}.pid`, and lets the CLI exit without it.
 */
export async function spawnDetached(
  ctx: StackContext,
  name: string,
  command: string,
  args: string[],
  options: DetachedOptions = {},
): Promise<number> {
  const log = logFile(ctx, name);
  const fd = openSync(log, 'a');
  try {
    writeFileSync(fd, `\n--- ${new Date().toISOString()} starting: ${command} ${args.join(' ')}\n`);
    const child = spawn(command, args, {
      cwd: options.cwd ?? ctx.runDir,
      env: options.env ?? process.env,
      detached: true,
      stdio: ['ignore', fd, fd],
    });
    // A missing binary is reported through 'error' after spawn() returns.
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('error', reject);
      child.once('spawn', () => resolve(child.pid!));
    });
    child.unref();
    // The start time identifies the process: a later one that reuses the number has another.
    writeFileSync(pidFile(ctx, name), `${pid}\n${startTicks(pid) ?? ''}\n`);
    return pid;
  } finally {
    closeSync(fd);
  }
}

/** A pid file: the pid on its first line, the process's start time (clock ticks after boot) on its second. */
function readPidFile(file: string): { pid: number; ticks?: number } | undefined {
  if (!existsSync(file)) return undefined;
  const [first, second] = readFileSync(file, 'utf8').split('\n');
  const pid = Number.parseInt(first, 10);
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  const ticks = Number.parseInt(second ?? '', 10);
  return Number.isInteger(ticks) ? { pid, ticks } : { pid };
}

export function readPid(file: string): number | undefined {
  return readPidFile(file)?.pid;
}

/** Field 22 of /proc/PID/stat: when the process started, in clock ticks after boot (no wall clock in it). */
export function startTicks(pid: number): number | undefined {
  try {
    // The command name (field 2) may hold spaces, so count from the closing parenthesis.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const ticks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    return Number.isInteger(ticks) ? ticks : undefined;
  } catch {
    return undefined;
  }
}

/** When the process started, on the wall clock (for pid files written before they recorded start ticks). */
function processStartMs(pid: number): number | undefined {
  const ticks = startTicks(pid);
  if (ticks === undefined) return undefined;
  try {
    const btime = Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1]);
    return btime * 1000 + (ticks * 1000) / 100; // USER_HZ is 100 on Linux
  } catch {
    return undefined;
  }
}

/** Whether `pid` runs (a zombie does not count). */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  // A zombie still answers kill(0) but is not serving anything.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}

/**
 * The pid recorded in `file` if that process still runs and is the one we started: one with another start
 * time is a stranger that reused the number. The start times are compared in ticks after boot, which no
 * clock adjustment moves; comparing the wall-clock start with the file's time (what an older pid file
 * without ticks still gets) took a stack server for a stranger after the VM's clock was stepped forward,
 * and `down` then left it running.
 */
export function livePid(file: string): number | undefined {
  const recorded = readPidFile(file);
  if (recorded === undefined || !isRunning(recorded.pid)) return undefined;
  const { pid, ticks } = recorded;
  if (ticks !== undefined) return startTicks(pid) === ticks ? pid : undefined;
  const started = processStartMs(pid);
  if (started !== undefined && started > statSync(file).mtimeMs + 2000) return undefined;
  return pid;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** SIGTERM to the pid in `file` (its process group too), SIGKILL after `graceMs`; removes the file. */
export async function stopPidFile(file: string, graceMs = 15_000): Promise<'stopped' | 'killed' | 'not running'> {
  const pid = livePid(file);
  if (pid === undefined) {
    rmSync(file, { force: true });
    return 'not running';
  }
  const signal = (sig: NodeJS.Signals) => {
    // The server leads its own process group (spawned detached), so its children go with it.
    try {
      process.kill(-pid, sig);
    } catch {
      try {
        process.kill(pid, sig);
      } catch {
        /* already gone */
      }
    }
  };
  signal('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!isRunning(pid)) {
      rmSync(file, { force: true });
      return 'stopped';
    }
    await sleep(100);
  }
  signal('SIGKILL');
  while (isRunning(pid)) await sleep(50);
  rmSync(file, { force: true });
  return 'killed';
}

/** The last `lines` lines of a log file (of its latest start only, if asked), for a failed start. */
export function tail(file: string, lines = 40, sinceLastStart = false): string {
  if (!existsSync(file)) return `(no log at ${file})`;
  const size = statSync(file).size;
  const fd = openSync(file, 'r');
  try {
    const length = Math.min(size, 64 * 1024);
    const buf = Buffer.alloc(length);
    readSyncAll(fd, buf, size - length);
    let text = buf.toString('utf8');
    if (sinceLastStart) {
      // Only this start's lines: spawnDetached writes a "--- <time> starting:" header each time.
      const header = text.lastIndexOf('\n--- ');
      if (header >= 0) text = text.slice(header + 1);
    }
    return text.split('\n').slice(-lines - 1).join('\n');
  } finally {
    closeSync(fd);
  }
}

function readSyncAll(fd: number, buf: Buffer, position: number): void {
  let off = 0;
  while (off < buf.length) {
    const n = readSync(fd, buf, off, buf.length - off, position + off);
    if (n === 0) break;
    off += n;
  }
}

/** Polls `check` until it says yes, the process dies, or `timeoutMs` passes. */
export async function waitUntil(
  check: () => Promise<boolean>,
  { timeoutMs, intervalMs = 500, alive }: { timeoutMs: number; intervalMs?: number; alive?: () => boolean },
): Promise<'ready' | 'timeout' | 'died'> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return 'ready';
    if (alive && !alive()) return 'died';
    if (Date.now() >= deadline) return 'timeout';
    await sleep(intervalMs);
  }
}
