import type { Redis } from 'ioredis';
import type { Group, Groups, Member, Role } from './groups.ts';

// group:{id}          hash  name, owner, createdAt
// group:{id}:members  hash  userId → "{role}:{joinedAt}"
export class RedisGroups implements Groups {
  readonly adapter = 'redis';
  constructor(private readonly redis: Redis) {}

  async create(group: Group): Promise<boolean> {
    const created = await this.redis.hsetnx(`group:${group.id}`, 'name', group.name);
    if (!created) return false;
    const m = this.redis.multi().hset(`group:${group.id}`, { owner: group.owner, createdAt: group.createdAt });
    if (group.members.length) m.hset(`group:${group.id}:members`, Object.fromEntries(group.members.map((x) => [x.userId, `${x.role}:${x.joinedAt}`])));
    await m.exec();
    return true;
  }

  async get(id: string): Promise<Group | null> {
    const [info, members] = await Promise.all([this.redis.hgetall(`group:${id}`), this.redis.hgetall(`group:${id}:members`)]);
    if (!info.name) return null;
    return {
      id,
      name: info.name,
      owner: info.owner,
      createdAt: Number(info.createdAt),
      members: Object.entries(members).map(([userId, v]) => parseMember(userId, v)),
    };
  }

  members(id: string): Promise<string[]> {
    return this.redis.hkeys(`group:${id}:members`);
  }

  async role(id: string, userId: string): Promise<Role | null> {
    const v = await this.redis.hget(`group:${id}:members`, userId);
    return v ? parseMember(userId, v).role : null;
  }

  async addMember(id: string, member: Member): Promise<number> {
    const res = await this.redis.multi().hset(`group:${id}:members`, member.userId, `${member.role}:${member.joinedAt}`).hlen(`group:${id}:members`).exec();
    return res?.[1][1] as number;
  }

  async removeMember(id: string, userId: string): Promise<boolean> {
    return (await this.redis.hdel(`group:${id}:members`, userId)) === 1;
  }

  async close(): Promise<void> {}
}

function parseMember(userId: string, v: string): Member {
  const [role, joinedAt] = v.split(':');
  return { userId, role: role as Role, joinedAt: Number(joinedAt) };
}
