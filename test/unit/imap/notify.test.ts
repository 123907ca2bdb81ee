/**
 * NOTIFY (RFC 5465) as pure functions: the NOTIFY SET / NONE grammar and which event group decides for a mailbox.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ImapError } from '../../../src/imap/command.ts';
import type { ImapSession } from '../../../src/imap/connection.ts';
import { NotifyState, parseNotify } from '../../../src/imap/notify.ts';
import { parseCommand } from '../../../src/imap/parser.ts';

const parse = (args: string) => parseNotify(parseCommand(Buffer.from(`t NOTIFY ${args}\r\n`)).args);

describe('NOTIFY grammar (RFC 5465 §8)', () => {
  test('SET [STATUS] with every filter kind; NONE', () => {
    assert.equal(parse('NONE'), null);
    const spec = parse('SET STATUS (selected (MessageNew (UID FLAGS) MessageExpunge)) (subtree (A B) (MailboxName)) (mailboxes INBOX NONE) (inboxes (FlagChange)) (personal (SubscriptionChange)) (subscribed (messagenew messageexpunge))')!;
    assert.equal(spec.status, true);
    assert.deepEqual(
      spec.groups.map((g) => [g.filter.kind, [...g.events]]),
      [
        ['selected', ['MessageNew', 'MessageExpunge']],
        ['subtree', ['MailboxName']],
        ['mailboxes', []],
        ['inboxes', ['FlagChange']],
        ['personal', ['SubscriptionChange']],
        ['subscribed', ['MessageNew', 'MessageExpunge']],
      ],
    );
    assert.equal(spec.groups[0].fetch?.length, 2);
    assert.deepEqual(spec.groups[1].filter, { kind: 'subtree', names: ['A', 'B'] });
    assert.deepEqual(parse('SET STATUS'), { status: true, groups: [] });
  });

  test('unsupported events are NO with BADEVENT listing what is supported; broken syntax is BAD', () => {
    assert.throws(
      () => parse('SET (personal (MessageNew MessageExpunge AnnotationChange))'),
      (e: unknown) => e instanceof ImapError && e.status === 'NO' && e.code === 'BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)',
    );
    for (const bad of ['SET (personal (MessageNew (UID) MessageExpunge))', 'SET (selected NONE) (selected-delayed NONE)', 'SET (personal NONE) (personal NONE)', 'SET (mailboxes (MessageNew))', 'SET (personal ())', 'SET personal', 'NONE x', 'GET']) {
      assert.throws(() => parse(bad), (e: unknown) => e instanceof ImapError && e.status === 'BAD', bad);
    }
  });
});

describe('which group decides (most specific first)', () => {
  test('mailboxes, then the longest subtree, then subscribed, inboxes, personal; shared folders only by name', () => {
    const spec = parse('SET (personal (MessageNew MessageExpunge)) (inboxes (FlagChange)) (subtree A (MailboxName)) (subtree A/B (SubscriptionChange)) (mailboxes A/B/c NONE) (subscribed (MessageExpunge))')!;
    const state = new NotifyState({} as ImapSession, spec);
    (state as unknown as { subscriptions: Set<string> }).subscriptions = new Set(['Subbed', 'INBOX']);
    const kind = (name: string) => {
      const g = state.groupFor(name);
      return g && (g.filter.kind === 'subtree' ? `subtree ${g.filter.names[0]}` : g.filter.kind);
    };
    assert.equal(kind('A/B/c'), 'mailboxes');
    assert.equal(kind('A/B/d'), 'subtree A/B');
    assert.equal(kind('A/X'), 'subtree A');
    assert.equal(kind('A'), 'subtree A');
    assert.equal(kind('Subbed'), 'subscribed');
    assert.equal(kind('INBOX'), 'subscribed');
    assert.equal(kind('Other'), 'personal');
    assert.equal(kind('Shared/sales'), 'inboxes');
    assert.equal(kind('Shared/sales/Archive'), undefined);
  });
});
