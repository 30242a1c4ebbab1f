// The archiver and the analytics jobs on their own thread (the default) and inline: both archive every
// message and count it on /metrics; the thread owns the embedded archive and the broker thread reads it
// over RPC; a thread that dies is started again and archives what was acked while it was gone.
import assert from './helpers/assert.ts';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { threadId } from 'node:worker_threads';
import { after, before, describe, it } from 'node:test';
import { EMBEDDED_PARTITIONS } from '../cli/server.ts';
import { RpcArchive } from '../consumers/archive-rpc.ts';
import { FAULT_EXIT_CODE } from '../consumers/thread.ts';
import { sampleThreads, type ThreadSample } from '../bench/procstat.ts';
import { CONSUMER_THREAD_NAME } from '../consumers/thread-priority.ts';
import { ConfigError, loadConfig } from '../common/config.ts';
import { startParleyProcess } from './helpers/child.ts';
import { connectDevice, PASSWORD, registerUser, sleep, startTestParley, testEnv, type TestParley } from './helpers/parley.ts';

async function token(p: TestParley, user: string): Promise<string> {
  return (await p.http('/v1/auth/login', { body: { username: user, password: PASSWORD } })).body.token;
}

/** The conversation's history as the HTTP API serves it, once it holds `n` messages. */
async function historyOf(p: TestParley, reader: string, peer: string, n: number, timeoutMs = 30_000): Promise<any[]> {
  const t = await token(p, reader);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await p.http(`/v1/conversations/user/${peer}/messages?limit=200`, { token: t });
    if (res.status === 200 && res.body.messages.length >= n) return res.body.messages;
    if (Date.now() > deadline) throw new Error(`history has ${res.status === 200 ? res.body.messages.length : `status ${res.status}`} of ${n} messages`);
    await sleep(100);
  }
}

