// README's first command: `npm start` builds Parley (tsc into dist/) and runs the built CLI, the JavaScript the
// Docker image runs, with the Node options package.json gives it. Run here as a user would, on free ports and
// a data folder of its own: it answers /healthz, serves the web client and the dashboard that the build copies,
// and a message goes from one device to another with its ack.
import assert from './helpers/assert.ts';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort, npmStartNodeFlags } from '../bench/systems.ts';
import { connectDevice, httpClient, registerUser, type TestParley } from './helpers/parley.ts';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Every process below `pid` (Linux: each task's `children`). */
function descendants(pid: number): number[] {
  const out: number[] = [];
  const walk = (p: number) => {
    let tasks: string[] = [];
    try {
      tasks = fs.readdirSync(`/proc/${p}/task`);
    } catch {
      return;
    }
    for (const t of tasks) {
      let children = '';
      try {
        children = fs.readFileSync(`/proc/${p}/task/${t}/children`, 'utf8');
      } catch {
        continue;
      }
      for (const c of children.split(' ').filter(Boolean).map(Number)) {
        out.push(c);
        walk(c);
      }
    }
  };
  walk(pid);
  return out;
}

const cmdline = (pid: number) => {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
};

test('npm start: builds dist/, runs dist/cli/parley.js with the start options, and carries a message', { timeout: 180_000 }, async (t) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-npm-start-'));
  const [mqttPort, httpPort] = [await freePort(), await freePort()];
  const env = { ...process.env, PARLEY_HOST: '127.0.0.1', PARLEY_MQTT_PORT: String(mqttPort), PARLEY_HTTP_PORT: String(httpPort), PARLEY_TLS_PORT: '0', PARLEY_DATA_DIR: dataDir, PARLEY_LOG_LEVEL: 'warn' };
  // Its own process group, so that npm, the shell and node stop together.
  const child = spawn('npm', ['start'], { cwd: REPO, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      process.kill(-child.pid!, 'SIGINT');
      const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    }
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  const base = `http://127.0.0.1:${httpPort}`;
  const deadline = Date.now() + 150_000;
  for (;;) {
    assert.equal(child.exitCode, null, `npm start exited with ${child.exitCode}:\n${output.slice(-3000)}`);
    if (await fetch(`${base}/healthz`).then((r) => r.ok, () => false)) break;
    assert.ok(Date.now() < deadline, `npm start did not answer /healthz in time:\n${output.slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 200));
  }

  assert.match(output, /npm run build/, 'the build ran first (prestart)');
  assert.ok(fs.existsSync(path.join(REPO, 'dist', 'cli', 'parley.js')));
  const node = descendants(child.pid!).map(cmdline).find((argv) => argv.some((a) => a.endsWith('dist/cli/parley.js')));
  assert.ok(node, `no process runs dist/cli/parley.js under npm start: ${descendants(child.pid!).map((p) => cmdline(p).join(' ')).join(' | ')}`);
  const i = node.findIndex((a) => a.endsWith('dist/cli/parley.js'));
  assert.deepEqual(node.slice(1, i), npmStartNodeFlags(REPO), "node runs with the start script's options");
  assert.deepEqual(node.slice(i + 1), ['start']);
  assert.ok(!node.includes('--import'), 'no loader: plain JavaScript');

  // What the build copies beside tsc's output: the web client, the dashboard and the uPlot it bundles.
  for (const [url, type] of [['/', /text\/html/], ['/web/app.js', /javascript/], ['/dashboard', /text\/html/], ['/dashboard/vendor/uPlot.iife.min.js', /javascript/]] as const) {
    const res = await fetch(`${base}${url}`);
    assert.equal(res.status, 200, `GET ${url} from the built Parley`);
    assert.match(res.headers.get('content-type') ?? '', type, url);
    assert.ok((await res.text()).length > 100, `${url} has a body`);
  }

  const p = { running: { mqttPort, httpPort }, http: httpClient(base) } as unknown as TestParley;
  const [alice, bob] = [await registerUser(p), await registerUser(p)];
  const a = await connectDevice(p, 'tcp', alice);
  const b = await connectDevice(p, 'ws', bob);
  const ack = await a.sendAndAck(bob, { body: 'built' });
  assert.equal(ack.kind, 'ack');
  const [m] = await b.waitForInbox(1);
  assert.equal(m.id, ack.id);
  assert.equal(m.from, alice);
  assert.equal(m.body, 'built');
  await Promise.all([a.close(), b.close()]);
});
