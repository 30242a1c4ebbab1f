// Static checks of docker/: no Docker engine runs on CI, so the compose stack, the images and the Kubernetes
// manifests are validated as files. Tools (Debian packages, never installed by this test):
//   docker-compose  -> `docker-compose config` validates compose.yaml without an engine; its Python has PyYAML
//   haproxy         -> `haproxy -c` validates haproxy.cfg
//   hadolint        -> optional; the Dockerfile lint runs only when it is on PATH
import { describe, test } from 'node:test';
import assert from './helpers/assert.ts';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { npmStartNodeFlags } from '../bench/systems.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dockerDir = join(root, 'docker');
const composeFile = join(dockerDir, 'compose.yaml');
const envExample = join(dockerDir, '.env.example');
const read = (...parts: string[]) => readFileSync(join(dockerDir, ...parts), 'utf8');

type Json = any; // parsed YAML: shapes are asserted field by field below

// ---- tools -----------------------------------------------------------------------------------------------

function which(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const file = join(dir, cmd);
    try { accessSync(file, constants.X_OK); return file; } catch { /* next */ }
  }
  return undefined;
}

function requireTool(cmd: string, debianPackage: string): string {
  const file = which(cmd);
  if (!file) {
    throw new Error(`${cmd} is not installed: the docker/ checks need the Debian package "${debianPackage}" ` +
      `(apt-get install -y --no-install-recommends ${debianPackage}); this test installs nothing itself`);
  }
  return file;
}

