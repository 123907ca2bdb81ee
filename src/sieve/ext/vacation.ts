/**
 * vacation (RFC 5230 §4) with :seconds (RFC 6131). The action carries the parameters; whether to reply (RFC 3834,
 * the :days tracking per sender and handle, personal-address checks) is the deliverer's decision.
 */
import { createHash } from 'node:crypto';
import { isValidAddress } from '../address.js';
import { numArg, strArg, type Defs } from '../registry.js';

export const DEFAULT_VACATION_DAYS = 7;

/** RFC 5230 §4.2: without :handle, a handle derived from the arguments that make two vacation actions differ. */
export function defaultHandle(reason: string, subject: string | undefined, from: string | undefined, mime: boolean): string {
  return createHash('sha256')
    .update(JSON.stringify([reason, subject ?? null, from ?? null, mime]))
    .digest('hex')
    .slice(0, 32);
}

export const defs: Defs = {
  vacation: {
    kind: 'command',
    ext: 'vacation',
    tags: {
      days: { value: 'number', group: 'period' },
      seconds: { value: 'number', ext: 'vacation-seconds', group: 'period' },
      subject: { value: 'string' },
      from: { value: 'string' },
      addresses: { value: 'stringlist' },
      mime: {},
      handle: { value: 'string' },
    },
    pos: ['string'],
    check(node, ctx) {
      const from = strArg(node.tags.get('from'));
      if (from && !from.value.includes('${') && !isValidAddress(bareAddress(from.value))) ctx.error(`vacation: invalid :from address '${from.value}'`, from);
    },
    run(node, rt) {
      const reason = rt.expand(strArg(node.pos[0])!);
      const subjectArg = strArg(node.tags.get('subject'));
      const fromArg = strArg(node.tags.get('from'));
      const handleArg = strArg(node.tags.get('handle'));
      const subject = subjectArg ? rt.expand(subjectArg) : undefined;
      const from = fromArg ? rt.expand(fromArg) : undefined;
      if (from !== undefined && !isValidAddress(bareAddress(from))) rt.error(`vacation: invalid :from address '${from}'`, node);
      const mime = node.tags.has('mime');
      const days = numArg(node.tags.get('days'));
      const seconds = numArg(node.tags.get('seconds'));
      // RFC 5230 §4.1: :days below 1 is raised to the minimum of 1; RFC 6131 §2: :seconds 0 means "always reply".
      const periodSeconds = seconds !== undefined ? Math.max(0, seconds) : Math.max(1, days ?? DEFAULT_VACATION_DAYS) * 86_400;
      rt.addAction(
        {
          type: 'vacation',
          // §4.2: the synthesised handle uses the arguments before variable expansion.
          handle: handleArg ? rt.expand(handleArg) : defaultHandle(strArg(node.pos[0])!.value, subjectArg?.value, fromArg?.value, mime),
          periodSeconds,
          subject,
          from,
          addresses: rt.expandList(node.tags.get('addresses')),
          mime,
          reason,
        },
        node,
      );
    },
  },
};

/** ":from" may be "Name <addr>"; the syntax check is on the address. */
export function bareAddress(v: string): string {
  const m = /<([^>]*)>\s*$/.exec(v);
  return (m ? m[1] : v).trim();
}
