// The real stack on loopback for tests and benchmarks:
//   tsx test/stack/cli.ts up [--only redis,ldap] [--serial] [--timeout SECONDS]
//   tsx test/stack/cli.ts down [--only ...] | status [--only ...] | logs NAME [-n LINES] [-f]
// `up` installs what is missing, starts what is not running, waits until each service answers, and
// writes <repo>/.stack.env. Everything it starts is recorded in <repo>/.stack/NAME.pid for `down`.
import { closeSync, existsSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { StackContext, StackService } from './service.ts';
import { formatDuration, logFile, pidFile, runDir, serviceContext, timed } from './context.ts';
import { removeStackEnv, stackEnvFile, writeStackEnv } from './env.ts';
import { livePid, stopPidFile, tail, waitUntil } from './processes.ts';

// In start order. Modules load lazily, so `--only` needs only the files of the services it names.
const catalogue: Array<[string, () => Promise<Record<string, unknown>>]> = [
  ['tools', () => import('./tools.ts')],
  ['redis', () => import('./redis.ts')],
  ['ldap', () => import('./ldap.ts')],
  ['kafka', () => import('./kafka.ts')],
  ['hbase', () => import('./hbase.ts')],
  ['minio', () => import('./minio.ts')],
];
const names = catalogue.map(([name]) => name);

function isService(value: unknown, name: string): value is StackService {
  const s = value as StackService;
  return (
    typeof s === 'object' && s !== null && s.name === name &&
    [s.install, s.start, s.healthy, s.env].every((f) => typeof f === 'function')
  );
}

async function loadService(name: string): Promise<StackService> {
  const load = catalogue.find(([n]) => n === name)![1];
  const mod = await load();
  const service = Object.values(mod).find((v) => isService(v, name));
  if (!service) throw new Error(`test/stack/${name}.ts exports no StackService named '${name}'`);
  return service;
}

interface Options {
  command: string;
  only: string[];
  serial: boolean;
  timeoutMs: number;
  rest: string[];
  lines: number;
  follow: boolean;
}

function parseArgs(argv: string[]): Options {
  const opts: Options = { command: argv[0] ?? 'help', only: names, serial: false, timeoutMs: 300_000, rest: [], lines: 60, follow: false };
  for (let i = 1; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const v = arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === '--only' || arg.startsWith('--only=')) {
      const wanted = value().split(',').map((s) => s.trim()).filter(Boolean);
      const unknown = wanted.filter((n) => !names.includes(n));
      if (unknown.length) throw new Error(`unknown service ${unknown.join(', ')}; known: ${names.join(', ')}`);
      opts.only = names.filter((n) => wanted.includes(n)); // keep start order
    } else if (arg === '--serial') opts.serial = true;
    else if (arg === '--timeout' || arg.startsWith('--timeout=')) opts.timeoutMs = Number(value()) * 1000;
    else if (arg === '-n' || arg === '--lines') opts.lines = Number(value());
    else if (arg === '-f' || arg === '--follow') opts.follow = true;
    else if (arg.startsWith('-')) throw new Error(`unknown option ${arg}`);
    else opts.rest.push(arg);
  }
  return opts;
}

/** The pid files of one service: NAME.pid, and NAME-PART.pid for a service of several processes. */
function pidFilesOf(name: string): string[] {
  const dir = runDir();
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f === `${name}.pid` || (f.startsWith(`${name}-`) && f.endsWith('.pid')))
    .map((f) => join(dir, f));
}

/** healthy() bounded in time: a stranger that accepts and never answers must not hang the CLI. */
function healthyWithin(service: StackService, ctx: StackContext, ms = 5000): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  return Promise.race([service.healthy(ctx).catch(() => false), timeout]).finally(() => clearTimeout(timer));
}

type Outcome = { name: string; ok: boolean; note: string; ms: number; env?: Record<string, string> };

