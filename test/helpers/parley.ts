// Starts a real Parley (in this process, on port 0) against embedded adapters or the real stack
// (Redis + OpenLDAP from test/stack), and drives it with real mqtt.js clients over TCP or WebSocket.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { loadConfig, type Config } from '../../common/config.ts';
import { createLogger } from '../../common/log.ts';
import { startParley, type Role, type Running } from '../../cli/server.ts';
import { loadStackEnv } from '../stack/env.ts';

export type Backend = 'embedded' | 'real';
export type Transport = 'tcp' | 'ws';

export interface TestParley {
  running: Running;
  config: Readonly<Config>;
  env: Record<string, string>;
  http(pathname: string, init?: { method?: string; body?: unknown; token?: string }): Promise<{ status: number; body: any }>;
  stop(): Promise<void>;
}

export const uniqueName = (prefix = 'u') => `${prefix}${randomBytes(5).toString('hex')}`;

/**
 * Settings for a Parley on port 0 with its own data folder (embedded) or its own Redis key prefix (real).
 * `pipeline` adds the real Kafka and HBase, with a topic and an HBase namespace of this test's own.
 */
export function testEnv(backend: Backend, overrides: Record<string, string> = {}, { pipeline = false, s3 = false } = {}): Record<string, string> {
  const env: Record<string, string> = {
    PARLEY_HOST: '127.0.0.1',
    PARLEY_MQTT_PORT: '0',
    PARLEY_HTTP_PORT: '0',
    PARLEY_DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'parley-test-')),
    PARLEY_LOG_LEVEL: process.env.PARLEY_TEST_LOG_LEVEL ?? 'silent',
  };
  if (backend === 'real') {
    const stack = loadStackEnv();
    for (const key of ['PARLEY_REDIS_URL', 'PARLEY_LDAP_URL', 'PARLEY_LDAP_BASE_DN', 'PARLEY_LDAP_USERS_DN', 'PARLEY_LDAP_ADMIN_DN', 'PARLEY_LDAP_ADMIN_PASSWORD']) {
      if (!stack[key]) throw new Error(`${key} is missing from .stack.env: run \`npm run stack:up\` first`);
      env[key] = stack[key];
    }
    const tag = randomBytes(4).toString('hex');
    env.PARLEY_REDIS_KEY_PREFIX = `t${tag}:`;
    if (pipeline) {
      for (const key of ['PARLEY_KAFKA_BROKERS', 'PARLEY_HBASE_HOST', 'PARLEY_HBASE_PORT', 'PARLEY_HBASE_TRANSPORT']) {
        if (!stack[key]) throw new Error(`${key} is missing from .stack.env: run \`npm run stack:up\` first`);
        env[key] = stack[key];
      }
      env.PARLEY_KAFKA_TOPIC = `test.messages.${tag}`;
      env.PARLEY_HBASE_NAMESPACE = `t${tag}`;
    }
    if (s3) {
      for (const key of ['PARLEY_S3_ENDPOINT', 'PARLEY_S3_ACCESS_KEY', 'PARLEY_S3_SECRET_KEY']) {
        if (!stack[key]) throw new Error(`${key} is missing from .stack.env: run \`npm run stack:up\` first`);
        env[key] = stack[key];
      }
      env.PARLEY_S3_BUCKET = `parley-test-${tag}`;
    }
  }
  return { ...env, ...overrides };
}

