// `npm run bench`: Parley (one process, and a cluster of two) side by side with Mosquitto and bare Aedes in one run (issue 8).
// Every system runs in its own process on loopback; load comes from forked generator processes on raw
// mqtt-packet sockets. Prints progress per step, a table at the end, and writes
// bench/results/<timestamp>.json, .svg and -tail.svg (and, after a full run, bench/charts/latest.svg and latest-tail.svg).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadConfig, type Config } from '../common/config.ts';
import { renderChart, renderTailChart } from './chart.ts';
import { Generators } from './generators.ts';
import { machineInfo } from './procstat.ts';
import { renderFlame } from './flame.ts';
import { busiestProfile, profileText, stallText, summarizeProfile } from './profile.ts';
import { fullReport } from './report.ts';
import { computeRatios, measuresAsFullRun, type BenchResults, type SystemInfo } from './results.ts';
import { chat, connections, drain, fanout, type ScenarioOptions } from './scenarios.ts';
import { buildParley, ensureUsers, exportParley, LABELS, npmStartBuild, PARLEY_BUILDS, REDIS_FSYNC, startSystem, SYSTEMS, type RedisFsync, type StartContext, type Death, type ParleyBuild, type SystemName, type SystemUnderTest } from './systems.ts';
import { userName } from './users.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..');
const SCENARIOS = ['connections', 'chat', 'fanout', 'drain'] as const;
type Scenario = (typeof SCENARIOS)[number];

const HELP = `npm run bench -- [options]

  --quick                 small numbers, < 1 minute: proves the harness works (CI); no thresholds
  --users N               users online in the 1:1 scenario (default 1000; quick 20)
  --rates a,b,c           messages/s per user for each step (default 0.25,0.5,1,2,3,5,7.5,10,12.5,15,20,25,30,40)
  --step-seconds S        length of each step's send window (default 5; quick 1)
  --hold-seconds S        after each 1:1 ladder, its step at half of the peak once more for S seconds, the figure
                          the issue's p99 target is read from (default 30; quick 1; 0: not)
  --p99-limit MS          a step whose p99 is above this is past the limit (default 50)
  --group-size G          members of the fan-out group, sender included (default 100; quick 10)
  --group-rates a,b       messages/s of the group's sender for each step (default 2,5,10,20,50,100,200,300,400,600,800,1000)
  --drain N               messages queued for the offline user (default 10000; quick 500)
  --connections N         idle connections to open (default 10000; quick 200)
  --source-addresses N    127.0.0.2… addresses the connections come from (default 8)
  --retries N             runs again of a step past the limit, against a neighbour's burst (default 2; quick 0)
  --noisy-cpu PCT         a step past the limit while other processes used > PCT % of a core is run again
                          without counting as a retry (default 50), at most --max-disturbed times (default 4)
  --quiet-cpu PCT         before each measurement wait until other processes use < PCT % of a core (default 25)
  --quiet-wait S          … but at most S seconds (default 60; quick 0 = do not wait)
  --workers N             load generator processes (default: number of cores, at least 2)
  --body-bytes N          size of each message body (default 64; at most the longest body Parley accepts, 65536
                          unless --parley-env raises PARLEY_MAX_BODY_BYTES)
  --systems a,b           any of ${SYSTEMS.join(', ')} (default all)
  --scenarios a,b         any of ${SCENARIOS.join(', ')} (default all)
  --redis-url URL         Redis for Parley (Redis+Kafka) and the cluster (default redis://127.0.0.1:16379, test/stack's)
  --kafka-brokers H:P     Kafka for them (default 127.0.0.1:19092, test/stack's)
  --kafka-topic T         its topic (default parley-bench.messages)
  --redis-prefix P        key prefix of the bench in that Redis (default parley-bench:)
  --redis-appendfsync F   always, everysec or no: that Redis's fsync policy while the Redis+Kafka systems run
                          (set with CONFIG SET, put back after; default: as the Redis has it, test/stack's always)
  --parley-ref REF        run Parley from this commit (exported to bench/data/src) instead of the working tree
  --parley-env K=V,…      extra PARLEY_* settings for the measured Parley processes (e.g. PARLEY_EMBEDDED_FSYNC=false
                          to see what the disk costs); recorded in the results
  --parley-build B        dist: \`npm run build\` first, then node dist/cli/parley.js, as \`npm start\` and the Docker
                          image run Parley; tsx: its TypeScript sources through tsx (default: as the measured
                          commit's \`npm start\` runs it: dist from round 27 on, tsx before)
  --parley-role R         parley start --role R: all (default: broker, archiver, notifier and analytics in one
                          process, as \`npm start\`) or e.g. broker to measure the broker alone; in the cluster
                          node 1 runs R, node 2 always the broker alone
  --cpu-prof              run Parley and bare Aedes under node --cpu-prof and list their hottest functions
  --heap-snapshots        in the connections scenario, heap snapshots of each Node broker before and after
                          (bench/results/heaps-*/) and what one idle connection keeps, by constructor
  --data-dir DIR          bench state kept between runs: users, tokens, logs (default bench/data)
  --report FILE           print the tables of an earlier results file and redraw its charts (.svg and -tail.svg
                          beside it; bench/charts/latest*.svg too with --update-chart); runs nothing
  --update-chart          with --report: also write bench/charts/latest.svg and latest-tail.svg
  --json-out FILE         where to write the results (default bench/results/<timestamp>.json)
`;

