// Groups port: who is in which group, with roles. Asked on every group message (fan-out), so members()
// is one round trip.
export type Role = 'owner' | 'admin' | 'member';

export interface Member {
  userId: string;
  role: Role;
  /** When the user joined, ms since the epoch. */
  joinedAt: number;
}

export interface Group {
  id: string;
  name: string;
  owner: string;
  createdAt: number;
  members: Member[];
}

export interface Groups {
  readonly adapter: 'redis' | 'embedded';
  /** Creates a group; false when the id exists. */
  create(group: Group): Promise<boolean>;
  get(id: string): Promise<Group | null>;
  /** The member ids (empty when the group does not exist). */
  members(id: string): Promise<string[]>;
  role(id: string, userId: string): Promise<Role | null>;
  /**
   * Adds (or re-roles) a member; returns the member count after, or 0 when the group does not exist or has
   * no members left (it has ended: no one is there to add anyone). The owner's role is left as it is:
   * ownership moves only when the owner leaves, so a re-role racing a hand-over cannot unmake an owner.
   */
  addMember(id: string, member: Member): Promise<number>;
  /**
   * Removes a member and, in the same atomic step, hands ownership on when the member was the owner: to
   * successor() of those left, whose role and the group's `owner` become theirs. The last member leaving
   * leaves the group memberless, `owner` naming the last owner. With `keepOwner` the owner is not removed,
   * so a permission check made before the call cannot be outrun by a hand-over to the target.
   * False when no one was removed (not a member, or the owner kept).
   */
  removeMember(id: string, userId: string, opts?: { keepOwner?: boolean }): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * Who owns a group after its owner leaves: the longest-standing admin, else the longest-standing member;
 * equal joinedAt goes to the smaller user id (code-unit order). Null when no one is left. The Redis
 * adapter's Lua applies the same rule.
 */
export function successor(members: Iterable<Member>): Member | null {
  let best: Member | null = null;
  for (const m of members) if (!best || successorOrder(m, best) < 0) best = m;
  return best;
}

function successorOrder(a: Member, b: Member): number {
  const rank = (m: Member) => (m.role === 'admin' ? 0 : 1);
  return rank(a) - rank(b) || a.joinedAt - b.joinedAt || (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : 0);
}