async function metricsText(p: TestParley): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${p.running.httpPort}/metrics`);
  assert.equal(res.status, 200);
  return res.text();
}

/** The consumer threads the kernel lists, once the one starting has named itself. */
async function consumerThreads(): Promise<ThreadSample[]> {
  for (let i = 0; i < 100; i++) {
    const found = sampleThreads('self').filter((t) => t.name === CONSUMER_THREAD_NAME);
    if (found.length) return found;
    await sleep(50);
  }
  return [];
}

const mainNice = () => sampleThreads('self').find((t) => t.tid === process.pid)!.nice;

/** The summed value of a counter's samples (all label sets). */
function counter(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

for (const mode of ['thread', 'inline'] as const) {
  describe(`consumers ${mode === 'thread' ? 'on their own thread' : 'inline on the broker loop'}, embedded adapters`, () => {
    let p: TestParley;
    before(async () => {
      // The consumer thread serves `fault.uncaught` (thread-worker.ts), for the test of its restart.
      process.env.PARLEY_FAULT_INJECTION = '1';
      p = await startTestParley('embedded', { PARLEY_CONSUMER_THREAD: mode === 'thread' ? 'true' : 'false', PARLEY_ANALYTICS_LINGER_MS: '50' });
    });
    after(async () => {
      delete process.env.PARLEY_FAULT_INJECTION;
      await p?.stop();
    });

    it('runs where configured and owns the archive there', async () => {
      const thread = p.running.consumerThread;
      if (mode === 'thread') {
        assert.ok(thread?.current, 'a consumer thread is running');
        assert.notEqual(thread.current.threadId, threadId);
        assert.ok(p.running.ports.archive instanceof RpcArchive, 'the broker thread reads the thread-owned archive over RPC');
        // It names itself and yields the CPU to the broker's thread: PARLEY_CONSUMER_NICE's 10 steps lower.
        const found = await consumerThreads();
        assert.equal(found.length, 1, 'one thread named parley-consumer');
        assert.equal(found[0].nice, Math.min(19, mainNice() + 10));
        assert.equal(sampleThreads('self').filter((t) => t.nice !== mainNice()).length, 1, 'no other thread of the process lowered');
      } else {
        assert.equal(thread, null);
        assert.deepEqual(sampleThreads('self').filter((t) => t.name === CONSUMER_THREAD_NAME), []);
      }
    });

    it('gives the embedded messages topic one partition: one fsync per append, one batch per consumer group', () => {
      const meta = JSON.parse(fs.readFileSync(path.join(p.config.dataDir, 'event-log', p.config.messagesTopic, 'meta.json'), 'utf8'));
      assert.equal(EMBEDDED_PARTITIONS, 1);
      assert.equal(meta.partitions, 1);
      assert.deepEqual(fs.readdirSync(path.join(p.config.dataDir, 'event-log', p.config.messagesTopic)).filter((f) => /^\d+$/.test(f)), ['0']);
    });

    it('archives every message, serves it as history, and shows both threads’ counters on /metrics', async () => {
      const [ann, ben] = [await registerUser(p), await registerUser(p)];
      const a = await connectDevice(p, 'tcp', ann);
      const sent = [];
      for (let i = 0; i < 25; i++) sent.push((await a.sendAndAck(ben, { body: `m${i}` })).id);
      const history = await historyOf(p, ann, ben, 25);
      assert.deepEqual(history.map((m) => m.id).sort(), [...sent].sort());
      assert.ok((await p.running.consumers!.archived()) >= 25);
      const deadline = Date.now() + 20_000;
      let text = await metricsText(p);
      while (counter(text, 'parley_analytics_events_total') < 25 && Date.now() < deadline) {
        await sleep(200);
        text = await metricsText(p);
      }
      assert.ok(counter(text, 'parley_messages_accepted_total') >= 25, 'the broker thread’s counters');
      assert.ok(counter(text, 'parley_journal_fsync_seconds_count') >= 1, 'each ack waited for a journal fdatasync, timed');
      assert.ok(counter(text, 'parley_analytics_events_total') >= 25, 'the analytics jobs’ counters');
      assert.ok(counter(text, 'parley_archiver_archived') >= 25, 'the archiver’s progress');
      assert.equal(text.split('\n').filter((l) => l.startsWith('# TYPE parley_analytics_events_total ')).length, 1, 'each metric once');
      await a.close();
    });

    it('refuses junk history paging with 400 and keeps serving', async () => {
      const [ann, ben] = [await registerUser(p), await registerUser(p)];
      const res = await p.http(`/v1/conversations/user/${ben}/messages?before=not-an-id`, { token: await token(p, ann) });
      assert.equal(res.status, 400);
      assert.equal(res.body.error.code, 'bad_request');
      const next = await p.http(`/v1/conversations/user/${ben}/messages`, { token: await token(p, ann) });
      assert.equal(next.status, 200);
      assert.deepEqual(next.body.messages, []);
    });

    if (mode === 'thread') {
      it('starts the thread again when a fault ends it, and archives what was acked meanwhile', async () => {
        const [ann, ben] = [await registerUser(p), await registerUser(p)];
        const a = await connectDevice(p, 'tcp', ann);
        const thread = p.running.consumerThread!;
        const ids: string[] = [];
        for (let i = 0; i < 10; i++) ids.push((await a.sendAndAck(ben, { body: `before ${i}` })).id);
        // A fault nothing in the thread catches ends it mid-stream, history reads under way: it closes its
        // stores (finishing the batch in hand) and ends; what arrives meanwhile waits in the event log for
        // the thread started again. (Ended with Worker.terminate() instead, a LevelDB database still open
        // could take the whole process down now and then: see thread-worker.ts.)
        const dying = thread.current!;
        const exited = new Promise<number>((resolve) => dying.once('exit', resolve));
        const sending = (async () => {
          for (let i = 0; i < 30; i++) ids.push((await a.sendAndAck(ben, { body: `during ${i}` })).id);
        })();
        const reading = (async () => {
          for (let i = 0; i < 20; i++) await p.http(`/v1/conversations/user/${ben}/messages`, { token: await token(p, ann) });
        })();
        await new Promise((r) => setTimeout(r, 20));
        dying.postMessage({ rpc: 'call', id: 1e9, method: 'fault.uncaught', args: [] });
        assert.equal(await exited, FAULT_EXIT_CODE, 'the thread closed its stores, then ended');
        await sending;
        await reading;
        // While it is gone, history reads fail cleanly (503) rather than hang.
        const down = await p.http(`/v1/conversations/user/${ben}/messages`, { token: await token(p, ann) });
        assert.ok(down.status === 503 || (down.status === 200 && thread.current), `history while the thread is down: ${down.status}`);
        const history = await historyOf(p, ann, ben, ids.length, 60_000);
        assert.equal(thread.restarts, 1);
        assert.notEqual(thread.current, dying);
        const again = await consumerThreads();
        assert.equal(again.length, 1, 'the thread started again named itself');
        assert.equal(again[0].nice, Math.min(19, mainNice() + 10), 'and runs lowered like the first');
        assert.deepEqual(history.map((m) => m.id).sort(), [...ids].sort(), 'every acked message, once');
        await a.close();
      });
    }
  });
}

describe('the consumer thread’s priority', () => {
  it('stays the broker thread’s with PARLEY_CONSUMER_NICE=0', async () => {
    const p = await startTestParley('embedded', { PARLEY_CONSUMER_NICE: '0' });
    try {
      const found = await consumerThreads();
      assert.equal(found.length, 1);
      assert.equal(found[0].nice, mainNice());
    } finally {
      await p.stop();
    }
  });

  it('is the only thread lowered in a process of its own (`parley start`): libuv’s pool, which fsyncs the journal, keeps the broker’s', async () => {
    const env = testEnv('embedded');
    const proc = await startParleyProcess(env);
    try {
      const pid = proc.child.proc.pid!;
      const threads = () => sampleThreads(pid);
      // A message through it, so the journal's fsyncs and the archive's writes have used the pool.
      const p = proc.parley;
      const [ann, ben] = [await registerUser(p), await registerUser(p)];
      const a = await connectDevice(p, 'tcp', ann);
      await a.sendAndAck(ben, { body: 'through the pool' });
      await a.close();
      let list = threads();
      for (let i = 0; i < 100 && !list.some((t) => t.name === CONSUMER_THREAD_NAME); i++) {
        await sleep(50);
        list = threads();
      }
      const main = list.find((t) => t.tid === pid)!;
      const lowered = list.filter((t) => t.nice !== main.nice);
      assert.deepEqual(lowered.map((t) => [t.name, t.nice]), [[CONSUMER_THREAD_NAME, Math.min(19, main.nice + 10)]], JSON.stringify(list));
      assert.ok(list.length > 5, 'the pool and V8’s threads are among those listed');
    } finally {
      await proc.kill('SIGTERM');
      fs.rmSync(env.PARLEY_DATA_DIR, { recursive: true, force: true });
    }
  });

  it('refuses a value outside 0–19 with a clear error', () => {
    for (const bad of ['-1', '20', 'ten', '2.5']) {
      assert.throws(() => loadConfig({ PARLEY_DATA_DIR: '/tmp/unused', PARLEY_CONSUMER_NICE: bad }), (err: unknown) => err instanceof ConfigError && /PARLEY_CONSUMER_NICE/.test((err as Error).message), bad);
    }
    assert.equal(loadConfig({ PARLEY_DATA_DIR: '/tmp/unused' }).consumerNice, 10);
  });
});

describe('a start that fails half-way, consumer thread already running', () => {
  it('ends the thread before it reports the failure', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    const env = testEnv('embedded', { PARLEY_HTTP_PORT: String(port) });
    // OS threads of this process: a Worker is one; the thread pool is already up from the suites above.
    const threads = () => fs.readdirSync('/proc/self/task').length;
    const before = threads();
    try {
      await assert.rejects(startTestParley('embedded', {}, { env, roles: ['archiver', 'analytics'] }), /EADDRINUSE/);
      for (let i = 0; i < 50 && threads() > before; i++) await sleep(100);
      assert.equal(threads(), before, 'no consumer thread left running');
    } finally {
      blocker.close();
      fs.rmSync(env.PARLEY_DATA_DIR, { recursive: true, force: true });
    }
  });
});