function options(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      help: { type: 'boolean', short: 'h' },
      quick: { type: 'boolean' },
      users: { type: 'string' },
      rates: { type: 'string' },
      'step-seconds': { type: 'string' },
      'hold-seconds': { type: 'string' },
      'p99-limit': { type: 'string' },
      drain: { type: 'string' },
      'group-size': { type: 'string' },
      'group-rates': { type: 'string' },
      connections: { type: 'string' },
      'source-addresses': { type: 'string' },
      workers: { type: 'string' },
      retries: { type: 'string' },
      'noisy-cpu': { type: 'string' },
      'max-disturbed': { type: 'string' },
      'quiet-cpu': { type: 'string' },
      'quiet-wait': { type: 'string' },
      'body-bytes': { type: 'string' },
      systems: { type: 'string' },
      scenarios: { type: 'string' },
      'redis-url': { type: 'string' },
      'redis-prefix': { type: 'string' },
      'redis-appendfsync': { type: 'string' },
      'kafka-brokers': { type: 'string' },
      'kafka-topic': { type: 'string' },
      'cpu-prof': { type: 'boolean' },
      'heap-snapshots': { type: 'boolean' },
      'parley-ref': { type: 'string' },
      'parley-role': { type: 'string' },
      'parley-build': { type: 'string' },
      'parley-env': { type: 'string' },
      'json-out': { type: 'string' },
      'data-dir': { type: 'string' },
      report: { type: 'string' },
      'update-chart': { type: 'boolean' },
    },
  });
  if (values.help) {
    console.log(HELP);
    process.exit(0);
  }
  const quick = values.quick ?? false;
  const num = (name: keyof typeof values, full: number, q: number, min = 1) => {
    const raw = values[name];
    const v = raw === undefined ? (quick ? q : full) : Number(raw);
    if (!Number.isFinite(v) || v < min) throw new Error(`--${String(name)} must be a number ≥ ${min}`);
    return v;
  };
  const list = <T extends string>(raw: string | undefined, known: readonly T[], name: string): T[] => {
    if (!raw) return [...known];
    const picked = raw.split(',').map((s) => s.trim()) as T[];
    const bad = picked.filter((p) => !known.includes(p));
    if (bad.length) throw new Error(`--${name}: unknown ${bad.join(', ')}; known: ${known.join(', ')}`);
    return known.filter((k) => picked.includes(k));
  };
  const rates = (values.rates ?? (quick ? '2,5' : '0.25,0.5,1,2,3,5,7.5,10,12.5,15,20,25,30,40')).split(',').map(Number);
  const groupRates = (values['group-rates'] ?? (quick ? '5,10' : '2,5,10,20,50,100,200,300,400,600,800,1000')).split(',').map(Number);
  if ([...rates, ...groupRates].some((r) => !(r > 0))) throw new Error('--rates and --group-rates must be positive numbers');
  const env = parleyEnv(values['parley-env']);
  const bodyBytes = num('body-bytes', 64, 64, 24);
  // Every system gets the same traffic, and Parley refuses a body over its limit: checked here, before anything starts.
  const { maxBodyBytes } = parleyConfig(env);
  if (bodyBytes > maxBodyBytes) throw new Error(`--body-bytes must be ≤ ${maxBodyBytes}, the longest body Parley accepts (PARLEY_MAX_BODY_BYTES; raise it with --parley-env)`);
  return {
    quick,
    users: num('users', 1000, 20, 2),
    rates,
    groupRates,
    groupSize: num('group-size', 100, 10, 2),
    stepMs: num('step-seconds', 5, 1, 0.2) * 1000,
    holdMs: num('hold-seconds', 30, 1, 0) * 1000,
    p99LimitMs: num('p99-limit', 50, 50),
    drainMessages: num('drain', 10_000, 500),
    connections: num('connections', 10_000, 200),
    sourceAddresses: num('source-addresses', 8, 4),
    retries: num('retries', 2, 0, 0),
    noisyCpu: num('noisy-cpu', 50, 50, 0),
    maxDisturbed: num('max-disturbed', 4, 0, 0),
    quietCpu: num('quiet-cpu', 25, 25, 0),
    quietWaitMs: num('quiet-wait', 60, 0, 0) * 1000,
    workers: num('workers', Math.max(2, os.cpus().length), 2),
    bodyBytes,
    systems: list(values.systems, SYSTEMS, 'systems'),
    scenarios: list(values.scenarios, SCENARIOS, 'scenarios'),
    redisUrl: values['redis-url'] ?? 'redis://127.0.0.1:16379',
    redisPrefix: values['redis-prefix'] ?? 'parley-bench:',
    redisAppendfsync: appendfsync(values['redis-appendfsync']),
    kafkaBrokers: values['kafka-brokers'] ?? '127.0.0.1:19092',
    kafkaTopic: values['kafka-topic'] ?? 'parley-bench.messages',
    cpuProf: values['cpu-prof'] ?? false,
    heapSnapshots: values['heap-snapshots'] ?? false,
    parleyRef: values['parley-ref'],
    parleyRole: values['parley-role'] ?? 'all',
    parleyBuild: parleyBuild(values['parley-build']),
    parleyEnv: env,
    jsonOut: values['json-out'],
    report: values.report,
    updateChart: values['update-chart'] ?? false,
    dataDir: path.resolve(values['data-dir'] ?? path.join(HERE, 'data')),
    asFullRun: measuresAsFullRun(values),
  };
}

