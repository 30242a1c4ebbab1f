import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { conflict } from '../common/errors.ts';
import type { Directory, DirectoryUser, NewUser, Verdict } from './directory.ts';

const scrypt = (password: string, salt: Buffer, keylen: number, opts: ScryptOptions) =>
  new Promise<Buffer>((resolve, reject) => scryptCb(password, salt, keylen, opts, (err, key) => (err ? reject(err) : resolve(key))));

// scrypt with N=2^15, r=8, p=1 (OWASP's minimum is N=2^17 with p=1 or N=2^15 with more memory; these cost
// ~60–250 ms of one core on this machine kind (measured by the benchmark), which also bounds password guessing per core).
const PARAMS = { N: 1 << 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };

interface Record_ {
  displayName: string;
  hash: string;
  createdAt: number;
}

/** Users in `{dataDir}/users.json`, passwords as scrypt hashes; written atomically (temp file, fsync, rename). */
export class EmbeddedDirectory implements Directory {
  readonly adapter = 'embedded';
  private readonly file: string;
  private users: Map<string, Record_>;
  private writing: Promise<void> = Promise.resolve();

  constructor(dataDir: string) {
    this.file = path.join(dataDir, 'users.json');
    fs.mkdirSync(dataDir, { recursive: true });
    const raw = fs.existsSync(this.file) ? (JSON.parse(fs.readFileSync(this.file, 'utf8')) as Record<string, Record_>) : {};
    this.users = new Map(Object.entries(raw));
  }

  async verify(username: string, password: string): Promise<Verdict> {
    const user = this.users.get(username);
    if (!user) {
      // Spend the same time as a real check so timing does not tell which names exist.
      await hashPassword(password);
      return 'unknown';
    }
    return (await checkPassword(password, user.hash)) ? 'ok' : 'wrong_password';
  }

  async find(username: string): Promise<DirectoryUser | null> {
    const user = this.users.get(username);
    return user ? { username, displayName: user.displayName } : null;
  }

  async create(user: NewUser): Promise<void> {
    if (this.users.has(user.username)) throw conflict('username is taken');
    const hash = await hashPassword(user.password);
    if (this.users.has(user.username)) throw conflict('username is taken');
    this.users.set(user.username, { displayName: user.displayName, hash, createdAt: Date.now() });
    await this.save();
  }

  private save(): Promise<void> {
    const snapshot = JSON.stringify(Object.fromEntries(this.users));
    this.writing = this.writing.then(() => {
      const tmp = `${this.file}.tmp`;
      const fd = fs.openSync(tmp, 'w');
      fs.writeSync(fd, snapshot);
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      fs.renameSync(tmp, this.file);
    });
    return this.writing;
  }

  async ping(): Promise<boolean> {
    return true;
  }

  async close(): Promise<void> {
    await this.writing;
  }
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, 32, PARAMS);
  return `scrypt$${PARAMS.N}$${PARAMS.r}$${PARAMS.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

export async function checkPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, salt, hash] = stored.split('$');
  if (scheme !== 'scrypt') return false;
  const expected = Buffer.from(hash, 'base64');
  const key = await scrypt(password, Buffer.from(salt, 'base64'), expected.length, { N: Number(n), r: Number(r), p: Number(p), maxmem: PARAMS.maxmem });
  return timingSafeEqual(key, expected);
}
