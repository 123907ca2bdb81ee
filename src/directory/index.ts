import type { DirectoryConfig } from '../config/schema.js';
import type { Logger } from '../lib/logger.js';
import { CachedDirectory } from './cache.js';
import { LdapDirectory } from './ldap/ldap-directory.js';
import { LdifDirectory } from './ldif/ldif-directory.js';
import type { Directory } from './types.js';

export type { Directory, DirectoryEntry, GroupEntry, UserEntry, PasswordCheck, DirectoryHealth } from './types.js';
export { loginKey } from './types.js';
export { CachedDirectory } from './cache.js';

/** The backend named by the config, behind the cache. */
export function createDirectory(cfg: DirectoryConfig, log: Logger): CachedDirectory {
  const mapping = { userPrincipalNameIsAddress: cfg.userPrincipalNameIsAddress };
  const backend: Directory = cfg.type === 'ldap' ? new LdapDirectory(cfg, log) : LdifDirectory.fromFile(cfg.file!, mapping);
  return new CachedDirectory(backend, cfg.cache, log);
}
