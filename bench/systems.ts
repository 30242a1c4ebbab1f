// The systems under test, each in its own process on loopback: Parley (embedded adapters, with Redis and
// Kafka from test/stack, and two such Parley nodes as one cluster), bare Aedes (bench/aedes-relay.ts) and
// Mosquitto (Debian package).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Redis } from 'ioredis';
import { livePid } from '../test/stack/processes.ts';
import { collectGarbage, INSPECT_ON_SIGNAL, takeHeapSnapshot, type HeapReading } from './inspector.ts';
import { shares } from './generators.ts';
import { ensureMosquitto, mosquittoConfig, mosquittoVersion } from './mosquitto.ts';
import { http, knownUsers, loginAll, registerAll, stillValid } from './users.ts';

export const SYSTEMS = ['parley-embedded', 'parley-redis', 'parley-cluster', 'aedes', 'mosquitto'] as const;
export type SystemName = (typeof SYSTEMS)[number];

export const LABELS: Record<SystemName, string> = {
  'parley-embedded': 'Parley (embedded)',
  'parley-redis': 'Parley (Redis+Kafka)',
  'parley-cluster': 'Parley cluster (2 nodes, Redis+Kafka)',
  aedes: 'bare Aedes',
  mosquitto: 'Mosquitto',
};

export interface Credentials {
  username?: string;
  password?: string;
}

/** One broker process of a system: every system has one, except a Parley cluster (one per node). */
export interface BrokerNode {
  /** Its name in bench/data/logs/<name>.log, in the CPU profiles' folder and in the results. */
  name: string;
  port: number;
  /** For CPU and memory. */
  pid: number;
  /** Parley only: its Prometheus endpoint, read around each step for GC, fsync and event-loop pauses. */
  metricsUrl?: string;
  /**
   * Node brokers (Parley, bare Aedes): a full, memory-reducing GC now, as V8 runs on its own after a
   * while idle, so memory can be read settled; answers with the main thread's heap after it. Absent for
   * Mosquitto, which has no garbage collector.
   */
  collectGarbage?(): Promise<HeapReading>;
  /** Node brokers: writes a heap snapshot of the main thread to `file` (--heap-snapshots). */
  heapSnapshot?(file: string): Promise<void>;
}

export interface SystemUnderTest {
  name: SystemName;
  /** Parley speaks the chat protocol (send/user/… → envelope on inbox/…, ack to the sender); the others relay topics. */
  parley: boolean;
  host: string;
  /** The broker processes; the scenarios place clients on them with nodeFor. */
  nodes: BrokerNode[];
  /** The backing services the brokers need (Redis, Kafka), for CPU. */
  backendPids: number[];
  version: string;
  notes: string[];
  credentials(user: string): Credentials;
  /** The topic a client publishes to for a message to `user`. */
  sendTopic(user: string): string;
  /** Parley only: a group owned by `owner`, through POST /v1/groups. */
  createGroup?(owner: string, name: string, members: string[]): Promise<{ ok: true; id: string } | { ok: false; reason: string }>;
  /**
   * Null while every broker process runs; once one has ended on its own (a crash, the OOM killer), what
   * ended it: which process, its exit code or signal, and the last error line of its log.
   */
  died(): Death | null;
  stop(): Promise<void>;
}

/** How a broker process ended on its own: what ended it (see deathOf), and its log's last lines. */
export interface Death {
  message: string;
  logTail: string;
}

/**
 * Where the i-th client of a scenario connects (the i-th of its users, or of its idle connections): node
 * i mod N. In a cluster of two, neighbours in the list are on different nodes.
 */
export const nodeFor = (sut: SystemUnderTest, i: number): BrokerNode => sut.nodes[i % sut.nodes.length];

