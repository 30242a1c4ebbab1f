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

/** Adds or re-roles a member of a group with members, never re-roling its owner; the member count after, or 0. */
const ADD_MEMBER = `
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HLEN', KEYS[2]) == 0 then return 0 end
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then redis.call('HSET', KEYS[2], ARGV[1], ARGV[2]) end
return redis.call('HLEN', KEYS[2])`;

/**
 * Removes a member; when it is the owner, hands ownership to successor() (groups.ts) of those left, in the
 * same script, so no concurrent leave or add sees a group with members and no owner, or two owners.
 * ARGV: userId, keepOwner ("1" keeps the owner). 1 when removed, else 0.
 */
const REMOVE_MEMBER = `
local owner = redis.call('HGET', KEYS[1], 'owner')
if ARGV[1] == owner and ARGV[2] == '1' then return 0 end
if redis.call('HDEL', KEYS[2], ARGV[1]) == 0 then return 0 end
if ARGV[1] ~= owner then return 1 end
-- Byte order, as JavaScript compares these ASCII ids; Lua's < on strings follows the server's locale.
local function before(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
local best, bestRank, bestAt, bestJoined
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
  local v = all[i + 1]
  local sep = string.find(v, ':', 1, true)
  local rank = string.sub(v, 1, sep - 1) == 'admin' and 0 or 1
  local joined = string.sub(v, sep + 1)
  local at = tonumber(joined)
  if best == nil or rank < bestRank or (rank == bestRank and (at < bestAt or (at == bestAt and before(all[i], best)))) then
    best, bestRank, bestAt, bestJoined = all[i], rank, at, joined
  end
end
if best ~= nil then
  redis.call('HSET', KEYS[2], best, 'owner:' .. bestJoined)
  redis.call('HSET', KEYS[1], 'owner', best)
end
return 1`;

type Scripts = {
  groupCreate(info: string, members: string, ...args: (string | number)[]): Promise<number>;
  groupAddMember(info: string, members: string, userId: string, value: string): Promise<number>;
  groupRemoveMember(info: string, members: string, userId: string, keepOwner: string): Promise<number>;
};

export class RedisGroups implements Groups {
  readonly adapter = 'redis';
  private readonly redis: Redis & Scripts;

  constructor(redis: Redis) {
    redis.defineCommand('groupCreate', { numberOfKeys: 2, lua: CREATE });
    redis.defineCommand('groupAddMember', { numberOfKeys: 2, lua: ADD_MEMBER });
    redis.defineCommand('groupRemoveMember', { numberOfKeys: 2, lua: REMOVE_MEMBER });
    this.redis = redis as Redis & Scripts;
  }

  async create(group: Group): Promise<boolean> {
    const members = group.members.flatMap((x) => [x.userId, `${x.role}:${x.joinedAt}`]);
    return (await this.redis.groupCreate(`group:${group.id}`, `group:${group.id}:members`, group.name, group.owner, group.createdAt, ...members)) === 1;
  }

  async get(id: string): Promise<Group | null> {
    // One transaction: a hand-over between two separate reads would show an owner field and roles that disagree.
    const replies = await this.redis.multi().hgetall(`group:${id}`).hgetall(`group:${id}:members`).exec();
    const [[infoErr, info], [membersErr, members]] = replies as [Error | null, Record<string, string>][];
    if (infoErr || membersErr) throw infoErr ?? membersErr;
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

  async removeMember(id: string, userId: string, opts: { keepOwner?: boolean } = {}): Promise<boolean> {
    return (await this.redis.groupRemoveMember(`group:${id}`, `group:${id}:members`, userId, opts.keepOwner ? '1' : '0')) === 1;
  }

  async close(): Promise<void> {}
}

function parseMember(userId: string, v: string): Member {
  const [role, joinedAt] = v.split(':');
  return { userId, role: role as Role, joinedAt: Number(joinedAt) };
}