function run(cmd: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}) {
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', input: opts.input, env: opts.env ?? process.env, timeout: 60_000 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

// Compose must see only the env file, not whatever the developer's shell exports.
const bareEnv = (): NodeJS.ProcessEnv => ({ PATH: process.env.PATH, HOME: process.env.HOME, LANG: 'C.UTF-8' });

function compose(envFile: string, ...args: string[]) {
  return run(requireTool('docker-compose', 'docker-compose'), ['-f', composeFile, '--env-file', envFile, ...args], { env: bareEnv() });
}

// docker-compose is a Python program that depends on PyYAML: its interpreter is the YAML parser we trust.
let python: string | undefined;
function pythonWithYaml(): string {
  if (python) return python;
  const candidates: string[] = [];
  const dc = which('docker-compose');
  const shebang = dc ? /^#!\s*(\S+)/.exec(readFileSync(dc, 'utf8').split('\n')[0] ?? '')?.[1] : undefined;
  if (shebang) candidates.push(shebang);
  candidates.push('/usr/bin/python3', 'python3');
  for (const c of candidates) {
    const r = spawnSync(c, ['-c', 'import yaml'], { encoding: 'utf8' });
    if (!r.error && r.status === 0) return (python = c);
  }
  throw new Error('no Python with PyYAML found: install the Debian package "docker-compose" (it pulls in python3-yaml)');
}

function parseYaml(text: string): Json[] {
  const code = 'import sys, json, yaml\nprint(json.dumps(list(yaml.safe_load_all(sys.stdin))))';
  const r = run(pythonWithYaml(), ['-c', code], { input: text });
  assert.equal(r.status, 0, `YAML does not parse:\n${r.stderr}`);
  return JSON.parse(r.stdout);
}

// ---- compose.yaml ----------------------------------------------------------------------------------------

const PARLEY_ENV = ['PARLEY_NODE_ID', 'PARLEY_REDIS_URL', 'PARLEY_KAFKA_BROKERS', 'PARLEY_HBASE_HOST', 'PARLEY_HBASE_PORT',
  'PARLEY_LDAP_URL', 'PARLEY_LDAP_BASE_DN', 'PARLEY_LDAP_USERS_DN', 'PARLEY_LDAP_ADMIN_DN', 'PARLEY_LDAP_ADMIN_PASSWORD',
  'PARLEY_S3_ENDPOINT', 'PARLEY_S3_ACCESS_KEY', 'PARLEY_S3_SECRET_KEY', 'PARLEY_S3_BUCKET', 'PARLEY_S3_REGION',
  'PARLEY_DATA_DIR', 'PARLEY_MQTT_PORT', 'PARLEY_HTTP_PORT'];
const BACKENDS = ['redis', 'kafka', 'hbase', 'openldap', 'minio'];

let resolved: Json | undefined;
function resolvedCompose(): Json {
  if (resolved) return resolved;
  const r = compose(envExample, 'config');
  assert.equal(r.status, 0, `docker-compose config failed:\n${r.stderr}`);
  return (resolved = parseYaml(r.stdout)[0]);
}
const parleyServices = (c: Json) =>
  Object.entries<Json>(c.services).filter(([, s]) => s.build?.dockerfile === 'docker/Dockerfile');
const roleOf = (s: Json): string | undefined => {
  const cmd: string[] = Array.isArray(s.command) ? s.command : String(s.command ?? '').split(/\s+/);
  const i = cmd.indexOf('--role');
  return i >= 0 ? cmd[i + 1] : undefined;
};

describe('docker/compose.yaml', () => {
  test('docker-compose accepts it with the variables of .env.example', () => {
    const r = compose(envExample, 'config', '-q');
    assert.equal(r.status, 0, `docker-compose config -q failed:\n${r.stderr}`);
  });

  test('refuses to start when the secrets are not set', () => {
    const dir = mkdtempSync(join(tmpdir(), 'parley-compose-'));
    try {
      const empty = join(dir, 'empty.env');
      writeFileSync(empty, '');
      const r = compose(empty, 'config', '-q');
      assert.notEqual(r.status, 0, 'compose accepted a stack without any secrets');
      assert.match(r.stderr, /set [A-Z0-9_]+ in docker\/\.env/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('three brokers, the archiver and the analytics role, each with its own node id and data volume', () => {
    const parley = parleyServices(resolvedCompose());
    const roles = parley.map(([, s]) => roleOf(s)).sort();
    assert.deepEqual(roles, ['analytics', 'archiver', 'broker', 'broker', 'broker']);
    const ids = parley.map(([, s]) => s.environment?.PARLEY_NODE_ID);
    assert.equal(new Set(ids).size, ids.length, `PARLEY_NODE_ID repeats: ${ids}`);
    const brokers = parley.filter(([, s]) => roleOf(s) === 'broker');
    assert.deepEqual(brokers.map(([, s]) => s.environment.PARLEY_NODE_ID).sort(), ['1', '2', '3']);
    const volumes = parley.map(([, s]) => (s.volumes as string[]).find((v) => v.split(':')[1] === s.environment.PARLEY_DATA_DIR));
    assert.ok(volumes.every(Boolean), 'every Parley process mounts a volume at PARLEY_DATA_DIR');
    assert.equal(new Set(volumes.map((v) => v!.split(':')[0])).size, volumes.length, 'data volumes are not shared');
  });

  test('Parley gets every setting it reads, pointing at services of this file', () => {
    const c = resolvedCompose();
    const services = new Set(Object.keys(c.services));
    for (const [name, s] of parleyServices(c)) {
      const env = s.environment ?? {};
      for (const key of PARLEY_ENV) assert.ok(env[key], `${name}: ${key} is not set`);
      const hosts = [new URL(env.PARLEY_REDIS_URL).hostname, new URL(env.PARLEY_LDAP_URL).hostname,
        new URL(env.PARLEY_S3_ENDPOINT).hostname, env.PARLEY_HBASE_HOST,
        ...String(env.PARLEY_KAFKA_BROKERS).split(',').map((b) => b.split(':')[0])];
      for (const h of hosts) assert.ok(services.has(h), `${name}: ${h} is not a service in compose.yaml`);
    }
  });

  test('healthchecks, and dependencies that wait for them', () => {
    const c = resolvedCompose();
    for (const [name, s] of Object.entries<Json>(c.services)) {
      const oneShot = s.restart === 'no';
      if (!oneShot) assert.ok(s.healthcheck?.test?.length && !s.healthcheck.disable, `${name} has no healthcheck`);
      for (const [dep, how] of Object.entries<Json>(s.depends_on ?? {})) {
        const target = c.services[dep];
        assert.ok(target, `${name} depends on unknown ${dep}`);
        if (how.condition === 'service_healthy') assert.ok(target.healthcheck?.test, `${name} waits for ${dep}, which has no healthcheck`);
        if (how.condition === 'service_completed_successfully') assert.equal(target.restart, 'no', `${dep} is not a one-shot`);
      }
    }
    for (const [name, s] of parleyServices(c)) {
      for (const b of BACKENDS) assert.equal(s.depends_on?.[b]?.condition, 'service_healthy', `${name} does not wait for ${b}`);
    }
  });

  test('backends: Redis with AOF, Kafka 3.9 in KRaft mode, HAProxy and LDAP with their files', () => {
    const c = resolvedCompose();
    const redisCmd = [c.services.redis.command].flat().join(' ');
    assert.match(redisCmd, /--appendonly yes/);
    // An ack promises the message survives a Redis crash: everysec answers before the write in some cases.
    assert.match(redisCmd, /--appendfsync always/);
    const kafka = c.services.kafka;
    assert.match(kafka.image, /^apache\/kafka:3\.9\./);
    assert.match(kafka.environment.KAFKA_PROCESS_ROLES, /broker/);
    assert.match(kafka.environment.KAFKA_PROCESS_ROLES, /controller/);
    assert.equal(kafka.environment.KAFKA_ZOOKEEPER_CONNECT, undefined);
    assert.ok(c.services.haproxy.volumes.some((v: string) => v.startsWith(join(dockerDir, 'haproxy.cfg') + ':')));
    assert.ok(c.services.openldap.volumes.some((v: string) => v.startsWith(join(dockerDir, 'ldap') + ':')));
    assert.ok(existsSync(join(c.services.hbase.build.context, 'Dockerfile')), 'hbase build context has no Dockerfile');
    const published = (c.services.haproxy.ports as Json[]).map((p) => String(typeof p === 'object' ? p.published : p));
    for (const port of ['1883', '8080']) assert.ok(published.some((p) => p.includes(port)), `haproxy does not publish ${port}`);
  });

  test('no secret is written in compose.yaml; .env.example defines every required variable', () => {
    const text = read('compose.yaml');
    const [raw] = parseYaml(text);
    const envs: [string, Json][] = [['x-parley-env', raw['x-parley-env']],
      ...Object.entries<Json>(raw.services).map(([n, s]): [string, Json] => [n, s.environment])];
    for (const [name, env] of envs) {
      for (const [key, value] of Object.entries<Json>(env ?? {})) {
        if (/PASSWORD|SECRET|ACCESS_KEY|REDIS_URL|CLI_AUTH/.test(key) && !key.startsWith('<<')) {
          assert.match(String(value), /\$\{[A-Z0-9_]+:\?/, `${name}.${key} must come from the env file`);
        }
      }
    }
    const example = new Map(read('.env.example').split('\n').filter((l) => /^[A-Z0-9_]+=/.test(l))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    for (const [, name] of text.matchAll(/\$\{([A-Z0-9_]+):\?/g)) assert.ok(example.get(name!), `.env.example lacks ${name}`);
    for (const [key, value] of example) {
      if (/PASSWORD|SECRET/.test(key)) assert.ok(!text.includes(value), `the example value of ${key} is in compose.yaml`);
    }
    assert.match(read('.gitignore'), /^\.env$/m, 'docker/.env must be git-ignored');
  });
});

// ---- haproxy.cfg -----------------------------------------------------------------------------------------

function haproxySections(text: string): Map<string, string[]> {
  const sections = new Map<string, string[]>();
  let current: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trimEnd();
    if (!line.trim()) continue;
    if (/^\S/.test(line)) sections.set(line.trim(), (current = []));
    else current.push(line.trim());
  }
  return sections;
}

describe('docker/haproxy.cfg', () => {
  test('haproxy -c accepts it (broker names resolve only inside compose)', () => {
    const r = run(requireTool('haproxy', 'haproxy'), ['-c', '-f', join(dockerDir, 'haproxy.cfg')]);
    const out = r.stdout + r.stderr;
    assert.equal(r.status, 0, out);
    assert.match(out, /Configuration file is valid/);
    const unexpected = out.split('\n').filter((l) => /\[(WARNING|ALERT)\]/.test(l) && !/could not resolve address/.test(l));
    assert.deepEqual(unexpected, [], 'haproxy -c warned about more than unresolvable broker names');
  });

  test('MQTT hashed on the client id, HTTP round robin, every server a broker of compose.yaml; the dashboard to the analytics role', () => {
    const sections = haproxySections(read('haproxy.cfg'));
    const backend = (name: string) => sections.get(`backend ${name}`) ?? assert.fail(`no backend ${name}`);
    assert.ok(backend('mqtt_brokers').some((l) => /^balance hash .*mqtt_field_value\(connect,client_identifier\)/.test(l)));
    assert.ok(backend('http_brokers').includes('balance roundrobin'));
    assert.ok(backend('http_brokers').some((l) => l.startsWith('timeout tunnel')), 'WebSockets need timeout tunnel');
    assert.ok(backend('http_brokers').includes('http-check send meth GET uri /readyz?scope=chat'), 'brokers checked for what chat needs only');
    const brokers = parleyServices(resolvedCompose()).filter(([, s]) => roleOf(s) === 'broker').map(([n]) => n).sort();
    for (const [name, port] of [['mqtt_brokers', '1883'], ['mqtts_brokers', '8883'], ['http_brokers', '8080']] as const) {
      const servers = backend(name).filter((l) => l.startsWith('server ')).map((l) => l.split(/\s+/)[2]!);
      assert.deepEqual(servers.map((s) => s.split(':')[0]).sort(), brokers, `${name} does not list exactly the brokers`);
      assert.ok(servers.every((s) => s.endsWith(`:${port}`)), `${name} servers must use port ${port}`);
    }
    // The dashboard and the series API go to the analytics role, which alone serves them.
    const analytics = parleyServices(resolvedCompose()).filter(([, s]) => roleOf(s) === 'analytics').map(([n]) => n).sort();
    assert.ok(analytics.length > 0, 'compose.yaml runs an analytics role');
    const servers = backend('http_analytics').filter((l) => l.startsWith('server ')).map((l) => l.split(/\s+/)[2]!);
    assert.deepEqual(servers.map((s) => s.split(':')[0]).sort(), analytics);
    assert.ok(servers.every((s) => s.endsWith(':8080')));
    const http = sections.get('frontend http') ?? assert.fail('no frontend http');
    const rule = http.find((l) => l.startsWith('use_backend http_analytics')) ?? assert.fail('nothing routed to the analytics role');
    for (const path of ['{ path /dashboard }', 'path_beg /dashboard/ /v1/analytics/']) assert.ok(rule.includes(path), `${path} not routed there`);
  });
});

// ---- Dockerfiles -----------------------------------------------------------------------------------------

interface Instruction { cmd: string; args: string }
interface Stage { from: string; name?: string; body: Instruction[] }

function parseDockerfile(text: string): { args: Map<string, string>; stages: Stage[] } {
  const logical: string[] = [];
  let pending = '';
  for (const line of text.split('\n')) {
    if (/^\s*#/.test(line) && !pending) continue;
    if (/^\s*#/.test(line)) continue; // comment lines inside a continuation are dropped by Docker too
    if (line.endsWith('\\')) { pending += line.slice(0, -1) + ' '; continue; }
    const full = (pending + line).trim();
    pending = '';
    if (full) logical.push(full);
  }
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  for (const l of logical) {
    const [cmd, ...rest] = l.split(/\s+/);
    const ins = { cmd: cmd!.toUpperCase(), args: rest.join(' ') };
    if (ins.cmd === 'FROM') {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args) ?? assert.fail(`bad FROM: ${l}`);
      const from = m[1]!.replace(/\$\{?(\w+)\}?/g, (_, v: string) => args.get(v) ?? `$${v}`);
      stages.push({ from, name: m[2], body: [] });
    } else if (ins.cmd === 'ARG' && stages.length === 0) {
      const [k, v] = ins.args.split('=');
      args.set(k!, v ?? '');
    } else {
      (stages.at(-1) ?? assert.fail(`${ins.cmd} before FROM`)).body.push(ins);
    }
  }
  return { args, stages };
}

const last = (s: Stage, cmd: string) => s.body.filter((i) => i.cmd === cmd).at(-1);
const runsOf = (s: Stage) => s.body.filter((i) => i.cmd === 'RUN').map((i) => i.args).join('\n');

describe('docker/Dockerfile', () => {
  const { stages } = parseDockerfile(read('Dockerfile'));
  const runtime = stages.at(-1)!;
  const stage = (name: string) => stages.find((s) => s.name === name) ?? assert.fail(`no stage ${name}`);

  test('multi-stage on node:20-bookworm-slim, stages referenced by name', () => {
    assert.ok(stages.length >= 2, 'not multi-stage');
    for (const s of stages) assert.equal(s.from, 'node:20-bookworm-slim');
    for (const s of stages) {
      for (const i of s.body.filter((x) => x.cmd === 'COPY')) {
        const from = /--from=(\S+)/.exec(i.args)?.[1];
        if (from) assert.ok(stages.some((x) => x.name === from), `COPY --from=${from}: no such stage`);
      }
    }
  });

  test('build stage compiles; runtime gets dist/ and production-only node_modules', () => {
    const copies = runtime.body.filter((i) => i.cmd === 'COPY').map((i) => i.args);
    const fromStage = (path: string) => /--from=(\S+)/.exec(copies.find((c) => c.includes(path)) ?? '')?.[1] ?? assert.fail(`runtime does not copy ${path}`);
    const build = stage(fromStage('/app/dist'));
    assert.match(runsOf(build), /npm ci\b/);
    assert.match(runsOf(build), /npm run build/);
    assert.match(runsOf(stage(fromStage('/app/node_modules'))), /npm ci --omit=dev/);
    assert.ok(copies.some((c) => /\bpackage\.json\b/.test(c)), 'runtime needs package.json ("type": "module")');
    assert.doesNotMatch(runsOf(runtime), /npm (ci|install)/, 'runtime stage must not install packages');
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
    assert.match(pkg.scripts.build, /tsc -p tsconfig\.build\.json/);
  });

  test('runs as node, exposes 1883 8883 8080, checks /healthz, starts the CLI', () => {
    const user = last(runtime, 'USER')?.args;
    assert.ok(user && !/^(root|0)(:|$)/.test(user), `runtime user is ${user ?? 'root (no USER)'}`);
    assert.equal(user, 'node');
    const exposed = runtime.body.filter((i) => i.cmd === 'EXPOSE').flatMap((i) => i.args.split(/\s+/));
    for (const p of ['1883', '8883', '8080']) assert.ok(exposed.includes(p), `EXPOSE lacks ${p}`);
    const hc = last(runtime, 'HEALTHCHECK')?.args ?? assert.fail('no HEALTHCHECK');
    assert.match(hc, /127\.0\.0\.1/);
    assert.match(hc, /\/healthz/);
    assert.doesNotMatch(hc, /\bcurl\b|\bwget\b/, 'the slim image has neither curl nor wget');
    // Node's options as `npm start` gives them (the young and old generation sizing of README, "Running it").
    const flags = npmStartNodeFlags(root);
    assert.deepEqual(flags, ['--max-semi-space-size=32', '--heap-growing-percent=300', '--v8-pool-size=0', '--use-largepages=silent']);
    assert.deepEqual(JSON.parse(last(runtime, 'ENTRYPOINT')!.args), ['node', ...flags, 'dist/cli/parley.js']);
    assert.deepEqual(JSON.parse(last(runtime, 'CMD')!.args), ['start']);
  });

  test('tsconfig.build.json emits cli/parley.ts to dist/cli/parley.js', (t) => {
    const file = join(root, 'tsconfig.build.json');
    if (!existsSync(file)) return t.skip('tsconfig.build.json does not exist yet');
    const cfg = ts.readConfigFile(file, ts.sys.readFile);
    assert.equal(cfg.error, undefined, 'tsconfig.build.json does not parse');
    const parsed = ts.parseJsonConfigFileContent(cfg.config, ts.sys, root, undefined, file);
    assert.equal(parsed.options.outDir, join(root, 'dist'));
    assert.notEqual(parsed.options.noEmit, true, 'the build config must emit');
    const rootDir = parsed.options.rootDir ?? root;
    assert.equal(rootDir, root, 'rootDir must be the repository root so cli/parley.ts lands in dist/cli/');
    if (existsSync(join(root, 'cli', 'parley.ts'))) assert.ok(parsed.fileNames.includes(join(root, 'cli', 'parley.ts')));
  });

  test('hadolint finds nothing', { skip: which('hadolint') ? false : 'hadolint not installed (optional)' }, () => {
    for (const f of ['Dockerfile', 'hbase/Dockerfile']) {
      const r = run('hadolint', [join(dockerDir, f)]);
      assert.equal(r.status, 0, `${f}:\n${r.stdout}${r.stderr}`);
    }
  });
});

describe('docker/hbase', () => {
  test('image runs as a non-root user, has a healthcheck and copies files that exist', () => {
    const { stages } = parseDockerfile(read('hbase', 'Dockerfile'));
    const s = stages.at(-1)!;
    const user = last(s, 'USER')?.args;
    assert.ok(user && !/^(root|0)(:|$)/.test(user), `hbase runs as ${user ?? 'root'}`);
    assert.match(last(s, 'HEALTHCHECK')?.args ?? '', /9090/);
    for (const c of s.body.filter((i) => i.cmd === 'COPY' && !i.args.includes('--from'))) {
      const src = c.args.split(/\s+/).filter((a) => !a.startsWith('--')).slice(0, -1);
      for (const f of src) assert.ok(existsSync(join(dockerDir, 'hbase', f)), `COPY source ${f} missing`);
    }
    assert.match(read('hbase', 'hbase-site.xml'), /<name>hbase\.cluster\.distributed<\/name>\s*<value>false<\/value>/);
  });

  test('start script is valid bash and starts the Thrift2 gateway', () => {
    const script = join(dockerDir, 'hbase', 'start-hbase-thrift2.sh');
    const r = run('bash', ['-n', script]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(readFileSync(script, 'utf8'), /hbase thrift2 start/);
    accessSync(script, constants.X_OK);
  });
});

// ---- Kubernetes ------------------------------------------------------------------------------------------

describe('docker/k8s', () => {
  const dir = join(dockerDir, 'k8s');
  const files = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort();
  const docs = new Map<string, Json[]>(files.map((f) => [f, parseYaml(readFileSync(join(dir, f), 'utf8')).filter(Boolean)]));
  const objects = [...docs.entries()].filter(([f]) => f !== 'kustomization.yaml').flatMap(([, d]) => d);
  const find = (kind: string, pred: (o: Json) => boolean = () => true) => objects.filter((o) => o.kind === kind && pred(o));
  const labelsMatch = (selector: Record<string, string>, labels: Record<string, string>) =>
    Object.entries(selector).every(([k, v]) => labels?.[k] === v);

  test('every manifest parses, is named, lives in the parley namespace and is listed in kustomization.yaml', () => {
    for (const o of objects) {
      assert.ok(o.apiVersion && o.kind && o.metadata?.name, `incomplete object ${JSON.stringify(o).slice(0, 80)}`);
      if (o.kind !== 'Namespace') assert.equal(o.metadata.namespace, 'parley', `${o.kind}/${o.metadata.name}`);
    }
    const kust = docs.get('kustomization.yaml')?.[0] ?? assert.fail('no kustomization.yaml');
    assert.deepEqual([...kust.resources].sort(), files.filter((f) => f !== 'kustomization.yaml'));
    const roles = find('StatefulSet').map((o) => roleOf({ command: o.spec.template.spec.containers[0].args }));
    assert.deepEqual(roles, ['broker'], 'the brokers are the only StatefulSet (for their node ids); backends are managed services');
  });

  test('broker StatefulSet: 3 replicas, node id = pod ordinal, /readyz readiness, /healthz liveness, non-root, configured by the ConfigMap', () => {
    const [dep] = find('StatefulSet', (o) => roleOf({ command: o.spec.template.spec.containers[0].args }) === 'broker');
    assert.ok(dep, 'no broker StatefulSet');
    assert.equal(dep.spec.replicas, 3);
    // Unique per running broker and the same after a restart: the routing address and the outbox key.
    const nodeId = dep.spec.template.spec.containers[0].env?.find((e: Json) => e.name === 'PARLEY_NODE_ID');
    assert.equal(nodeId?.valueFrom?.fieldRef?.fieldPath, "metadata.labels['apps.kubernetes.io/pod-index']");
    const governing = find('Service', (o) => o.metadata.name === dep.spec.serviceName);
    assert.equal(governing.length, 1, `no Service ${dep.spec.serviceName} governs the StatefulSet`);
    assert.equal(governing[0].spec.clusterIP, 'None', 'the governing Service is headless');
    assert.ok(labelsMatch(dep.spec.selector.matchLabels, dep.spec.template.metadata.labels));
    const pod = dep.spec.template.spec;
    assert.equal(pod.securityContext.runAsNonRoot, true);
    const c = pod.containers[0];
    const portNames = new Set(c.ports.map((p: Json) => p.name));
    assert.equal(c.readinessProbe.httpGet.path, '/readyz?scope=chat', 'ready while chat can go on, whatever Kafka, HBase or S3 do');
    assert.equal(c.livenessProbe.httpGet.path, '/healthz');
    for (const probe of [c.readinessProbe, c.livenessProbe]) assert.ok(portNames.has(probe.httpGet.port));
    for (const p of [1883, 8080]) assert.ok(c.ports.some((x: Json) => x.containerPort === p), `no container port ${p}`);
    const configMaps = new Set(find('ConfigMap').map((o) => o.metadata.name));
    for (const d of [...find('Deployment'), ...find('StatefulSet')]) {
      for (const ref of d.spec.template.spec.containers.flatMap((x: Json) => x.envFrom ?? [])) {
        if (ref.configMapRef) assert.ok(configMaps.has(ref.configMapRef.name), `${d.metadata.name}: no ConfigMap ${ref.configMapRef.name}`);
      }
    }
    for (const cm of find('ConfigMap')) assert.equal(cm.data.PARLEY_NODE_ID, undefined, 'a shared PARLEY_NODE_ID would repeat on every pod');
  });

  test('Services reach the brokers (MQTT LoadBalancer, HTTP); HPA and PDB target them', () => {
    const [dep] = find('StatefulSet', (o) => o.spec.replicas === 3);
    const labels = dep.spec.template.metadata.labels;
    const portNames = new Set(dep.spec.template.spec.containers[0].ports.map((p: Json) => p.name));
    const services = find('Service');
    const mqtt = services.find((s) => s.spec.type === 'LoadBalancer' && s.spec.ports.some((p: Json) => p.port === 1883));
    assert.ok(mqtt, 'no LoadBalancer Service on 1883');
    assert.ok(services.some((s) => s.spec.ports.some((p: Json) => p.targetPort === 'http')), 'no HTTP Service');
    for (const s of services) {
      assert.ok(labelsMatch(s.spec.selector, labels), `${s.metadata.name} selects no broker`);
      for (const p of s.spec.ports) assert.ok(typeof p.targetPort === 'number' || portNames.has(p.targetPort));
    }
    const [hpa] = find('HorizontalPodAutoscaler');
    assert.deepEqual([hpa.spec.scaleTargetRef.kind, hpa.spec.scaleTargetRef.name], ['StatefulSet', dep.metadata.name]);
    assert.ok(hpa.spec.minReplicas >= 3 && hpa.spec.maxReplicas >= hpa.spec.minReplicas);
    for (const pdb of find('PodDisruptionBudget')) assert.ok(labelsMatch(pdb.spec.selector.matchLabels, labels));
  });
});

// ---- LDAP seed -------------------------------------------------------------------------------------------

function parseLdif(text: string): Map<string, string[]>[] {
  const unfolded = text.replace(/\r?\n /g, '');
  return unfolded.split(/\n\s*\n/).map((block) => {
    const entry = new Map<string, string[]>();
    for (const line of block.split('\n')) {
      if (!line.trim() || line.startsWith('#')) continue;
      const m = /^([\w;-]+)(::?)\s*(.*)$/.exec(line) ?? assert.fail(`bad LDIF line: ${line}`);
      const value = m[2] === '::' ? Buffer.from(m[3]!, 'base64').toString('utf8') : m[3]!;
      entry.set(m[1]!.toLowerCase(), [...(entry.get(m[1]!.toLowerCase()) ?? []), value]);
    }
    return entry;
  }).filter((e) => e.size > 0);
}

function sshaMatches(hash: string, password: string): boolean {
  const raw = Buffer.from(hash.replace(/^\{SSHA\}/, ''), 'base64');
  const digest = raw.subarray(0, 20);
  return createHash('sha1').update(password).update(raw.subarray(20)).digest().equals(digest);
}

describe('docker/ldap', () => {
  const base = 'dc=parley,dc=test';
  const files = readdirSync(join(dockerDir, 'ldap')).filter((f) => f.endsWith('.ldif')).sort();
  const entries = files.flatMap((f) => parseLdif(read('ldap', f)));
  const dns = entries.map((e) => e.get('dn')![0]!);

  test('tree under dc=parley,dc=test, each parent added before its children', () => {
    assert.ok(files.length > 0);
    assert.ok(dns.includes(`ou=users,${base}`) && dns.includes(`ou=groups,${base}`));
    dns.forEach((dn, i) => {
      const parent = dn.slice(dn.indexOf(',') + 1);
      assert.ok(parent === base || dns.slice(0, i).includes(parent), `${dn}: parent ${parent} is not added first`);
    });
  });

  test('demo users alice, bob and carol sign in with the passwords in docker/README.md', () => {
    const readme = read('README.md');
    for (const uid of ['alice', 'bob', 'carol']) {
      const e = entries.find((x) => x.get('dn')![0] === `uid=${uid},ou=users,${base}`) ?? assert.fail(`no ${uid}`);
      assert.ok(e.get('objectclass')!.includes('inetOrgPerson'));
      for (const attr of ['cn', 'sn', 'uid', 'userpassword']) assert.ok(e.get(attr), `${uid} lacks ${attr}`);
      const password = new RegExp('`' + uid + '` / `([^`]+)`').exec(readme)?.[1] ?? assert.fail(`README gives no password for ${uid}`);
      assert.ok(sshaMatches(e.get('userpassword')![0]!, password), `${uid}: {SSHA} hash does not match the README password`);
    }
  });

  test('group members exist', () => {
    for (const e of entries.filter((x) => x.get('objectclass')!.includes('groupOfNames'))) {
      for (const m of e.get('member') ?? []) assert.ok(dns.includes(m), `${e.get('dn')}: member ${m} does not exist`);
    }
  });
});

describe('docker/README.md', () => {
  test('says how to run the stack and that CI checks the files only statically', () => {
    const readme = read('README.md');
    assert.ok(readme.includes('docker compose -f docker/compose.yaml --env-file docker/.env up'));
    assert.match(readme, /no Docker engine runs on the CI machine/i);
    assert.match(readme, /statically/);
    for (const pkg of ['docker-compose', 'haproxy']) assert.ok(readme.includes(`\`${pkg}\``), `README should name the ${pkg} package`);
    assert.equal(basename(composeFile), 'compose.yaml');
  });
});