export interface StartContext {
  repo: string;
  /** Where Parley's sources are run from: the working tree (repo) or an exported commit (--parley-ref). */
  parleySrc: string;
  /** The commit of parleySrc when it is an export, for the results. */
  parleyCommit?: string;
  /** `parley start --role …`: all (the default, every role in one process) or e.g. broker. */
  parleyRole: string;
  /** dist: built, as `npm start` (since round 27) and the Docker image run it; tsx: the sources through tsx (--parley-build). */
  parleyBuild: ParleyBuild;
  /** Extra PARLEY_* settings for the measured Parley processes (--parley-env). */
  parleyEnv: Record<string, string>;
  /** bench/data: kept between runs, gitignored. */
  dataDir: string;
  users: readonly string[];
  redisUrl: string;
  redisPrefix: string;
  /** Redis's appendfsync while the Redis+Kafka systems run (--redis-appendfsync); unset: as Redis has it. */
  redisAppendfsync?: RedisFsync;
  /** Kafka of test/stack for Parley (Redis+Kafka) and the cluster, host:port. */
  kafkaBrokers: string;
  kafkaTopic: string;
  /** Write a V8 CPU profile of the broker process into this folder (Parley and bare Aedes). */
  cpuProfDir?: string;
  progress(line: string): void;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Polls `check` until it holds; fails early if the child exits. `log`: its output file (absent when inherited). */
export async function waitFor(what: string, check: () => Promise<boolean>, child: ChildProcess, log?: string, timeoutMs = 60_000): Promise<void> {
  // The log's tail as of the failure.
  const where = () => (log ? `; log ${log}:\n${tail(log)}` : '');
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode} during start-up${where()}`);
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not start within ${timeoutMs / 1000} s${where()}`);
}

/**
 * `died()` of one process (see SystemUnderTest): null while it runs. The log's tail is read at the call: the
 * caller keeps the Death before it starts a new process of the system, which writes its own log over it.
 */
export function deathOf(name: string, child: ChildProcess, log: string): Death | null {
  if (child.exitCode === null && child.signalCode === null) return null;
  const how = child.signalCode ? `was killed by ${child.signalCode}` : `exited with code ${child.exitCode}`;
  const logTail = tail(log, 40);
  const lines = logTail.split('\n').map((l) => l.trim()).filter(Boolean);
  // Not a stack frame ("at f (file:line)"), which may name a file called errors.ts.
  const errors = lines.filter((l) => !l.startsWith('at ') && /error|fatal|panic|abort/i.test(l));
  const error = errors.at(-1);
  const last = lines.at(-1);
  const said = error ? `: ${error.slice(0, 300)}` : last ? `; its log's last line: ${last.slice(0, 300)}` : '';
  return { message: `${name} ${how}${said}`, logTail };
}

