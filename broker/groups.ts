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
  /** Adds (or re-roles) a member; returns the member count after, or 0 when the group does not exist. */
  addMember(id: string, member: Member): Promise<number>;
  /** False when the user was not a member. */
  removeMember(id: string, userId: string): Promise<boolean>;
  close(): Promise<void>;
}