async function bringUp(name: string, timeoutMs: number): Promise<Outcome> {
  const started = Date.now();
  const ctx = serviceContext(name);
  const done = (ok: boolean, note: string, env?: Record<string, string>): Outcome => ({ name, ok, note, ms: Date.now() - started, env });
  let service: StackService;
  try {
    service = await loadService(name);
  } catch (err) {
    ctx.progress(`cannot load: ${(err as Error).message}`);
    return done(false, 'module missing');
  }
  if (service.kind === 'tools') {
    try {
      await timed(ctx, 'install', () => service.install(ctx));
      if (!(await service.healthy(ctx))) throw new Error('not installed after install');
      return done(true, 'installed', service.env(ctx));
    } catch (err) {
      ctx.progress(`FAILED: ${(err as Error).message}`);
      return done(false, (err as Error).message.split('\n')[0]);
    }
  }
  const pidPath = pidFile(ctx, name);

  const running = livePid(pidPath);
  if (running !== undefined) {
    // Ours and alive: leave it alone if it answers (it may still be starting from an earlier run).
    const state = await waitUntil(() => healthyWithin(service, ctx), { timeoutMs: 30_000, alive: () => livePid(pidPath) !== undefined });
    if (state === 'ready') {
      ctx.progress(`already running (pid ${running}), healthy`);
      return done(true, `already running, pid ${running}`, service.env(ctx));
    }
    ctx.progress(`pid ${running} runs but does not answer; restarting it`);
    await stopAll(name);
  } else if (await healthyWithin(service, ctx)) {
    ctx.progress(`something not started by the stack already answers on ${name}'s port; stop it or remove it`);
    return done(false, 'port taken by a foreign process');
  }

  try {
    await timed(ctx, 'install', () => service.install(ctx));
    await timed(ctx, 'start', () => service.start(ctx));
    await timed(ctx, 'health check', async () => {
      const state = await waitUntil(() => healthyWithin(service, ctx), {
        timeoutMs,
        alive: () => livePid(pidPath) !== undefined,
      });
      if (state !== 'ready') throw new Error(state === 'died' ? 'the process exited' : `no answer after ${formatDuration(timeoutMs)}`);
    });
    ctx.progress(`healthy (pid ${livePid(pidPath)})`);
    return done(true, `started, pid ${livePid(pidPath)}`, service.env(ctx));
  } catch (err) {
    ctx.progress(`FAILED: ${(err as Error).message}`);
    const log = logFile(ctx, name);
    if (existsSync(log)) {
      console.error(`----- last lines of ${log} -----\n${tail(log, 40, true)}\n----- end of ${name} log -----`);
    }
    await stopAll(name); // a half-started server would only confuse the next `up`
    return done(false, (err as Error).message.split('\n')[0]);
  }
}

async function stopAll(name: string): Promise<string[]> {
  const results: string[] = [];
  // Helpers first (e.g. hbase-thrift before hbase), then the main process.
  const files = pidFilesOf(name).sort((a, b) => b.length - a.length);
  for (const file of files) results.push(`${file.slice(runDir().length + 1)}: ${await stopPidFile(file)}`);
  return results;
}

async function up(opts: Options): Promise<number> {
  const t0 = Date.now();
  console.log(`stack up: ${opts.only.join(', ')} (data in ${runDir()}, cache in ${serviceContext('stack').cacheDir})`);
  let outcomes: Outcome[];
  if (opts.serial) {
    outcomes = [];
    for (const name of opts.only) outcomes.push(await bringUp(name, opts.timeoutMs));
  } else {
    outcomes = await Promise.all(opts.only.map((name) => bringUp(name, opts.timeoutMs)));
  }
  const env = Object.assign({}, ...outcomes.filter((o) => o.ok).map((o) => o.env));
  if (Object.keys(env).length) writeStackEnv(env);
  console.log('');
  for (const o of outcomes) console.log(`  ${o.ok ? 'ok  ' : 'FAIL'} ${o.name.padEnd(6)} ${formatDuration(o.ms).padStart(9)}  ${o.note}`);
  const failed = outcomes.filter((o) => !o.ok);
  console.log(`\nstack up: ${failed.length ? `${failed.length} failed` : 'all healthy'} in ${formatDuration(Date.now() - t0)}; settings in ${stackEnvFile}`);
  return failed.length ? 1 : 0;
}