function tail(file: string, lines = 30): string {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function spawnLogged(command: string, args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv; log: string }): ChildProcess {
  fs.mkdirSync(path.dirname(opts.log), { recursive: true });
  const fd = fs.openSync(opts.log, 'w');
  const child = spawn(command, args, { cwd: opts.cwd, env: opts.env, stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  return child;
}

export async function stopChild(child: ChildProcess, timeoutMs = 20_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGINT');
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  await exited;
  clearTimeout(timer);
}

const settingsNote = (ctx: StartContext) => {
  const pairs = Object.entries(ctx.parleyEnv).map(([k, v]) => `${k}=${v}`);
  return pairs.length ? `; settings ${pairs.join(' ')}` : '';
};

/** The environment without any PARLEY_* of the caller's shell: each system gets exactly the settings given here. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PARLEY_')) env[k] = v;
  return { ...env, ...extra };
}

/**
 * The Node options `npm start` gives Parley (package.json's start script, between `node` and what it runs:
 * `dist/cli/parley.js`, or `--import tsx` before round 27): the bench and `bench:backlog` run Parley with
 * them, so they measure what users run, of the commit measured.
 */
export function npmStartNodeFlags(dir: string): string[] {
  const start = startScript(dir);
  const m = /\bnode((?:\s+--[\w-]+(?:=\S+)?)*)\s+(?:--import\b|dist\/cli\/parley\.js\b)/.exec(start);
  if (!m) throw new Error(`package.json's start script does not run "node [options] dist/cli/parley.js" nor "node [options] --import …": ${start}`);
  return m[1].trim().split(/\s+/).filter(Boolean);
}

/** How that commit's `npm start` runs Parley: built (dist/cli/parley.js, from round 27 on) or through tsx. */
export function npmStartBuild(dir: string): ParleyBuild {
  return /\sdist\/cli\/parley\.js\b/.test(startScript(dir)) ? 'dist' : 'tsx';
}

/** What node runs after its options: the built CLI, or the TypeScript one through tsx. */
export const parleyEntry = (build: ParleyBuild): string[] => (build === 'dist' ? ['dist/cli/parley.js'] : ['--import', 'tsx', 'cli/parley.ts']);

const startScript = (dir: string) => (JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start;

// One folder per process: tsx's loader thread writes a profile of its own next to the main thread's.
const nodeArgs = (ctx: StartContext, name: string) => (ctx.cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', path.join(ctx.cpuProfDir, name)] : []);

interface ParleyProcess {
  name: string;
  role: string;
  child: ChildProcess;
  base: string;
  mqttPort: number;
  log: string;
}

async function spawnParley(ctx: StartContext, name: string, dataDir: string, extraEnv: Record<string, string>, profile: boolean): Promise<ParleyProcess> {
  const [mqttPort, httpPort] = [await freePort(), await freePort()];
  const log = path.join(ctx.dataDir, 'logs', `${name}.log`);
  const env = cleanEnv({
    PARLEY_HOST: '127.0.0.1',
    PARLEY_MQTT_PORT: String(mqttPort),
    PARLEY_HTTP_PORT: String(httpPort),
    PARLEY_DATA_DIR: dataDir,
    PARLEY_LOG_LEVEL: 'warn',
    // As `npm start` runs it (package.json).
    UV_THREADPOOL_SIZE: '16',
    ...extraEnv,
    ...(profile ? ctx.parleyEnv : {}),
  });
  const args = [...(profile ? nodeArgs(ctx, name) : []), INSPECT_ON_SIGNAL, ...npmStartNodeFlags(ctx.parleySrc), ...parleyEntry(ctx.parleyBuild), 'start', '--role', ctx.parleyRole];
  const child = spawnLogged(process.execPath, args, { cwd: ctx.parleySrc, env, log });
  const base = `http://127.0.0.1:${httpPort}`;
  const healthy = async () => (await canConnect(mqttPort)) && (await http(base, '/healthz').then((r) => r.status === 200, () => false));
  await waitFor(`Parley (${name})`, healthy, child, log);
  return { name, role: ctx.parleyRole, child, base, mqttPort, log };
}

/** Registers the bench users that the kept directory lacks, with a Parley of its own on that directory. */
export async function ensureUsers(ctx: StartContext): Promise<void> {
  const master = path.join(ctx.dataDir, 'users');
  fs.mkdirSync(master, { recursive: true });
  const known = knownUsers(master);
  const missing = ctx.users.filter((u) => !known.has(u));
  if (missing.length === 0) return;
  ctx.progress(`registering ${missing.length} bench users (scrypt, ~60 ms of a core each; kept in bench/data/users for later runs)`);
  const p = await spawnParley({ ...ctx, parleyRole: 'all' }, 'register', master, {}, false);
  try {
    await registerAll(p.base, missing, ctx.progress);
  } finally {
    await stopChild(p.child);
  }
}

/** A fresh data folder holding a copy of the kept users (the embedded directory reads users.json). */
function freshDataDir(ctx: StartContext, name: string): string {
  const dir = path.join(ctx.dataDir, 'run', name);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(path.join(ctx.dataDir, 'users', 'users.json'), path.join(dir, 'users.json'));
  return dir;
}

export const PARLEY_BUILDS = ['tsx', 'dist'] as const;
export type ParleyBuild = (typeof PARLEY_BUILDS)[number];

/**
 * For --parley-build dist: `npm run build` in Parley's folder (tsc into dist/, as the Docker image's build
 * stage does). An exported commit is built once (dist/.built names it); the working tree every run, since
 * its sources may have changed since the last build. tsc writes over dist/ rather than the bench emptying it
 * first: a Parley that `npm start` runs from that folder meanwhile keeps the files it may still load.
 */
export function buildParley(ctx: Pick<StartContext, 'parleySrc' | 'parleyCommit' | 'progress'>): void {
  const marker = path.join(ctx.parleySrc, 'dist', '.built');
  if (ctx.parleyCommit && fs.existsSync(marker) && fs.readFileSync(marker, 'utf8').trim() === ctx.parleyCommit) return;
  ctx.progress(`building Parley in ${path.relative(process.cwd(), ctx.parleySrc) || '.'} (npm run build: tsc into dist/, a few seconds)`);
  const r = spawnSync('npm', ['run', 'build'], { cwd: ctx.parleySrc, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`--parley-build dist: npm run build failed in ${ctx.parleySrc}: ${(r.stdout + r.stderr).slice(-2000)}`);
  if (ctx.parleyCommit) fs.writeFileSync(marker, `${ctx.parleyCommit}\n`);
}

/** `roles`: `parley start --role …` of each process (a cluster's nodes may differ). */
function parleyVersion(ctx: StartContext, roles: string[]): string {
  const pkg = JSON.parse(fs.readFileSync(path.join(ctx.parleySrc, 'package.json'), 'utf8')) as { version: string };
  const run = ctx.parleyBuild === 'dist' ? 'node dist/cli/parley.js' : 'parley';
  const role = roles.length === 1 ? `${run} start --role ${roles[0]}` : roles.map((r, i) => `node ${i + 1}: ${run} start --role ${r}`).join(', ');
  if (ctx.parleyCommit) return `${pkg.version} (commit ${ctx.parleyCommit.slice(0, 10)}, exported with --parley-ref; ${role})`;
  const commit = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ctx.repo, encoding: 'utf8' }).stdout.trim();
  const dirty = spawnSync('git', ['status', '--porcelain', '--', 'broker', 'common', 'auth', 'cli'], { cwd: ctx.repo, encoding: 'utf8' }).stdout.trim();
  return `${pkg.version} (working tree at ${commit || 'no git'}${dirty ? ', with uncommitted changes' : ''}; ${role})`;
}

/**
 * Exports a commit of Parley (git archive) into bench/data/src/<sha>, sharing the repo's node_modules,
 * so a run can measure a fixed version while the working tree is being edited.
 */
export function exportParley(repo: string, dataDir: string, ref: string): { dir: string; commit: string } {
  const rev = spawnSync('git', ['rev-parse', '--verify', `${ref}^{commit}`], { cwd: repo, encoding: 'utf8' });
  if (rev.status !== 0) throw new Error(`--parley-ref ${ref}: not a commit (${rev.stderr.trim()})`);
  const commit = rev.stdout.trim();
  const dir = path.join(dataDir, 'src', commit.slice(0, 12));
  const done = path.join(dir, '.exported');
  if (!fs.existsSync(done)) {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    const tar = spawnSync('sh', ['-c', `git archive ${commit} | tar -x -C "${dir}"`], { cwd: repo, encoding: 'utf8' });
    if (tar.status !== 0) throw new Error(`exporting ${commit}: ${tar.stderr}`);
    fs.symlinkSync(path.join(repo, 'node_modules'), path.join(dir, 'node_modules'));
    fs.writeFileSync(done, `${commit}\n`);
  }
  return { dir, commit };
}

const stopAll = async (processes: ParleyProcess[]) => {
  await Promise.all(processes.map((p) => stopChild(p.child)));
};

/** `processes`: one, or a cluster's nodes in order (groups are made through the first). */
function parleySystem(name: SystemName, processes: ParleyProcess[], tokens: Map<string, string>, ctx: StartContext, backendPids: number[], notes: string[]): SystemUnderTest {
  const first = processes[0];
  return {
    name,
    parley: true,
    host: '127.0.0.1',
    nodes: processes.map((p) => ({
      name: p.name,
      port: p.mqttPort,
      pid: p.child.pid!,
      metricsUrl: `${p.base}/metrics`,
      collectGarbage: () => collectGarbage(p.child.pid!, p.log),
      heapSnapshot: (file: string) => takeHeapSnapshot(p.child.pid!, p.log, file),
    })),
    backendPids,
    version: parleyVersion(ctx, processes.map((p) => p.role)),
    notes,
    credentials: (user) => ({ username: user, password: tokens.get(user) }),
    sendTopic: (user) => `send/user/${user}`,
    async createGroup(owner, name, members) {
      const res = await http(first.base, '/v1/groups', { token: tokens.get(owner), body: { name, members } });
      if (res.status === 201 && typeof res.body?.id === 'string') return { ok: true, id: res.body.id as string };
      return { ok: false, reason: `POST /v1/groups answered ${res.status} ${JSON.stringify(res.body).slice(0, 200)}` };
    },
    died: () => processes.map((p) => deathOf(p.name, p.child, p.log)).find((d) => d !== null) ?? null,
    stop: () => stopAll(processes),
  };
}

async function startParleyEmbedded(ctx: StartContext): Promise<SystemUnderTest> {
  const p = await spawnParley(ctx, 'parley-embedded', freshDataDir(ctx, 'parley-embedded'), {}, true);
  try {
    // Embedded tokens live in the process: every start signs everyone in again.
    ctx.progress(`parley-embedded: signing in ${ctx.users.length} users`);
    const tokens = await loginAll(p.base, ctx.users, ctx.progress);
    return parleySystem('parley-embedded', [p], tokens, ctx, [], [
      `embedded adapters: offline queue, outbox and event log in fsync'd files (PARLEY_EMBEDDED_FSYNC=true, the default), archive in classic-level, dedupe/presence/tokens in memory; roles in the process: ${ctx.parleyRole}${settingsNote(ctx)}`,
    ]);
  } catch (err) {
    await stopChild(p.child);
    throw err;
  }
}

async function redisAnswers(url: string): Promise<boolean> {
  const r = new Redis(url, { lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
  r.on('error', () => {});
  try {
    await r.connect();
    return (await r.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

function canReach(hostPort: string): Promise<boolean> {
  const [host, port] = hostPort.split(':');
  return new Promise((resolve) => {
    const sock = net.connect({ host, port: Number(port) });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

/** The stack's server `name`, if it runs (read as the stack's own CLI reads its pid files). */
function stackPid(repo: string, name: string): number[] {
  const pid = livePid(path.join(repo, '.stack', `${name}.pid`));
  return pid === undefined ? [] : [pid];
}

/** Redis and Kafka of test/stack (started with its CLI when they are not running); their pids from .stack/. */
async function ensureStack(ctx: StartContext): Promise<number[]> {
  const missing = async () => {
    const out: ('redis' | 'kafka')[] = [];
    if (!(await redisAnswers(ctx.redisUrl))) out.push('redis');
    if (!(await canReach(ctx.kafkaBrokers.split(',')[0]))) out.push('kafka');
    return out;
  };
  const first = await missing();
  if (first.length) {
    ctx.progress(`${first.join(' and ')} not answering; starting with test/stack/cli.ts up --only ${first.join(',')}`);
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'test/stack/cli.ts', 'up', '--only', first.join(',')], { cwd: ctx.repo, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`could not start ${first.join(', ')}: ${(r.stderr || r.stdout).slice(-2000)}`);
    // test/stack's servers are up now; one given with --redis-url or --kafka-brokers elsewhere may still not be.
    const still = await missing();
    const where = { redis: `Redis at ${ctx.redisUrl} (--redis-url)`, kafka: `Kafka at ${ctx.kafkaBrokers} (--kafka-brokers)` };
    if (still.length) throw new Error(`${still.map((m) => where[m]).join(' and ')} not answering, with test/stack's running`);
  }
  return [...stackPid(ctx.repo, 'redis'), ...stackPid(ctx.repo, 'kafka')];
}

export const REDIS_FSYNC = ['always', 'everysec', 'no'] as const;
export type RedisFsync = (typeof REDIS_FSYNC)[number];

/**
 * Redis's appendfsync for a run: read, and set to `wanted` when given (CONFIG SET: to see what `always`, which
 * test/stack and docker/compose.yaml run, costs against everysec or no). `restore` puts back what it was. A Redis that refuses
 * CONFIG (a managed one) is measured as it is, its policy noted as unknown, unless a policy was asked for.
 */
export async function redisFsyncFor(url: string, wanted?: RedisFsync): Promise<{ policy: string; restore(): Promise<void> }> {
  const r = new Redis(url, { maxRetriesPerRequest: 2 });
  try {
    let before: string;
    try {
      [, before] = (await r.config('GET', 'appendfsync')) as string[];
    } catch (err) {
      if (wanted) throw new Error(`--redis-appendfsync ${wanted}: Redis at ${url.replace(/\/\/[^@/]*@/, '//')} refused CONFIG GET appendfsync (${(err as Error).message})`);
      return { policy: 'unknown (CONFIG refused)', restore: async () => {} };
    }
    if (!wanted || wanted === before) return { policy: before, restore: async () => {} };
    await r.config('SET', 'appendfsync', wanted);
    return {
      policy: wanted,
      restore: async () => {
        const again = new Redis(url, { maxRetriesPerRequest: 2 });
        try {
          await again.config('SET', 'appendfsync', before);
        } finally {
          again.disconnect();
        }
      },
    };
  } finally {
    r.disconnect();
  }
}

/** Removes what earlier runs left under the bench's key prefix, except tokens (kept to skip signing in again). */
async function clearRedisLeftovers(url: string, prefix: string): Promise<void> {
  const r = new Redis(url, { maxRetriesPerRequest: 2 });
  try {
    for (const kind of ['offline', 'dedupe', 'presence', 'outbox']) {
      let cursor = '0';
      do {
        const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}${kind}:*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length) await r.unlink(...keys);
      } while (cursor !== '0');
    }
  } finally {
    r.disconnect();
  }
}

/** The settings that put Parley on Redis and Kafka of test/stack; every node of a cluster gets the same. */
const redisKafkaEnv = (ctx: StartContext): Record<string, string> => ({
  PARLEY_REDIS_URL: ctx.redisUrl,
  PARLEY_REDIS_KEY_PREFIX: ctx.redisPrefix,
  PARLEY_KAFKA_BROKERS: ctx.kafkaBrokers,
  PARLEY_KAFKA_TOPIC: ctx.kafkaTopic,
});

const redisKafkaNotes = (ctx: StartContext, roles: string, appendfsync: string): string[] => [
  `Redis adapters (tokens, throttle, dedupe, presence, offline queue, groups, outbox) on ${ctx.redisUrl} with key prefix "${ctx.redisPrefix}", appendfsync ${appendfsync}`,
  `event log on Kafka ${ctx.kafkaBrokers}, topic ${ctx.kafkaTopic}; directory and archive embedded (no LDAP, no HBase); ${roles}${settingsNote(ctx)}`,
];

/**
 * Tokens live in Redis for days: keep them in bench/data and sign in only users whose token stopped
 * working. Any node's HTTP API will do (they share the token store): a cluster's nodes sign in a share each.
 */
async function redisTokens(ctx: StartContext, name: SystemName, processes: ParleyProcess[]): Promise<Map<string, string>> {
  const cache = path.join(ctx.dataDir, 'redis-tokens.json');
  const saved = fs.existsSync(cache) ? (JSON.parse(fs.readFileSync(cache, 'utf8')) as { prefix: string; tokens: Record<string, string> }) : null;
  const previous = new Map(saved?.prefix === ctx.redisPrefix ? Object.entries(saved.tokens).filter(([u]) => ctx.users.includes(u)) : []);
  const tokens = await stillValid(processes[0].base, previous);
  const missing = ctx.users.filter((u) => !tokens.has(u));
  if (missing.length) {
    ctx.progress(`${name}: signing in ${missing.length} users (${tokens.size} kept tokens still valid)`);
    const signedIn = await Promise.all(shares(missing, processes.length).map((part, i) => loginAll(processes[i].base, part, ctx.progress)));
    for (const [u, t] of signedIn.flatMap((m) => [...m])) tokens.set(u, t);
    const all = { ...(saved?.prefix === ctx.redisPrefix ? saved.tokens : {}), ...Object.fromEntries(tokens) };
    fs.writeFileSync(cache, JSON.stringify({ prefix: ctx.redisPrefix, tokens: all }));
  }
  return tokens;
}

/** A Parley process to start: its name (log, data folder, results), `parley start --role`, extra settings. */
interface ParleyPlan {
  name: string;
  role: string;
  env: Record<string, string>;
}

/** Parley processes on Redis and Kafka of test/stack (nothing left under the bench's prefix by an earlier run). */
async function startOnRedisKafka(ctx: StartContext, system: SystemName, plans: ParleyPlan[], roles: string, more: string[] = []): Promise<SystemUnderTest> {
  const backendPids = await ensureStack(ctx);
  await clearRedisLeftovers(ctx.redisUrl, ctx.redisPrefix);
  const fsync = await redisFsyncFor(ctx.redisUrl, ctx.redisAppendfsync);
  const started: ParleyProcess[] = [];
  try {
    // One after the other: each picks its free ports while those before it already listen on theirs.
    for (const p of plans) started.push(await spawnParley({ ...ctx, parleyRole: p.role }, p.name, freshDataDir(ctx, p.name), { ...redisKafkaEnv(ctx), ...p.env }, true));
    const tokens = await redisTokens(ctx, system, started);
    const sut = parleySystem(system, started, tokens, ctx, backendPids, [...redisKafkaNotes(ctx, roles, fsync.policy), ...more]);
    return {
      ...sut,
      stop: async () => {
        try {
          await sut.stop();
        } finally {
          await fsync.restore();
        }
      },
    };
  } catch (err) {
    await stopAll(started);
    await fsync.restore();
    throw err;
  }
}

const startParleyRedis = (ctx: StartContext) =>
  startOnRedisKafka(ctx, 'parley-redis', [{ name: 'parley-redis', role: ctx.parleyRole, env: {} }], `roles in the process: ${ctx.parleyRole}`);

/**
 * Two Parley nodes on the same Redis key prefix (so they share tokens, queues and presence) and Kafka
 * topic, each with its own node id, ports and data folder. Node 1 runs the roles of --parley-role (all:
 * broker and consumers); node 2 only the broker: one archiver and one analytics for the deployment is
 * enough, and a second would only split Kafka's partitions with the first.
 */
const startParleyCluster = (ctx: StartContext) =>
  startOnRedisKafka(
    ctx,
    'parley-cluster',
    [ctx.parleyRole, 'broker'].map((role, i) => ({ name: `parley-cluster-node${i + 1}`, role, env: { PARLEY_NODE_ID: String(i + 1) } })),
    `node 1 (PARLEY_NODE_ID=1) runs the roles ${ctx.parleyRole}, node 2 (PARLEY_NODE_ID=2) the broker alone (one archiver and analytics for both)`,
    [
      'clients: user i on node i mod 2 (user 0 on node 1); in 1:1 chat user i sends to user i+1, so every message crosses nodes (a Redis pub/sub hop); ' +
        'offline drain: sender on node 1, receiver reconnects to node 2; idle connections and group members split evenly over the nodes; ' +
        'broker CPU and RSS are the sum of both processes (per node in the results file)',
    ],
  );

async function startAedes(ctx: StartContext): Promise<SystemUnderTest> {
  const port = await freePort();
  const log = path.join(ctx.dataDir, 'logs', 'aedes.log');
  const child = spawnLogged(process.execPath, [...nodeArgs(ctx, 'aedes'), INSPECT_ON_SIGNAL, '--import', 'tsx', 'bench/aedes-relay.ts'], {
    cwd: ctx.repo,
    env: cleanEnv({ BENCH_PORT: String(port) }),
    log,
  });
  await waitFor('bare Aedes', () => canConnect(port), child, log);
  const version = JSON.parse(fs.readFileSync(path.join(ctx.repo, 'node_modules', 'aedes', 'package.json'), 'utf8')).version as string;
  return {
    name: 'aedes',
    parley: false,
    host: '127.0.0.1',
    nodes: [{ name: 'aedes', port, pid: child.pid!, collectGarbage: () => collectGarbage(child.pid!, log), heapSnapshot: (file: string) => takeHeapSnapshot(child.pid!, log, file) }],
    backendPids: [],
    version: `aedes ${version} on Node ${process.version}`,
    notes: ['default in-memory persistence, no hooks, TCP_NODELAY'],
    credentials: () => ({}),
    sendTopic: (user) => `inbox/${user}`,
    died: () => deathOf('bare Aedes', child, log),
    stop: () => stopChild(child),
  };
}

async function startMosquitto(ctx: StartContext, queued: number): Promise<SystemUnderTest> {
  const binary = ensureMosquitto(ctx.progress);
  const port = await freePort();
  const dir = path.join(ctx.dataDir, 'mosquitto');
  fs.mkdirSync(dir, { recursive: true });
  const conf = path.join(dir, 'mosquitto.conf');
  fs.writeFileSync(conf, mosquittoConfig(port, queued));
  const log = path.join(ctx.dataDir, 'logs', 'mosquitto.log');
  const child = spawnLogged(binary, ['-c', conf], { cwd: dir, env: cleanEnv({}), log });
  await waitFor('Mosquitto', () => canConnect(port), child, log);
  return {
    name: 'mosquitto',
    parley: false,
    host: '127.0.0.1',
    nodes: [{ name: 'mosquitto', port, pid: child.pid! }],
    backendPids: [],
    version: `mosquitto ${mosquittoVersion(binary)} (Debian package)`,
    notes: [`set_tcp_nodelay true, allow_anonymous true, persistence false, max_queued_messages ${queued}, other settings default (max_inflight_messages 20)`],
    credentials: () => ({}),
    sendTopic: (user) => `inbox/${user}`,
    died: () => deathOf('Mosquitto', child, log),
    stop: () => stopChild(child),
  };
}

export function startSystem(name: SystemName, ctx: StartContext, opts: { mosquittoQueued: number }): Promise<SystemUnderTest> {
  switch (name) {
    case 'parley-embedded':
      return startParleyEmbedded(ctx);
    case 'parley-redis':
      return startParleyRedis(ctx);
    case 'parley-cluster':
      return startParleyCluster(ctx);
    case 'aedes':
      return startAedes(ctx);
    case 'mosquitto':
      return startMosquitto(ctx, opts.mosquittoQueued);
  }
}
