/**
 * The directory IMAP and POP3 log in through: the same answers, except that an account without a mailbox now
 * (not in `mailbox.enabledGroup`, or its mailbox orphaned) is not found. The authenticator then answers as for an
 * unknown login, so a refused login tells nobody whether the account exists (DESIGN.md §6).
 */
import type { Directory, UserEntry } from '../directory/types.js';

export function mailboxLoginDirectory(inner: Directory, mailboxEnabled: (user: UserEntry) => Promise<boolean>): Directory {
  return {
    findAddress: (a) => inner.findAddress(a),
    findLogin: async (login) => {
      const user = await inner.findLogin(login);
      // A disabled or expired account passes: the authenticator refuses it as such (logged with the reason, answered
      // like a wrong password), which says more to the admin reading the log than "unknown".
      return user && (!user.enabled || (await mailboxEnabled(user))) ? user : null;
    },
    findGuid: (g) => inner.findGuid(g),
    findGroup: (n) => inner.findGroup(n),
    members: (g) => inner.members(g),
    groupsOf: (u) => inner.groupsOf(u),
    listUsers: () => inner.listUsers(),
    listGroups: () => inner.listGroups(),
    verifyPassword: (u, p) => inner.verifyPassword(u, p),
    health: () => inner.health(),
    close: async () => undefined,
  };
}
