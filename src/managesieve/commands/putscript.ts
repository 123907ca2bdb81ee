import { compileOrRefuse, scriptArg } from './script-check.js';
import { AUTHENTICATED, expectArgs, storage, stringArg, type ManageSieveCommand } from './types.js';

/**
 * RFC 5804 §2.6 PUTSCRIPT: the quota first (cheap, and what HAVESPACE promised), then the compile — a script with
 * errors is refused with their line and column and nothing is stored — then the durable write (sieve/storage.ts).
 * Replacing the active script keeps it active: delivery runs the new text from the next message on.
 */
export const putscript: ManageSieveCommand = {
  name: 'PUTSCRIPT',
  states: AUTHENTICATED,
  async run(s, args) {
    expectArgs(args, 2);
    const name = stringArg(args[0], 'script name');
    const text = scriptArg(args[1]);
    await storage(() => s.ctx.scripts.checkSpace(s.home, name, Buffer.byteLength(text, 'utf8')));
    const warnings = compileOrRefuse(s, text);
    await storage(() => s.ctx.scripts.put(s.home, name, text));
    s.log.info({ user: s.user?.login, client: s.client, protocol: 'managesieve', script: name, bytes: Buffer.byteLength(text, 'utf8') }, `script ${name} stored`);
    // §1.3 WARNINGS: stored, with what the client should know.
    if (warnings.length) return s.ok(warnings.join('\r\n'), 'WARNINGS');
    s.ok('Putscript completed');
  },
};
