// How test/stack tells the servers it started from strangers (test/stack/processes.ts), with real processes:
// a pid file names the process by its pid and its start time in ticks after boot, so a wall clock stepped
// forward since the file was written (as this VM's was, mid-CI) does not turn a running server into a
// "foreign process" that `down` leaves running; a process that reuses the number is still a stranger.
import assert from './helpers/assert.ts';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { isRunning, livePid, readPid, spawnDetached, startTicks, stopPidFile } from './stack/processes.ts';
import type { StackContext } from './stack/service.ts';

function context(): StackContext {
  return { cacheDir: os.tmpdir(), runDir: fs.mkdtempSync(path.join(os.tmpdir(), 'parley-stack-')), progress: () => {} };
}

/** A process the stack did not start. */
async function stranger(): Promise<ChildProcess> {
  const child = spawn('sleep', ['60'], { stdio: 'ignore' });
  await new Promise((resolve) => child.once('spawn', resolve));
  return child;
}

/** As if the wall clock had been stepped forward by an hour since the file was written. */
function ageByAnHour(file: string): void {
  const hourAgo = new Date(Date.now() - 3_600_000);
  fs.utimesSync(file, hourAgo, hourAgo);
}

test('a server started by the stack stays ours after the clock moves, and down stops it', { timeout: 30_000 }, async () => {
  const ctx = context();
  const pid = await spawnDetached(ctx, 'sleeper', 'sleep', ['60']);
  const file = path.join(ctx.runDir, 'sleeper.pid');
  try {
    const [first, second] = fs.readFileSync(file, 'utf8').split('\n');
    assert.equal(Number(first), pid);
    assert.equal(Number(second), startTicks(pid), 'the file records when the process started');
    assert.equal(livePid(file), pid);
    ageByAnHour(file);
    assert.equal(livePid(file), pid, 'still ours: the start time is compared in ticks after boot, not against the file time');
    assert.equal(await stopPidFile(file), 'stopped');
    assert.equal(fs.existsSync(file), false);
    // Gone, or a zombie until this test process (its parent) reaps it: not running either way.
    assert.equal(isRunning(pid), false, 'the process ended');
  } finally {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      /* stopped above */
    }
  }
});

test('a process that reuses the number is a stranger: down leaves it alone', { timeout: 30_000 }, async () => {
  const ctx = context();
  const other = await stranger();
  const file = path.join(ctx.runDir, 'reused.pid');
  try {
    // The pid file of a server that died, whose number the stranger now has: another start time.
    fs.writeFileSync(file, `${other.pid}\n${startTicks(other.pid!)! - 100}\n`);
    assert.equal(readPid(file), other.pid);
    assert.equal(livePid(file), undefined);
    assert.equal(await stopPidFile(file), 'not running');
    assert.equal(other.exitCode, null, 'the stranger kept running');
    process.kill(other.pid!, 0);
  } finally {
    other.kill('SIGKILL');
  }
});

test('a pid file of the older kind (no start time) is still read: fresh is ours, one the process outlived by far is not', { timeout: 30_000 }, async () => {
  const ctx = context();
  const child = await stranger();
  const file = path.join(ctx.runDir, 'old.pid');
  try {
    fs.writeFileSync(file, `${child.pid}\n`);
    assert.equal(livePid(file), child.pid);
    ageByAnHour(file);
    assert.equal(livePid(file), undefined, 'started an hour after its file was written: taken for a stranger');
  } finally {
    child.kill('SIGKILL');
  }
});