/** Redis's fsync policy for the Redis+Kafka systems' run (left as Redis has it when not given). */
function appendfsync(text: string | undefined): RedisFsync | undefined {
  if (text === undefined) return undefined;
  if (!(REDIS_FSYNC as readonly string[]).includes(text)) throw new Error(`--redis-appendfsync takes ${REDIS_FSYNC.join(', ')}, not ${JSON.stringify(text)}`);
  return text as RedisFsync;
}

/** How the measured Parley runs, when given: built (dist/) or from its sources through tsx. */
function parleyBuild(text: string | undefined): ParleyBuild | undefined {
  if (text === undefined) return undefined;
  if (!(PARLEY_BUILDS as readonly string[]).includes(text)) throw new Error(`--parley-build takes ${PARLEY_BUILDS.join(' or ')}, not ${JSON.stringify(text)}`);
  return text as ParleyBuild;
}

/** The measured Parley's configuration with `env`'s settings: a value Parley would refuse is an error of --parley-env. */
function parleyConfig(env: Record<string, string>): Readonly<Config> {
  try {
    return loadConfig(env);
  } catch (err) {
    throw new Error(`--parley-env: ${(err as Error).message}`);
  }
}

/** `K=V,K=V` of PARLEY_* settings for the measured Parley processes (experiments: what a setting costs). */
function parleyEnv(text: string | undefined): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of (text ?? '').split(',').filter(Boolean)) {
    const m = /^(PARLEY_[A-Z0-9_]+)=(.*)$/.exec(pair.trim());
    if (!m) throw new Error(`--parley-env takes PARLEY_NAME=value pairs separated by commas, not ${JSON.stringify(pair)}`);
    env[m[1]] = m[2];
  }
  return env;
}

