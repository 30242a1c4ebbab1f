// The Directory contract against the embedded users file and the real OpenLDAP of test/stack.
import { Client, DN } from 'ldapts';
import { EmbeddedDirectory } from '../auth/directory-embedded.ts';
import { LdapDirectory } from '../auth/directory-ldap.ts';
import type { NewUser } from '../auth/directory.ts';
import { directoryContract } from './contracts/directory.ts';
import { requireStack, tempDir } from './contracts/support.ts';

directoryContract('embedded (users.json)', async () => {
  const tmp = await tempDir('directory');
  let current = new EmbeddedDirectory(tmp.dir);
  return {
    adapter: current,
    reopen: async () => {
      await current.close();
      return (current = new EmbeddedDirectory(tmp.dir));
    },
    cleanup: async () => {
      await current.close();
      await tmp.remove();
    },
  };
});

/** Remembers what it created so the suite leaves the shared directory as it found it. */
class RecordingLdapDirectory extends LdapDirectory {
  constructor(
    cfg: ConstructorParameters<typeof LdapDirectory>[0],
    private readonly created: Set<string>,
  ) {
    super(cfg);
  }
  override async create(user: NewUser): Promise<void> {
    this.created.add(user.username);
    return super.create(user);
  }
}

directoryContract('ldap (OpenLDAP)', async () => {
  const env = requireStack(['PARLEY_LDAP_URL', 'PARLEY_LDAP_BASE_DN', 'PARLEY_LDAP_USERS_DN', 'PARLEY_LDAP_ADMIN_DN', 'PARLEY_LDAP_ADMIN_PASSWORD']);
  const cfg = {
    url: env.PARLEY_LDAP_URL,
    baseDn: env.PARLEY_LDAP_BASE_DN,
    usersDn: env.PARLEY_LDAP_USERS_DN,
    adminDn: env.PARLEY_LDAP_ADMIN_DN,
    adminPassword: env.PARLEY_LDAP_ADMIN_PASSWORD,
  };
  const created = new Set<string>();
  let current = new RecordingLdapDirectory(cfg, created);
  return {
    adapter: current,
    reopen: async () => {
      await current.close();
      return (current = new RecordingLdapDirectory(cfg, created));
    },
    cleanup: async () => {
      await current.close();
      const admin = new Client({ url: cfg.url, timeout: 5000, connectTimeout: 5000 });
      try {
        await admin.bind(cfg.adminDn, cfg.adminPassword);
        for (const u of created) await admin.del(new DN({ uid: u }).toString() + ',' + cfg.usersDn).catch(() => undefined);
      } finally {
        await admin.unbind().catch(() => undefined);
      }
    },
  };
});
