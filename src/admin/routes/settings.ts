/**
 * Runtime settings (DESIGN.md §7): every key of the registry with value, default and description; set one (PUT),
 * several in one transaction (PATCH, so rules between keys are checked on the result), or reset one (DELETE).
 * Values are validated by the key's schema; the running server reads settings live, so a change applies to the
 * next SMTP/IMAP/POP3 command without a restart. Secret values (the smarthost password) are never returned.
 */
import { assertSettingKey, isSettingKey, type SettingKey } from '../../settings/keys.js';
import type { SettingEntry } from '../../settings/store.js';
import { notFound } from '../errors.js';
import { checkApiReferences } from '../references.js';
import type { AdminDeps, App } from '../types.js';

function shown(e: SettingEntry) {
  if (!e.secret) return e;
  return { ...e, value: e.isSet && e.value ? '(hidden)' : e.value, default: e.default ? '(hidden)' : e.default };
}

function entryOf(deps: AdminDeps, key: SettingKey) {
  return shown(deps.settings.entries().find((e) => e.key === key)!);
}

/** An unknown key in the URL is a resource that does not exist (404), with the registry's suggestions. */
function knownKey(key: string): void {
  if (isSettingKey(key)) return;
  try {
    assertSettingKey(key);
  } catch (err) {
    throw notFound((err as Error).message);
  }
}

export function settingsRoutes(app: App, deps: AdminDeps): void {
  const { settings } = deps;

  app.get('/api/settings', async (req) => {
    const { page } = req.query as { page?: string };
    const all = settings.entries().map(shown);
    return { settings: page ? all.filter((e) => e.page.toLowerCase() === page.toLowerCase()) : all };
  });

  app.get('/api/settings/:key', async (req) => {
    const { key } = req.params as { key: string };
    knownKey(key);
    return entryOf(deps, key as SettingKey);
  });

  app.put(
    '/api/settings/:key',
    { schema: { body: { type: 'object', required: ['value'], properties: { value: {} }, additionalProperties: false } } },
    async (req, reply) => {
      const { key } = req.params as { key: string };
      knownKey(key);
      const { value } = req.body as { value: unknown };
      if (key === 'queue.alwaysBcc' && typeof value === 'string' && value !== '') {
        await checkApiReferences(deps, req, reply, [{ kind: 'bcc', field: key, address: value }]);
      }
      // apply(): with state postgres the change is committed there (every node) before the answer.
      await settings.apply(() => settings.set(key as SettingKey, value));
      deps.log.info({ key, by: req.admin }, 'admin: setting changed');
      return entryOf(deps, key as SettingKey);
    },
  );

  app.patch('/api/settings', { schema: { body: { type: 'object', minProperties: 1 } } }, async (req, reply) => {
    const values = req.body as Record<string, unknown>;
    const bcc = values['queue.alwaysBcc'];
    if (typeof bcc === 'string' && bcc !== '') await checkApiReferences(deps, req, reply, [{ kind: 'bcc', field: 'queue.alwaysBcc', address: bcc }]);
    await settings.apply(() => settings.setMany(values));
    deps.log.info({ keys: Object.keys(values), by: req.admin }, 'admin: settings changed');
    return { settings: Object.keys(values).map((k) => entryOf(deps, k as SettingKey)) };
  });

  app.delete('/api/settings/:key', async (req) => {
    const { key } = req.params as { key: string };
    knownKey(key);
    await settings.apply(() => settings.unset(key));
    deps.log.info({ key, by: req.admin }, 'admin: setting reset to default');
    return entryOf(deps, key as SettingKey);
  });
}