async function down(opts: Options): Promise<number> {
  const all = opts.only.length === names.length;
  for (const name of [...opts.only].reverse()) {
    const results = await stopAll(name);
    console.log(`[${name}] ${results.length ? results.join(', ') : 'nothing to stop'}`);
    try {
      const service = await loadService(name);
      removeStackEnv(Object.keys(service.env(serviceContext(name, () => {}))));
    } catch {
      /* a module that is missing wrote no settings */
    }
  }
  if (all && existsSync(runDir())) {
    // Anything else the stack recorded (a service renamed since it was started).
    for (const f of readdirSync(runDir()).filter((f) => f.endsWith('.pid'))) {
      console.log(`[stack] ${f}: ${await stopPidFile(join(runDir(), f))}`);
    }
  }
  return 0;
}

async function status(opts: Options): Promise<number> {
  let allUp = true;
  for (const name of opts.only) {
    const ctx = serviceContext(name, () => {});
    let service: StackService | undefined;
    try {
      service = await loadService(name);
    } catch {
      /* reported below */
    }
    const pids = pidFilesOf(name).map((f) => [f, livePid(f)] as const);
    const alive = pids.filter(([, pid]) => pid !== undefined).map(([f, pid]) => `${f.slice(runDir().length + 1, -4)}=${pid}`);
    const healthy = service ? await healthyWithin(service, ctx) : false;
    const state = !service ? 'no module' : service.kind === 'tools' ? (healthy ? 'installed' : 'MISSING') : healthy && alive.length ? 'running' : alive.length ? 'UNHEALTHY' : healthy ? 'FOREIGN' : 'stopped';
    if (state !== 'running' && state !== 'installed') allUp = false;
    const where = service && healthy ? Object.entries(service.env(ctx)).filter(([k]) => /URL|BROKERS|ENDPOINT|HOST|PORT/.test(k)).map(([k, v]) => `${k}=${v}`).join(' ') : '';
    console.log(`${name.padEnd(6)} ${state.padEnd(9)} ${(alive.join(' ') || '-').padEnd(24)} ${where}`);
  }
  console.log(`data ${runDir()}; settings ${existsSync(stackEnvFile) ? stackEnvFile : '(no .stack.env)'}`);
  return allUp ? 0 : 3;
}

async function logs(opts: Options): Promise<number> {
  const name = opts.rest[0];
  if (!name) {
    const dir = runDir();
    const available = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.log')).map((f) => f.slice(0, -4)) : [];
    console.error(`usage: logs NAME [-n LINES] [-f]; logs: ${available.join(', ') || 'none yet'}`);
    return 2;
  }
  const file = join(runDir(), `${name}.log`);
  if (!existsSync(file)) {
    console.error(`no log ${file}`);
    return 1;
  }
  process.stdout.write(tail(file, opts.lines) + '\n');
  if (!opts.follow) return 0;
  let offset = statSync(file).size;
  for (;;) {
    await new Promise((r) => setTimeout(r, 500));
    const size = statSync(file).size;
    if (size < offset) offset = 0; // truncated
    if (size > offset) {
      const fd = openSync(file, 'r');
      const buf = Buffer.alloc(size - offset);
      readSync(fd, buf, 0, buf.length, offset);
      closeSync(fd);
      process.stdout.write(buf);
      offset = size;
    }
  }
}

const usage = `usage: tsx test/stack/cli.ts COMMAND
  up     [--only ${names.join(',')}] [--serial] [--timeout SECONDS]   install, start, health-check, write .stack.env
  down   [--only ...]                                 stop what up started (by pid file)
  status [--only ...]                                 what runs where (exit 3 if something is not running)
  logs   NAME [-n LINES] [-f]                         tail .stack/NAME.log
Data: $PARLEY_STACK_DIR or <repo>/.stack; downloads: $PARLEY_STACK_CACHE or ~/.cache/parley-stack`;

async function main(): Promise<number> {
  const opts = parseArgs(process.argv.slice(2));
  switch (opts.command) {
    case 'up':
      return up(opts);
    case 'down':
      return down(opts);
    case 'status':
      return status(opts);
    case 'logs':
      return logs(opts);
    default:
      console.log(usage);
      return opts.command === 'help' || opts.command === '--help' ? 0 : 2;
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(2);
  },
);