const stamp = () => new Date().toISOString().replace(/[:.]/g, '-');

function log(line: string): void {
  const t = new Date().toISOString().slice(11, 19);
  console.log(`[${t}] ${line}`);
}

async function main(): Promise<number> {
  let o: ReturnType<typeof options>;
  try {
    o = options(process.argv.slice(2));
  } catch (err) {
    // A bad option is the user's to fix: its message, not a stack.
    console.error(`${(err as Error).message}\n(npm run bench -- --help, or parley bench --help, lists the options)`);
    return 2;
  }
  if (o.report) return reprint(path.resolve(o.report), o.updateChart);
  const started = new Date();
  const resultsDir = path.join(HERE, 'results');
  fs.mkdirSync(resultsDir, { recursive: true });
  const jsonOut = path.resolve(o.jsonOut ?? path.join(resultsDir, `${stamp()}.json`));
  const profileDir = o.cpuProf ? path.join(resultsDir, `profiles-${stamp()}`) : undefined;
  const machine = machineInfo();
  log(`parley bench${o.quick ? ' (quick)' : ''}: ${machine.cores} cores ${machine.model}, ${(machine.memTotalBytes / 2 ** 30).toFixed(1)} GiB, Node ${machine.node}, load average ${machine.loadAverage.join(' ')}`);
  log(`systems ${o.systems.join(', ')}; scenarios ${o.scenarios.join(', ')}; ${o.users} users, rates ${o.rates.join(',')}/user/s (1:1 in all: ${o.rates.map((r) => Math.round(r * o.users).toLocaleString('en-US')).join(', ')} msg/s), ${o.stepMs / 1000} s steps; ${o.workers} generator processes`);

  const dataDir = o.dataDir;
  const exported = o.parleyRef ? exportParley(REPO, dataDir, o.parleyRef) : null;
  // The 1:1 users, the fan-out group (its first members) and the idle devices all come from one set.
  const users = Array.from({ length: Math.max(o.users, o.groupSize, 2) }, (_, i) => userName(i));
  const ctx: StartContext = {
    repo: REPO,
    parleySrc: exported?.dir ?? REPO,
    parleyCommit: exported?.commit,
    parleyRole: o.parleyRole,
    parleyBuild: o.parleyBuild ?? npmStartBuild(exported?.dir ?? REPO),
    parleyEnv: o.parleyEnv,
    dataDir,
    users,
    redisUrl: o.redisUrl,
    redisPrefix: o.redisPrefix,
    redisAppendfsync: o.redisAppendfsync,
    kafkaBrokers: o.kafkaBrokers,
    kafkaTopic: o.kafkaTopic,
    cpuProfDir: profileDir,
    progress: (line) => log(line),
  };
  const results: BenchResults = {
    version: 1,
    startedAt: started.toISOString(),
    finishedAt: '',
    quick: o.quick,
    machine,
    options: { ...o, parleyBuild: ctx.parleyBuild, jsonOut },
    systems: [],
    chat: [],
    drain: [],
    connections: [],
    fanout: [],
    groups: { groupSize: o.groupSize, notes: [] },
    ratios: { chatPeak: {}, chatP99AtHalfPeak: {}, fanoutPeak: {}, drainMs: {}, bytesPerConnection: {}, marginalBytesPerConnection: {}, settledBytesPerConnection: {}, connectPerSec: {} },
    profiles: {},
    errors: [],
  };
  const save = () => {
    results.finishedAt = new Date().toISOString();
    results.ratios = computeRatios(results);
    fs.mkdirSync(path.dirname(jsonOut), { recursive: true });
    fs.writeFileSync(jsonOut, JSON.stringify(results, null, 1));
  };

  if (o.systems.some((s) => s.startsWith('parley'))) {
    if (ctx.parleyBuild === 'dist') buildParley(ctx);
    await ensureUsers(ctx);
  }
  const scenarioOptions: ScenarioOptions = {
    users,
    rates: o.rates,
    stepMs: o.stepMs,
    holdMs: o.holdMs,
    warmupMs: o.quick ? 300 : 2000,
    drainTimeoutMs: o.quick ? 10_000 : 15_000,
    bodyBytes: o.bodyBytes,
    p99LimitMs: o.p99LimitMs,
    drainMessages: o.drainMessages,
    connections: o.connections,
    sourceAddresses: o.sourceAddresses,
    retries: o.retries,
    noisyCpu: o.noisyCpu,
    maxDisturbed: o.maxDisturbed,
    settleMs: o.quick ? 100 : 1000,
    groupSize: o.groupSize,
    groupRates: o.groupRates,
    quietCpu: o.quietCpu,
    quietWaitMs: o.quietWaitMs,
    heapSnapshotDir: o.heapSnapshots ? path.join(resultsDir, `heaps-${stamp()}`) : undefined,
    progress: log,
  };
  const gens = Generators.start(o.workers, profileDir);
  const start = async (name: SystemName) => {
    try {
      return await startSystem(name, ctx, { mosquittoQueued: Math.max(100_000, o.drainMessages * 2) });
    } catch (err) {
      results.errors.push({ system: name, scenario: 'start', message: (err as Error).message });
      log(`!! ${LABELS[name]} did not start: ${(err as Error).message}`);
      return null;
    }
  };
  const nodesOf = (sut: SystemUnderTest) => sut.nodes.map((n) => ({ name: n.name, pid: n.pid, port: n.port }));
  try {
    for (const name of o.systems) {
      log(`== ${LABELS[name]}: starting`);
      const first = await start(name);
      if (!first) continue;
      let sut: SystemUnderTest = first;
      const info: SystemInfo = { name, label: LABELS[name], version: sut.version, notes: sut.notes, nodes: nodesOf(sut) };
      results.systems.push(info);
      log(`   ${sut.version}; ${info.nodes!.map((n) => `${n.name} pid ${n.pid} port ${n.port}`).join(', ')}${sut.backendPids.length ? `; backend pids ${sut.backendPids.join(",")}` : ''}`);
      // A death is the system's own failure, not the harness's: recorded with its log's tail, and the system
      // started again. `when`: the scenario it died in, or "after X" when it died between scenarios (working
      // through a backlog the last step left).
      const restart = async (when: string, death: Death, left: Scenario[]): Promise<SystemUnderTest | null> => {
        (results.crashes ??= []).push({ system: name, scenario: when, message: death.message, logTail: death.logTail });
        log(`!! ${LABELS[name]} died ${when.startsWith('after') ? when : `during ${when}`}: ${death.message}${left.length ? `; starting it again for ${left.join(', ')}` : ''}`);
        try {
          // The rest of it: a cluster's other node, Redis's fsync policy put back.
          await sut.stop();
        } catch (err) {
          results.errors.push({ system: name, scenario: when, message: `stopping what was left of it: ${(err as Error).message}` });
          log(`!! ${LABELS[name]}: stopping what was left of it: ${(err as Error).message}`);
          return null;
        }
        if (!left.length) return null;
        const again = await start(name);
        if (!again) return null;
        info.notes = [...info.notes, `died ${when.startsWith('after') ? when : `during ${when}`} (${death.message}); started again (${nodesOf(again).map((n) => `${n.name} pid ${n.pid}`).join(', ')}) for ${left.join(', ')}`];
        info.nodes = [...info.nodes!, ...nodesOf(again)];
        return again;
      };
      try {
        scenarios: for (const [i, scenario] of o.scenarios.entries()) {
          const before = sut.died();
          if (before) {
            const again = await restart(i > 0 ? `after ${o.scenarios[i - 1]}` : 'after its start', before, o.scenarios.slice(i));
            if (!again) break;
            sut = again;
          }
          // A scenario the broker died in before it measured anything runs once more on a new process.
          for (let attempt = 1; ; attempt++) {
            let measured = true;
            try {
              await runScenario(scenario, name, sut, gens, scenarioOptions, results);
            } catch (err) {
              measured = false;
              // A scenario cut short by the broker's death is told below, as the death. Its clients may see
              // the sockets reset before this process sees the broker's exit: give that a moment.
              if (!(await diedSoon(sut))) {
                results.errors.push({ system: name, scenario, message: (err as Error).message });
                log(`!! ${LABELS[name]} / ${scenario}: ${(err as Error).message}`);
              }
              await gens.all(() => ({ type: 'close' })).catch(() => undefined);
            }
            const death = sut.died();
            if (!death) break;
            const again = await restart(scenario, death, measured || attempt > 1 ? o.scenarios.slice(i + 1) : o.scenarios.slice(i));
            if (!again) break scenarios;
            sut = again;
            if (measured || attempt > 1) break;
          }
        }
      } finally {
        await sut.stop();
      }
      // Each broker process wrote its profile as it exited.
      if (profileDir) for (const node of sut.nodes) reportProfile(profileDir, node.name, name, results);
      save();
    }
  } finally {
    await gens.stop();
  }
  if (profileDir) {
    const file = busiestProfile(path.join(profileDir, 'generator0'));
    if (file) log(`   CPU profile of generator 0: ${path.relative(process.cwd(), file)}; heaviest functions (self time):\n${profileText(summarizeProfile(file).self.slice(0, 15))}`);
  }

  save();
  // A baseline that died is a finding of the run; Parley dying is a failure of the product measured.
  const parleyDied = (results.crashes ?? []).some((c) => c.system.startsWith('parley'));
  // Only a run measured as the full one refreshes the charts BENCHMARKS.md shows (not an experiment's ladder).
  const complete = o.asFullRun && results.errors.length === 0 && !parleyDied && o.systems.length === SYSTEMS.length && o.scenarios.includes('chat');
  const charts = writeCharts(results, jsonOut, complete);
  console.log('\n' + fullReport(results) + '\n');
  log(`results: ${path.relative(process.cwd(), jsonOut)}; charts: ${charts.map((f) => path.relative(process.cwd(), f)).join(', ')}${complete ? ' (and bench/charts/latest*.svg)' : ''}`);
  return results.errors.length || parleyDied ? 1 : 0;
}

