// Group management (PROTOCOL.md, `/v1/groups`): the owner and admins manage members, anyone may leave,
// non-members see nothing. Membership is read on every group message, so a removed member stops
// receiving at once.
import { randomBytes } from 'node:crypto';
import { USER_ID } from '../common/envelope.ts';
import { badRequest, conflict, forbidden, notFound } from '../common/errors.ts';
import type { Group, Groups, Member } from './groups.ts';
import type { Recipients } from './recipients.ts';

export interface GroupView {
  id: string;
  name: string;
  owner: string;
  members: { userId: string; role: Member['role'] }[];
}

const view = (g: Group): GroupView => ({ id: g.id, name: g.name, owner: g.owner, members: g.members.map((m) => ({ userId: m.userId, role: m.role })) });

export class GroupService {
  constructor(
    private readonly groups: Groups,
    private readonly recipients: Recipients,
    private readonly maxMembers: number,
  ) {}

  async create(owner: string, input: { name?: unknown; members?: unknown }): Promise<GroupView> {
    const { name, members } = input;
    if (typeof name !== 'string' || name.trim().length === 0 || name.length > 100 || /[\u0000-\u001f]/.test(name)) throw badRequest('name must be 1 to 100 printable characters');
    if (members !== undefined && (!Array.isArray(members) || members.some((m) => typeof m !== 'string' || !USER_ID.test(m)))) throw badRequest('members must be a list of user ids');
    const ids = [...new Set([owner, ...((members as string[] | undefined) ?? [])])];
    if (ids.length > this.maxMembers) throw badRequest(`a group has at most ${this.maxMembers} members`);
    for (const id of ids) if (!(await this.recipients.exists(id))) throw badRequest(`no user ${id}`);
    const now = Date.now();
    const group: Group = {
      id: randomBytes(12).toString('base64url'),
      name: name.trim(),
      owner,
      createdAt: now,
      members: ids.map((userId) => ({ userId, role: userId === owner ? 'owner' : 'member', joinedAt: now })),
    };
    if (!(await this.groups.create(group))) throw conflict('group id collision; try again');
    return view(group);
  }

  /**
   * The group, for its members; 403 for anyone else, whether or not it exists (PROTOCOL.md: non-members get
   * 403), so group ids cannot be probed.
   */
  async get(userId: string, id: string): Promise<GroupView> {
    const g = await this.groups.get(id);
    if (!g) throw forbidden('not a member of this group');
    if (!g.members.some((m) => m.userId === userId)) throw forbidden('not a member of this group');
    return view(g);
  }

  async addMember(actor: string, id: string, input: { userId?: unknown; role?: unknown }): Promise<GroupView> {
    const g = await this.manageable(actor, id);
    const { userId, role } = input;
    if (typeof userId !== 'string' || !USER_ID.test(userId)) throw badRequest('userId must be a user id');
    if (role !== undefined && role !== 'member' && role !== 'admin') throw badRequest('role is member or admin');
    if (role === 'admin' && g.owner !== actor) throw forbidden('only the owner makes admins');
    if (userId === g.owner) throw badRequest('the owner is already a member');
    if (!(await this.recipients.exists(userId))) throw badRequest(`no user ${userId}`);
    const existing = g.members.find((m) => m.userId === userId);
    if (!existing && g.members.length >= this.maxMembers) throw badRequest(`a group has at most ${this.maxMembers} members`);
    const count = await this.groups.addMember(id, { userId, role: (role as Member['role']) ?? existing?.role ?? 'member', joinedAt: existing?.joinedAt ?? Date.now() });
    if (count === 0) throw forbidden('not a member of this group'); // the last member, the actor, left meanwhile
    return view((await this.groups.get(id))!);
  }

  /**
   * Removes a member. Anyone may leave, the owner too: ownership then passes to the longest-standing admin,
   * else member (Groups.removeMember); the last one out leaves the group memberless, so its id and history
   * stay taken and every route answers 403. No one else removes the owner.
   */
  async removeMember(actor: string, id: string, userId: string): Promise<void> {
    const g = await this.groups.get(id);
    if (!g) throw forbidden('not a member of this group');
    const actorRole = g.members.find((m) => m.userId === actor)?.role;
    if (!actorRole) throw forbidden('not a member of this group');
    const target = g.members.find((m) => m.userId === userId);
    const leaving = actor === userId;
    if (!leaving) {
      if (userId === g.owner) throw conflict('the owner cannot be removed');
      if (actorRole === 'member') throw forbidden('only the owner and admins remove members');
      if (actorRole === 'admin' && target?.role === 'admin') throw forbidden('only the owner removes admins');
    }
    if (!target) throw notFound('not a member');
    if (await this.groups.removeMember(id, userId, { keepOwner: !leaving })) return;
    // Outrun between the read above and the removal: the target left, or became the owner.
    if ((await this.groups.get(id))?.owner === userId) throw conflict('the owner cannot be removed');
    throw notFound('not a member');
  }

  private async manageable(actor: string, id: string): Promise<Group> {
    const g = await this.groups.get(id);
    if (!g) throw forbidden('not a member of this group');
    const role = g.members.find((m) => m.userId === actor)?.role;
    if (!role) throw forbidden('not a member of this group');
    if (role === 'member') throw forbidden('only the owner and admins add members');
    return g;
  }
}
