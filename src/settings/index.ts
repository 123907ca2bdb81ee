/** Runtime settings (DESIGN.md §7): see store.ts for the Settings class, keys.ts for the key/value registry. */
export { openSettings, Settings } from './store.js';
export type {
  Domain,
  DomainInput,
  DomainPatch,
  DomainType,
  EffectiveUserSettings,
  Pseudonym,
  PseudonymInput,
  PseudonymMatch,
  PseudonymTarget,
  RemovedDomain,
  SettingEntry,
  UserPatch,
  UserSettings,
} from './store.js';
export {
  assertSettingKey,
  isSettingKey,
  parseSettingText,
  SETTING_DEFS,
  SETTING_KEYS,
  settingDef,
  type SettingDef,
  type SettingKey,
  type SettingKind,
  type SettingPage,
  type SettingValue,
  type SettingValues,
} from './keys.js';
export { SettingsError, type SettingsErrorCode } from './errors.js';
export { MIGRATIONS_DIR, migrate, openDatabase, openSettingsDatabase, SETTINGS_DB_FILE, type SqliteDatabase } from './db.js';
export {
  formatNexthop,
  normalizeAddress,
  normalizeAddressOrDomain,
  normalizeDomain,
  normalizeLocalPart,
  normalizeLogin,
  normalizeNetwork,
  parseNexthop,
  type Nexthop,
} from './validate.js';