/** The broker's death, if it is dead or dies within `ms` (an exit not yet seen when its sockets reset). */
async function diedSoon(sut: SystemUnderTest, ms = 2000): Promise<Death | null> {
  const until = performance.now() + ms;
  for (;;) {
    const death = sut.died();
    if (death || performance.now() >= until) return death;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * The charts beside the results (`<name>.svg`, and `<name>-tail.svg` when the ladders have timelines); with
 * `latest`, also as bench/charts/latest.svg and latest-tail.svg. Returns the files written beside the results.
 */
function writeCharts(results: BenchResults, jsonFile: string, latest: boolean): string[] {
  const base = jsonFile.replace(/\.json$/, '');
  const written: string[] = [];
  for (const [suffix, svg] of [['', renderChart(results)], ['-tail', renderTailChart(results)]] as const) {
    const latestFile = path.join(HERE, 'charts', `latest${suffix}.svg`);
    if (svg === null) {
      // Results of an older bench, made the latest: no tail chart of another run stays beside their chart.
      if (latest) fs.rmSync(latestFile, { force: true });
      continue;
    }
    fs.writeFileSync(`${base}${suffix}.svg`, svg);
    written.push(`${base}${suffix}.svg`);
    if (latest) fs.writeFileSync(latestFile, svg);
  }
  return written;
}

function reprint(file: string, updateChart: boolean): number {
  const results = JSON.parse(fs.readFileSync(file, 'utf8')) as BenchResults;
  writeCharts(results, file, updateChart);
  console.log(fullReport(results));
  return 0;
}

async function runScenario(scenario: Scenario, name: SystemName, sut: Awaited<ReturnType<typeof startSystem>>, gens: Generators, o: ScenarioOptions, results: BenchResults) {
  log(`-- ${LABELS[name]}: ${scenario}`);
  if (scenario === 'connections') results.connections.push(await connections(sut, gens, o));
  else if (scenario === 'chat') results.chat.push(await chat(sut, gens, { ...o, users: o.users.slice(0, results.options.users as number) }));
  else if (scenario === 'fanout') {
    const r = await fanout(sut, gens, o);
    if (r) results.fanout.push(r);
    else results.groups.notes.push(`${LABELS[name]}: skipped, this Parley build has no groups`);
  }
  else results.drain.push(await drain(sut, o));
}

/** `name`: a broker process, the system's name or a cluster node's. */
function reportProfile(dir: string, name: string, system: SystemName, results: BenchResults): void {
  const file = busiestProfile(path.join(dir, name));
  if (!file) return;
  // Stalls are listed for the measured steps only (not start-up, sign-in or the connection bursts).
  const windows = [
    ...results.chat.filter((c) => c.system === system).flatMap((c) => c.steps.map((st) => ({ st, what: '1:1 chat' }))),
    ...results.fanout.filter((c) => c.system === system).flatMap((c) => c.steps.map((st) => ({ st, what: 'group' }))),
  ]
    .filter(({ st }) => st.monotonicUs)
    .map(({ st, what }) => ({ label: `${what} ${st.targetPerSec.toLocaleString('en-US')} msg/s`, fromUs: st.monotonicUs![0], toUs: st.monotonicUs![1] }));
  const summary = summarizeProfile(file, 25, windows);
  results.profiles[name] = summary;
  const text = `self time:\n${profileText(summary.self)}\n\nParley's functions, inclusive time:\n${profileText(summary.parley)}\n\nlongest busy stretches (the event loop held):\n${stallText(summary.stalls)}\n`;
  fs.writeFileSync(file.replace(/\.cpuprofile$/, '.top.txt'), text);
  const flame = file.replace(/\.cpuprofile$/, '.flame.svg');
  const steps = windows.length ? `the measured steps only: ${windows.map((w) => w.label).join(', ')}` : 'the whole run';
  fs.writeFileSync(flame, renderFlame(JSON.parse(fs.readFileSync(file, 'utf8')), { title: `${LABELS[name as SystemName] ?? name}: its main thread's CPU (node --cpu-prof)`, subtitle: steps, windows: windows.length ? windows : undefined }));
  log(`   CPU profile of ${LABELS[name as SystemName] ?? name}: ${path.relative(process.cwd(), file)}; flame graph ${path.relative(process.cwd(), flame)}; heaviest functions (% of busy time), self:\n${profileText(summary.self.slice(0, 15))}`);
  if (summary.parley.length) log(`   …and Parley's own functions, inclusive:\n${profileText(summary.parley.slice(0, 15))}`);
  if (summary.stalls.length) log(`   …and the longest busy stretches (the event loop held):\n${stallText(summary.stalls.slice(0, 5))}`);
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err instanceof Error ? err.stack : err);
    process.exit(1);
  },
);
