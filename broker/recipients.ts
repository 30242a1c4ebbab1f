// Whether a user id names a real user, asked on every message: answered from a short-lived cache so the
// directory (LDAP) sees one lookup per user per few minutes, not one per message.
import type { Directory } from '../auth/directory.ts';

const KNOWN_MS = 5 * 60_000;
const UNKNOWN_MS = 2_000;
const MAX_ENTRIES = 200_000;

export class Recipients {
  private readonly cache = new Map<string, { exists: boolean; until: number }>();
  /** Lookups under way: a burst to a new recipient asks the directory once. */
  private readonly asking = new Map<string, Promise<boolean>>();

  constructor(private readonly directory: Directory) {}

  /** What the cache knows of the user now: true or false, or undefined when only the directory can say. */
  known(userId: string): boolean | undefined {
    const hit = this.cache.get(userId);
    return hit && hit.until > Date.now() ? hit.exists : undefined;
  }

  async exists(userId: string): Promise<boolean> {
    const known = this.known(userId);
    if (known !== undefined) return known;
    let asking = this.asking.get(userId);
    if (!asking) {
      asking = this.directory.find(userId).then(
        (user) => {
          this.asking.delete(userId);
          if (this.cache.size >= MAX_ENTRIES) this.cache.clear();
          this.cache.set(userId, { exists: user !== null, until: Date.now() + (user ? KNOWN_MS : UNKNOWN_MS) });
          return user !== null;
        },
        (err) => {
          this.asking.delete(userId);
          throw err;
        },
      );
      this.asking.set(userId, asking);
    }
    return asking;
  }

  /** A user was just created: no stale "unknown" answer for them. */
  forget(userId: string): void {
    this.cache.delete(userId);
  }
}
