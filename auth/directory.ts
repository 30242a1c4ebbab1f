// Directory port: who the users are and how they prove it (LDAP in production, a local file embedded).
export type Verdict = 'ok' | 'wrong_password' | 'unknown';

export interface DirectoryUser {
  username: string;
  displayName: string;
}

export interface NewUser {
  username: string;
  password: string;
  displayName: string;
}

export interface Directory {
  readonly adapter: 'ldap' | 'embedded';
  /** Checks a password. Callers pass only user ids that match USER_ID. */
  verify(username: string, password: string): Promise<Verdict>;
  find(username: string): Promise<DirectoryUser | null>;
  /** Creates a user; throws ParleyError `conflict` when the name is taken. */
  create(user: NewUser): Promise<void>;
  /** True when the backend answers (for /readyz). */
  ping(): Promise<boolean>;
  close(): Promise<void>;
}