/** JSON requests to a Parley's HTTP API at `base`, with an optional bearer token. */
export function httpClient(base: string): TestParley['http'] {
  return async (pathname, init = {}) => {
    const headers: Record<string, string> = {};
    if (init.body !== undefined) headers['content-type'] = 'application/json';
    if (init.token) headers.authorization = `Bearer ${init.token}`;
    const res = await fetch(base + pathname, {
      method: init.method ?? (init.body !== undefined ? 'POST' : 'GET'),
      headers,
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };
}

export async function startTestParley(
  backend: Backend,
  overrides: Record<string, string> = {},
  options: { pipeline?: boolean; s3?: boolean; roles?: Role[]; env?: Record<string, string> } = {},
): Promise<TestParley> {
  const env = options.env ?? testEnv(backend, overrides, options);
  const config = loadConfig(env);
  const running = await startParley(config, createLogger(config.logLevel), options.roles);
  const base = `http://127.0.0.1:${running.httpPort}`;
  return {
    running,
    config,
    env,
    http: httpClient(base),
    async stop() {
      await running.close();
      if (backend === 'embedded') fs.rmSync(env.PARLEY_DATA_DIR, { recursive: true, force: true });
    },
  };
}

export const PASSWORD = 'correct horse battery';

export async function registerUser(p: Pick<TestParley, 'http'>, username = uniqueName(), password = PASSWORD): Promise<string> {
  const res = await p.http('/v1/auth/register', { body: { username, password, displayName: username.toUpperCase() } });
  if (res.status !== 201) throw new Error(`register ${username}: ${res.status} ${JSON.stringify(res.body)}`);
  return username;
}

export interface Received {
  topic: string;
  body: any;
}

/** One device: an mqtt.js client that records what arrives. */
export class TestDevice {
  readonly received: Received[] = [];
  private waiters: (() => void)[] = [];
  private seq = 0;

  constructor(
    readonly client: MqttClient,
    readonly userId: string,
  ) {
    client.on('message', (topic, payload) => {
      let body: unknown;
      try {
        body = JSON.parse(payload.toString());
      } catch {
        body = payload.toString();
      }
      this.received.push({ topic, body });
      for (const w of this.waiters.splice(0)) w();
    });
  }

  /** Envelopes on the inbox, of the given kinds (chat messages by default). */
  inbox(kinds: string[] = ['text', 'attachment', 'receipt']): any[] {
    return this.received.filter((r) => r.topic === `inbox/${this.userId}` && kinds.includes(r.body.kind)).map((r) => r.body);
  }

  async waitFor<T>(check: () => T | undefined | false, what: string, timeoutMs = 10_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = check();
      if (v) return v;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what} (device of ${this.userId}; got ${this.received.length} messages)`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Waits for `n` chat messages on the inbox. */
  waitForInbox(n: number, timeoutMs?: number): Promise<any[]> {
    return this.waitFor(() => this.inbox().length >= n && this.inbox(), `${n} inbox messages`, timeoutMs);
  }

  /** Waits for the ack or error of a cid that arrives after position `from` of what was received. */
  waitForAnswer(cid: string, timeoutMs?: number, from = 0): Promise<any> {
    return this.waitFor(
      () => this.received.slice(from).find((r) => (r.body.kind === 'ack' || r.body.kind === 'error') && r.body.cid === cid)?.body,
      `answer to ${cid}`,
      timeoutMs,
    );
  }

  /** Publishes a message without waiting; returns its cid. */
  send(to: string, message: Record<string, unknown> = {}, topic = `send/user/${to}`): string {
    const cid = (message.cid as string | undefined) ?? `c${++this.seq}_${randomBytes(3).toString('hex')}`;
    this.client.publish(topic, JSON.stringify({ kind: 'text', body: `hello ${this.seq}`, ...message, cid }), { qos: 1 });
    return cid;
  }

  /** Sends and waits for this send's own answer (an ack or an error). */
  async sendAndAck(to: string, message: Record<string, unknown> = {}): Promise<any> {
    const from = this.received.length;
    return this.waitForAnswer(this.send(to, message), undefined, from);
  }

  async close(): Promise<void> {
    await this.client.endAsync();
  }
}

export function url(p: TestParley, transport: Transport): string {
  return transport === 'tcp' ? `mqtt://127.0.0.1:${p.running.mqttPort}` : `ws://127.0.0.1:${p.running.httpPort}/mqtt`;
}

export async function connectDevice(
  p: TestParley,
  transport: Transport,
  userId: string,
  opts: { password?: string; clientId?: string; subscribe?: boolean; qos?: 0 | 1 } = {},
): Promise<TestDevice> {
  const client = await mqtt.connectAsync(url(p, transport), {
    username: userId,
    password: opts.password ?? PASSWORD,
    clientId: opts.clientId ?? uniqueName(`${userId}-`),
    clean: true,
    reconnectPeriod: 0,
    protocolVersion: 4,
    connectTimeout: 10_000,
  });
  const device = new TestDevice(client, userId);
  if (opts.subscribe !== false) {
    const granted = await client.subscribeAsync(`inbox/${userId}`, { qos: opts.qos ?? 1 });
    if (granted[0].qos === 128) throw new Error('inbox subscription refused');
  }
  return device;
}

/** Connect and expect a refusal: returns the CONNACK return code. */
export async function connackCode(p: TestParley, transport: Transport, username: string, password: string, clientId?: string): Promise<number> {
  try {
    const c = await mqtt.connectAsync(url(p, transport), { username, password, clientId: clientId ?? uniqueName('x-'), reconnectPeriod: 0, protocolVersion: 4 });
    await c.endAsync();
    return 0;
  } catch (err) {
    const code = (err as { code?: number }).code;
    if (typeof code !== 'number') throw err;
    return code;
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
