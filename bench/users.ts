// Bench users: registered once through the HTTP API into a directory the bench keeps between runs
// (bench/data/users), signed in through the API for tokens (MQTT CONNECT with a token skips scrypt).
import fs from 'node:fs';
import path from 'node:path';

export const PASSWORD = 'bench-password-1';
export const userName = (i: number) => `bench-u${String(i).padStart(5, '0')}`;

export interface HttpAnswer {
  status: number;
  body: any;
}

export async function http(base: string, pathname: string, init: { body?: unknown; token?: string } = {}): Promise<HttpAnswer> {
  const headers: Record<string, string> = {};
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  if (init.token) headers.authorization = `Bearer ${init.token}`;
  const res = await fetch(base + pathname, {
    method: init.body !== undefined ? 'POST' : 'GET',
    headers,
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: keep the text for the error message
  }
  return { status: res.status, body };
}

/** Runs `fn` over `items` with at most `lanes` at a time. */
export async function inLanes<T>(items: readonly T[], lanes: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(lanes, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i], i);
      }
    }),
  );
}

/** Names already in a kept users.json; reading it only saves registering them again (409 would say the same). */
export function knownUsers(dataDir: string): Set<string> {
  const file = path.join(dataDir, 'users.json');
  if (!fs.existsSync(file)) return new Set();
  try {
    return new Set(Object.keys(JSON.parse(fs.readFileSync(file, 'utf8')) as object));
  } catch {
    return new Set();
  }
}

/** Registers `names` through POST /v1/auth/register; 409 (already there) counts as done. */
export async function registerAll(base: string, names: readonly string[], progress: (line: string) => void): Promise<void> {
  let done = 0;
  const t0 = performance.now();
  // Each registration is one scrypt (~60 ms of a core); a few at a time keep every core busy.
  await inLanes(names, 8, async (username) => {
    const res = await http(base, '/v1/auth/register', { body: { username, password: PASSWORD } });
    if (res.status !== 201 && res.status !== 409) throw new Error(`register ${username}: HTTP ${res.status} ${JSON.stringify(res.body)}`);
    if (++done % 200 === 0) progress(`registered ${done}/${names.length} users (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
  });
}

/** Signs every user in; returns user → token. */
export async function loginAll(base: string, names: readonly string[], progress: (line: string) => void): Promise<Map<string, string>> {
  const tokens = new Map<string, string>();
  let done = 0;
  const t0 = performance.now();
  await inLanes(names, 8, async (username) => {
    const res = await http(base, '/v1/auth/login', { body: { username, password: PASSWORD } });
    if (res.status !== 200) throw new Error(`login ${username}: HTTP ${res.status} ${JSON.stringify(res.body)}`);
    tokens.set(username, res.body.token as string);
    if (++done % 250 === 0) progress(`signed in ${done}/${names.length} users (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
  });
  return tokens;
}

/** Keeps the tokens that still work (GET /v1/me answers 200 for them). */
export async function stillValid(base: string, tokens: Map<string, string>): Promise<Map<string, string>> {
  const valid = new Map<string, string>();
  await inLanes([...tokens], 32, async ([user, token]) => {
    const res = await http(base, '/v1/me', { token });
    if (res.status === 200 && res.body?.username === user) valid.set(user, token);
  });
  return valid;
}
