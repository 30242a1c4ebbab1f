import type { Redis } from 'ioredis';
import type { Group, Groups, Member, Role } from './groups.ts';

// group:{id}          hash  name, owner, createdAt
// group:{id}:members  hash  userId → "{role}:{joinedAt}"

/** Creates the group whole or not at all; 0 when the id is taken. ARGV: name, owner, createdAt, then member/value pairs. */
const CREATE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'name', ARGV[1], 'owner', ARGV[2], 'createdAt', ARGV[3])
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
return 1`;

/** Adds or re-roles a member of an existing group; the member count after, or 0 when there is no such group. */
const ADD_MEMBER = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return redis.call('HLEN', KEYS[2])`;

type Scripts = {
  groupCreate(info: string, members: string, ...args: (string | number)[]): Promise<number>;
  groupAddMember(info: string, members: string, userId: string, value: string): Promise<number>;
};

export class RedisGroups implements Groups {
  readonly adapter = 'redis';
  private readonly redis: Redis & Scripts;

  constructor(redis: Redis) {
    redis.defineCommand('groupCreate', { numberOfKeys: 2, lua: CREATE });
    redis.defineCommand('groupAddMember', { numberOfKeys: 2, lua: ADD_MEMBER });
    this.redis = redis as Redis & Scripts;
  }

  async create(group: Group): Promise<boolean> {
    const members = group.members.flatMap((x) => [x.userId, `${x.role}:${x.joinedAt}`]);
    return (await this.redis.groupCreate(`group:${group.id}`, `group:${group.id}:members`, group.name, group.owner, group.createdAt, ...members)) === 1;
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

  addMember(id: string, member: Member): Promise<number> {
    return this.redis.groupAddMember(`group:${id}`, `group:${id}:members`, member.userId, `${member.role}:${member.joinedAt}`);
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
