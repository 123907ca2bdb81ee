import { AUTHENTICATED, expectArgs, storage, stringArg, type ManageSieveCommand } from './types.js';

/**
 * RFC 5804 §2.8 SETACTIVE: makes the script the one delivery runs (`.dovecot.sieve` → sieve/NAME.sieve); the
 * empty name deactivates every script. NO (NONEXISTENT) for an unknown name.
 */
export const setactive: ManageSieveCommand = {
  name: 'SETACTIVE',
  states: AUTHENTICATED,
  async run(s, args) {
    expectArgs(args, 1);
    const name = stringArg(args[0], 'script name');
    await storage(() => s.ctx.scripts.setActive(s.home, name === '' ? null : name));
    s.log.info({ user: s.user?.login, client: s.client, protocol: 'managesieve', script: name || null }, name ? `script ${name} activated` : 'scripts deactivated');
    s.ok(name ? 'Setactive completed' : 'All scripts deactivated');
  },
};
