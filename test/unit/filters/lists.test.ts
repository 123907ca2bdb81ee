import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../../src/lib/logger.ts';
import { SETTING_DEFS, type SettingKey, type SettingValue } from '../../../src/settings/keys.ts';
import { allowFrom, allowTo, blockFrom, listStages, matchList, type SettingsReader } from '../../../src/filters/lists.ts';
import { FilterPipeline } from '../../../src/filters/pipeline.ts';
import type { FilterContext } from '../../../src/filters/types.ts';

/** Settings as the store would hold them: every value goes through the key's schema (normalised, validated). */
function settings(values: Partial<Record<SettingKey, unknown>>): SettingsReader {
  const parsed = new Map<SettingKey, unknown>();
  for (const [k, v] of Object.entries(values)) parsed.set(k as SettingKey, SETTING_DEFS[k as SettingKey].schema.parse(v));
  return {
    get<K extends SettingKey>(key: K): SettingValue<K> {
      return (parsed.has(key) ? parsed.get(key) : SETTING_DEFS[key].default) as SettingValue<K>;
    },
  };
}

function ctx(over: Partial<FilterContext> = {}): FilterContext {
  return { id: 'S1', client: { address: '192.0.2.7', listener: 'smtp' }, recipients: [], tags: {}, ...over };
}

test('an address entry matches that address only, any case', () => {
  const list = ['spammer@bad.test'];
  assert.equal(matchList(list, 'Spammer@BAD.test'), 'spammer@bad.test');
  assert.equal(matchList(list, 'other@bad.test'), null);
  assert.equal(matchList(list, 'spammer@sub.bad.test'), null);
});

test('a domain entry matches the domain and its subdomains, not a domain that merely ends the same', () => {
  const list = ['bad.test'];
  assert.equal(matchList(list, 'anyone@bad.test'), 'bad.test');
  assert.equal(matchList(list, 'anyone@mail.bad.test'), 'bad.test');
  assert.equal(matchList(list, 'anyone@BAD.TEST.'), 'bad.test');
  assert.equal(matchList(list, 'anyone@notbad.test'), null);
  assert.equal(matchList(list, 'bad.test@good.test'), null);
});

test('the null sender and malformed addresses match nothing', () => {
  assert.equal(matchList(['bad.test'], ''), null);
  assert.equal(matchList(['bad.test'], undefined), null);
  assert.equal(matchList(['bad.test'], 'bad.test'), null);
});

test('internationalised domains match in their ASCII form, as the settings store them', () => {
  const s = settings({ 'filter.lists.blockFrom': ['bücher.example'] });
  const list = s.get('filter.lists.blockFrom');
  assert.deepEqual(list, ['xn--bcher-kva.example']);
  assert.equal(matchList(list, 'info@bücher.example'), 'xn--bcher-kva.example');
  assert.equal(matchList(list, 'info@xn--bcher-kva.example'), 'xn--bcher-kva.example');
});

test('blockFrom refuses a listed sender at MAIL FROM with 554 5.7.1; "@domain" entries work too', async () => {
  const stage = blockFrom({ settings: settings({ 'filter.lists.blockFrom': ['@bad.test', 'eve@corp.example'] }) });
  assert.equal(stage.phase, 'mail');
  const v = await stage.check(ctx({ from: 'promo@news.bad.test' }));
  assert.equal(v.action, 'reject');
  assert.deepEqual(v.reply, { code: 554, enhanced: '5.7.1', text: 'Sender address rejected: blocked by policy' });
  assert.deepEqual(v.tags, { blockedSender: 'bad.test' });
  assert.equal((await stage.check(ctx({ from: 'eve@corp.example' }))).action, 'reject');
  assert.equal((await stage.check(ctx({ from: 'alice@corp.example' }))).action, 'accept');
  assert.equal((await stage.check(ctx({ from: '' }))).action, 'accept');
});

test('allowFrom tags the transaction spamExempt and accepts', async () => {
  const stage = allowFrom({ settings: settings({ 'filter.lists.allowFrom': ['partner.test'] }) });
  assert.deepEqual(await stage.check(ctx({ from: 'ceo@partner.test' })), {
    action: 'accept',
    tags: { spamExempt: true, allowFromEntry: 'partner.test' },
  });
  assert.deepEqual(await stage.check(ctx({ from: 'ceo@other.test' })), { action: 'accept' });
});

test('allowTo accumulates the exempt recipients over the RCPT commands of a transaction', async () => {
  const s = settings({ 'filter.lists.allowTo': ['postmaster@corp.example', 'sales.corp.example'] });
  const p = new FilterPipeline({ stages: [allowTo({ settings: s })], log: silentLogger });
  const c = ctx({ from: 'x@remote.test' });
  for (const rcpt of ['postmaster@corp.example', 'bob@corp.example', 'ann@sales.corp.example', 'postmaster@corp.example']) {
    c.rcpt = rcpt;
    const r = await p.run('rcpt', c);
    assert.equal(r.action, 'accept');
    c.recipients.push(rcpt);
  }
  assert.deepEqual(c.tags.spamExemptRecipients, ['postmaster@corp.example', 'ann@sales.corp.example']);
});

test('a sender on both the block and the allow list is blocked (block runs first)', async () => {
  const s = settings({ 'filter.lists.blockFrom': ['bad.test'], 'filter.lists.allowFrom': ['bad.test'] });
  const p = new FilterPipeline({ stages: listStages({ settings: s }), log: silentLogger });
  const c = ctx({ from: 'x@bad.test' });
  const r = await p.run('mail', c);
  assert.equal(r.action, 'reject');
  assert.equal(c.tags.spamExempt, undefined);
});

test('lists are read on every check, so a change applies without a restart', async () => {
  let values: string[] = [];
  const s: SettingsReader = {
    get: (<K extends SettingKey>(key: K) => (key === 'filter.lists.blockFrom' ? values : SETTING_DEFS[key].default)) as SettingsReader['get'],
  };
  const stage = blockFrom({ settings: s });
  assert.equal((await stage.check(ctx({ from: 'x@bad.test' }))).action, 'accept');
  values = ['bad.test'];
  assert.equal((await stage.check(ctx({ from: 'x@bad.test' }))).action, 'reject');
});
