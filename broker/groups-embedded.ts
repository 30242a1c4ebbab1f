import fs from 'node:fs';
import path from 'node:path';
import { successor, type Group, type Groups, type Member, type Role } from './groups.ts';

/** Groups in memory, saved to `{dataDir}/groups.json` (temp file, fsync, rename) on every change. */
export class EmbeddedGroups implements Groups {
  readonly adapter = 'embedded';
  private readonly file: string;
  private readonly groups: Map<string, { name: string; owner: string; createdAt: number; members: Map<string, Member> }>;

  constructor(dataDir: string) {
    fs.mkdirSync(dataDir, { recursive: true });
    this.file = path.join(dataDir, 'groups.json');
    const saved = fs.existsSync(this.file) ? (JSON.parse(fs.readFileSync(this.file, 'utf8')) as Group[]) : [];
    this.groups = new Map(saved.map((g) => [g.id, { name: g.name, owner: g.owner, createdAt: g.createdAt, members: new Map(g.members.map((m) => [m.userId, m])) }]));
  }

  private save(): void {
    const all = [...this.groups.keys()].map((id) => this.snapshot(id)!);
    const tmp = `${this.file}.tmp`;
    const fd = fs.openSync(tmp, 'w');
    fs.writeSync(fd, JSON.stringify(all));
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fs.renameSync(tmp, this.file);
  }

  private snapshot(id: string): Group | null {
    const g = this.groups.get(id);
    return g ? { id, name: g.name, owner: g.owner, createdAt: g.createdAt, members: [...g.members.values()].map((m) => ({ ...m })) } : null;
  }

  async create(group: Group): Promise<boolean> {
    if (this.groups.has(group.id)) return false;
    this.groups.set(group.id, { name: group.name, owner: group.owner, createdAt: group.createdAt, members: new Map(group.members.map((m) => [m.userId, { ...m }])) });
    this.save();
    return true;
  }

  async get(id: string): Promise<Group | null> {
    return this.snapshot(id);
  }

  async members(id: string): Promise<string[]> {
    return [...(this.groups.get(id)?.members.keys() ?? [])];
  }

  async role(id: string, userId: string): Promise<Role | null> {
    return this.groups.get(id)?.members.get(userId)?.role ?? null;
  }

  async addMember(id: string, member: Member): Promise<number> {
    const g = this.groups.get(id);
    if (!g || g.members.size === 0) return 0;
    if (member.userId === g.owner) return g.members.size;
    g.members.set(member.userId, { ...member });
    this.save();
    return g.members.size;
  }

  async removeMember(id: string, userId: string, opts: { keepOwner?: boolean } = {}): Promise<boolean> {
    const g = this.groups.get(id);
    if (!g || (opts.keepOwner && userId === g.owner) || !g.members.delete(userId)) return false;
    const heir = userId === g.owner ? successor(g.members.values()) : null;
    if (heir) {
      heir.role = 'owner';
      g.owner = heir.userId;
    }
    this.save();
    return true;
  }

  async close(): Promise<void> {}
}
