// Sign-in for both doors (HTTP and MQTT CONNECT): passwords through the Directory, tokens through the
// TokenStore, failed attempts counted by the Throttle per account and per client address, which locks either.
import type { Config } from '../common/config.ts';
import { USER_ID } from '../common/envelope.ts';
import { badRequest, conflict, forbidden, ParleyError, rateLimited, unauthorized } from '../common/errors.ts';
import type { Directory, DirectoryUser } from './directory.ts';
import { ExpiringMap } from '../common/expiring-map.ts';
import type { Throttle } from './throttle.ts';
import { hashToken, newToken, TOKEN_PREFIX, type TokenStore } from './token-store.ts';

/** Why a sign-in failed, which each door maps to its own answer (HTTP 401/429, CONNACK 4/5). */
export type SignInFailure = 'wrong_password' | 'unknown' | 'throttled';

/** A live connection that logout of its token closes (an Aedes Client). */
export interface Session {
  close(): void;
}

export class SignInError extends Error {
  constructor(readonly reason: SignInFailure) {
    super(reason === 'throttled' ? 'too many failed sign-ins; try again later' : 'bad username or password');
  }
}

export interface SignedIn {
  userId: string;
  /** Set when the credential was a token: logout of that token closes this session. */
  tokenHash?: string;
}

export interface AuthDeps {
  config: Readonly<Config>;
  directory: Directory;
  tokens: TokenStore;
  throttle: Throttle;
}

/** Far longer than a sign-in's token lookup takes; bounded by the number of logouts in that time. */
const REVOKED_KEPT_MS = 60_000;

export class AuthService {
  /** Live sessions per token on this node, closed when the token is revoked. */
  private readonly sessions = new Map<string, Set<Session>>();
  /**
   * Tokens revoked a moment ago, here or on another node: a sign-in that looked its token up just before the
   * revocation is tracked just after it, and is closed then instead of staying open.
   */
  private readonly justRevoked = new ExpiringMap<true>();
  /** Told of every logout here, so the other nodes close that token's sessions too. */
  private readonly loggedOutListeners: ((tokenHash: string) => void)[] = [];

  constructor(private readonly deps: AuthDeps) {}

  async register(input: { username?: unknown; password?: unknown; displayName?: unknown }): Promise<{ username: string }> {
    if (!this.deps.config.selfRegistration) throw forbidden('self-registration is turned off');
    const { username, password, displayName } = input;
    if (typeof username !== 'string' || !USER_ID.test(username)) throw badRequest('username must match ^[a-z0-9][a-z0-9._-]{1,31}$');
    if (typeof password !== 'string' || password.length < 8 || password.length > 1024) throw badRequest('password must be 8 to 1024 characters');
    if (displayName !== undefined && (typeof displayName !== 'string' || displayName.length > 128 || /[\u0000-\u001f]/.test(displayName)))
      throw badRequest('displayName must be a string of at most 128 printable characters');
    if (await this.deps.directory.find(username)) throw conflict('username is taken');
    await this.deps.directory.create({ username, password, displayName: (displayName as string | undefined) || username });
    return { username };
  }

  /** Checks a user id and password (or token); throws SignInError. */
  async signIn(username: string, secret: string, address: string): Promise<SignedIn> {
    if (!USER_ID.test(username)) {
      await this.fail(null, address);
      throw new SignInError('unknown');
    }
    const [accountLocked, addressLocked] = await Promise.all([
      this.deps.throttle.locked(`user:${username}`),
      this.deps.throttle.locked(`addr:${address}`),
    ]);
    if (accountLocked || addressLocked) throw new SignInError('throttled');

    if (secret.startsWith(TOKEN_PREFIX)) {
      const tokenHash = hashToken(secret);
      if ((await this.deps.tokens.lookup(tokenHash)) === username) return { userId: username, tokenHash };
    }
    const verdict = await this.deps.directory.verify(username, secret);
    if (verdict === 'ok') return { userId: username };
    await this.fail(verdict === 'wrong_password' ? username : null, address);
    throw new SignInError(verdict);
  }

  private async fail(username: string | null, address: string): Promise<void> {
    const { maxFailures, maxFailuresPerAddress, windowSeconds } = this.deps.config.login;
    const windowMs = windowSeconds * 1000;
    await Promise.all([
      username ? this.deps.throttle.fail(`user:${username}`, { limit: maxFailures, windowMs }) : null,
      this.deps.throttle.fail(`addr:${address}`, { limit: maxFailuresPerAddress, windowMs }),
    ]);
  }

  async login(input: { username?: unknown; password?: unknown }, address: string): Promise<{ token: string; expiresAt: string }> {
    const { username, password } = input;
    if (typeof username !== 'string' || typeof password !== 'string') throw badRequest('username and password are required');
    try {
      await this.signIn(username, password, address);
    } catch (err) {
      if (err instanceof SignInError) throw err.reason === 'throttled' ? rateLimited(err.message) : unauthorized(err.message);
      throw err;
    }
    const token = newToken();
    const ttl = this.deps.config.tokenTtlSeconds;
    await this.deps.tokens.save(hashToken(token), username, ttl);
    return { token, expiresAt: new Date(Date.now() + ttl * 1000).toISOString() };
  }

  /** The user behind an `Authorization: Bearer` header. */
  async bearer(header: string | undefined): Promise<{ userId: string; tokenHash: string }> {
    const m = /^Bearer ([A-Za-z0-9_-]{1,256})$/.exec(header ?? '');
    if (!m) throw unauthorized('a bearer token is required');
    const tokenHash = hashToken(m[1]);
    const userId = await this.deps.tokens.lookup(tokenHash);
    if (!userId) throw unauthorized('the token is invalid, expired or revoked');
    return { userId, tokenHash };
  }

  async logout(tokenHash: string): Promise<void> {
    await this.deps.tokens.revoke(tokenHash);
    this.closeSessions(tokenHash);
    for (const listener of this.loggedOutListeners) listener(tokenHash);
  }

  onLoggedOut(listener: (tokenHash: string) => void): void {
    this.loggedOutListeners.push(listener);
  }

  /** Closes this node's sessions whose token no longer stands (a logout this node may not have heard of). */
  async recheckSessions(): Promise<void> {
    const hashes = [...this.sessions.keys()];
    const users = await Promise.all(hashes.map((h) => this.deps.tokens.lookup(h)));
    hashes.forEach((h, i) => users[i] === null && this.closeSessions(h));
  }

  /** Closes this node's sessions that signed in with the token (revoked here or on another node). */
  closeSessions(tokenHash: string): void {
    this.justRevoked.set(tokenHash, true, REVOKED_KEPT_MS);
    const closers = this.sessions.get(tokenHash);
    this.sessions.delete(tokenHash);
    for (const session of closers ?? []) session.close();
  }

  async me(userId: string): Promise<DirectoryUser> {
    const user = await this.deps.directory.find(userId);
    if (!user) throw new ParleyError('not_found', 'user not found');
    return user;
  }

  /** Remembers a session signed in with a token (closed on logout); forget it with untrack. */
  track(tokenHash: string, session: Session): void {
    if (this.justRevoked.get(tokenHash)) return session.close();
    let set = this.sessions.get(tokenHash);
    if (!set) this.sessions.set(tokenHash, (set = new Set()));
    set.add(session);
  }

  untrack(tokenHash: string, session: Session): void {
    const set = this.sessions.get(tokenHash);
    if (set && set.delete(session) && set.size === 0) this.sessions.delete(tokenHash);
  }
}
