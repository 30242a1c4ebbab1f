// Nothing acked is lost when the process dies in the middle of the journal's background compaction: a
// child process stores messages (queue, outbox, claim in one journal write), removes most, and compacts as
// often as it can, moving claims to their archive; it is killed with SIGKILL at a moment of its own. After
// a restart every acked message is still queued unless its removal was written, every removal written
// holds, and every acked cid answers with its first claim.
import assert from './helpers/assert.ts';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { describe, it } from 'node:test';
import { EmbeddedAcceptStore } from '../broker/accept-store-embedded.ts';
import { EmbeddedOfflineQueue } from '../broker/offline-queue-embedded.ts';
import { EmbeddedOutbox } from '../broker/outbox-embedded.ts';
import { Journal } from '../common/journal.ts';
import { repo } from './helpers/child.ts';
import { tempDir } from './contracts/support.ts';

interface Seen {
  acked: Map<string, string>;
  /** Handed over for removal: maybe removed when the process died. */
  removing: Set<string>;
  /** Removed and written: must stay removed. */
  removed: Set<string>;
  compactions: number;
}

/**
 * Runs the churn in a child until it has started `compactions` + 1 compactions; kills it `extraMs` after
 * the last one starts. What the child did is read from its events file afterwards: written synchronously,
 * it holds every line the child wrote before it died (its stdout, a pipe, is buffered in the child and
 * loses its last lines with it: the test once counted 18 removals as never handed over that way).
 */
async function churnAndKill(dir: string, from: number, compactions: number, extraMs: number, seen: Seen): Promise<void> {
  const eventsFile = path.join(dir, `..`, `${path.basename(dir)}-events-${from}.log`);
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(repo, 'test/helpers/journal-churn.ts'), dir, String(from), eventsFile], {
    cwd: repo,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let started = 0;
  for await (const line of readline.createInterface({ input: child.stdout! })) {
    if (line === 'compacting' && ++started === compactions + 1) setTimeout(() => child.kill('SIGKILL'), extraMs);
  }
  await exited;
  for (const line of fs.readFileSync(eventsFile, 'utf8').split('\n')) {
    const [what, a, b] = line.split(' ');
    if (what === 'acked') seen.acked.set(a, b);
    else if (what === 'removing') seen.removing.add(a);
    else if (what === 'removed') seen.removed.add(a);
    else if (what === 'compacted') seen.compactions++;
    else if (what === 'failed') assert.fail(`a compaction failed: ${line}`);
  }
  fs.rmSync(eventsFile, { force: true });
}

describe('journal: killed during background compactions', () => {
  it('keeps every acked message, removal and claim across SIGKILLs', { timeout: 120_000 }, async () => {
    const tmp = await tempDir('journal-kill');
    const seen: Seen = { acked: new Map(), removing: new Set(), removed: new Set(), compactions: 0 };
    // Five lives, each killed at another point of a compaction's course (it takes a few ms).
    for (const [life, extraMs] of [0, 1, 2, 4, 8].entries()) await churnAndKill(tmp.dir, 1_000_000 * (life + 1), 2, extraMs, seen);
    assert.ok(seen.compactions >= 10, `compactions ran: ${seen.compactions}`);
    assert.ok(seen.acked.size > 1000, `messages acked: ${seen.acked.size}`);

    const journal = Journal.open(tmp.dir, 1, true, 0);
    const queue = new EmbeddedOfflineQueue(journal, 1, 1_000_000);
    const outbox = new EmbeddedOutbox(journal, 1);
    const store = new EmbeddedAcceptStore(journal, queue, outbox);
    const queued = new Set((await queue.list('bob', 10_000_000)).map((m) => m.id));
    const lost = [...seen.acked.values()].filter((id) => !seen.removing.has(id) && !queued.has(id));
    assert.deepEqual(lost.slice(0, 5), [], `acked, never handed over for removal, and gone after the restart: ${lost.length}`);
    const back = [...seen.removed].filter((id) => queued.has(id));
    assert.deepEqual(back.slice(0, 5), [], `removed (written) and back after the restart: ${back.length}`);
    let checked = 0;
    for (const [cid, id] of seen.acked) {
      if (checked++ % 7 !== 0) continue;
      const again = store.store({ sender: 'alice', cid, claim: 'again:0', ttlSeconds: 3600, queue: [], outbox: [] });
      assert.equal(await again.written, `${id}:1`, `${cid} answers with its first claim`);
    }
    await store.close();
    await queue.close();
    await outbox.close();
    await tmp.remove();
  });
});
