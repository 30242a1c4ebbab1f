import { createHash, randomBytes } from 'node:crypto';
import { AlreadyExistsError, Client, DN, InvalidCredentialsError, escapeFilter } from 'ldapts';
import type { Config } from '../common/config.ts';
import { conflict } from '../common/errors.ts';
import type { Directory, DirectoryUser, NewUser, Verdict } from './directory.ts';

type LdapConfig = NonNullable<Config['ldap']>;

/**
 * Users are inetOrgPerson entries `uid={user},{usersDn}`. A password is checked by binding as the user;
 * lookups and registration use the admin DN. Every user-supplied string goes through DN / filter escaping.
 */
export class LdapDirectory implements Directory {
  readonly adapter = 'ldap';
  /** The admin connection, shared; a promise so that concurrent first calls open it once. */
  private admin: Promise<Client> | null = null;

  constructor(private readonly cfg: LdapConfig) {}

  private userDn(username: string): string {
    return new DN({ uid: username }).toString() + ',' + this.cfg.usersDn;
  }

  private client(): Client {
    return new Client({ url: this.cfg.url, timeout: 5000, connectTimeout: 5000 });
  }

  private connectAdmin(): Promise<Client> {
    const c = this.client();
    const opened = c.bind(this.cfg.adminDn, this.cfg.adminPassword).then(
      () => c,
      async (err) => {
        await c.unbind().catch(() => undefined);
        if (this.admin === opened) this.admin = null;
        throw err;
      },
    );
    return opened;
  }

  /** Runs `fn` on the admin connection, reconnecting once if the connection was lost. */
  private async asAdmin<T>(fn: (c: Client) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const admin = (this.admin ??= this.connectAdmin());
      const c = await admin;
      try {
        return await fn(c);
      } catch (err) {
        if (attempt > 0 || !isConnectionError(err)) throw err;
        if (this.admin === admin) this.admin = null;
        await c.unbind().catch(() => undefined);
      }
    }
  }

  async verify(username: string, password: string): Promise<Verdict> {
    // An empty password would be an unauthenticated bind, which LDAP servers accept [RFC 4513 5.1.2].
    if (password.length === 0) return (await this.find(username)) ? 'wrong_password' : 'unknown';
    const c = this.client();
    try {
      await c.bind(this.userDn(username), password);
      return 'ok';
    } catch (err) {
      if (!(err instanceof InvalidCredentialsError)) throw err;
      return (await this.find(username)) ? 'wrong_password' : 'unknown';
    } finally {
      await c.unbind().catch(() => undefined);
    }
  }

  async find(username: string): Promise<DirectoryUser | null> {
    const { searchEntries } = await this.asAdmin((c) =>
      c.search(this.cfg.usersDn, {
        scope: 'one',
        filter: escapeFilter`(&(objectClass=inetOrgPerson)(uid=${username}))`,
        attributes: ['uid', 'displayName', 'cn'],
        sizeLimit: 1,
      }),
    );
    const e = searchEntries[0];
    if (!e) return null;
    const display = (e.displayName ?? e.cn ?? username) as string | string[];
    return { username, displayName: Array.isArray(display) ? String(display[0]) : String(display) };
  }

  async create(user: NewUser): Promise<void> {
    try {
      await this.asAdmin((c) =>
        c.add(this.userDn(user.username), {
          objectClass: ['inetOrgPerson'],
          uid: user.username,
          cn: user.displayName,
          sn: user.username,
          displayName: user.displayName,
          userPassword: ssha(user.password),
        }),
      );
    } catch (err) {
      if (err instanceof AlreadyExistsError) throw conflict('username is taken');
      throw err;
    }
  }

  async ping(): Promise<boolean> {
    try {
      await this.asAdmin((c) => c.search(this.cfg.usersDn, { scope: 'base', attributes: ['dn'] }));
      return true;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    const admin = this.admin;
    this.admin = null;
    if (admin) await admin.then((c) => c.unbind()).catch(() => undefined);
  }
}

/** OpenLDAP's default `{SSHA}` scheme: base64(SHA1(password + salt) + salt). */
function ssha(password: string): string {
  const salt = randomBytes(8);
  const digest = createHash('sha1').update(password).update(salt).digest();
  return '{SSHA}' + Buffer.concat([digest, salt]).toString('base64');
}

function isConnectionError(err: unknown): boolean {
  const msg = err instanceof Error ? err.message : '';
  return /socket|connect|ECONN|EPIPE|closed|timeout/i.test(msg);
}
