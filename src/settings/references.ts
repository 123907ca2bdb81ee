/**
 * Settings that name something in the directory are refused when the directory does not know it, rather than
 * failing later on every message (issue 12 item 7): an always-Bcc target on a local domain (per domain or
 * `queue.alwaysBcc`) that no user, group or pseudonym owns would bounce every copy; a pseudonym pointing at a user or
 * group that does not exist receives nothing; `user set` for a login AD does not know changes nobody.
 *
 * The check is asynchronous (it asks AD), so the front ends (CLI and admin API) run it before they change the
 * settings store. `force` accepts the value anyway with a warning: an AD admin may be about to create the account.
 * A directory that cannot answer is a TempFailure (CLI 75, API 503) unless `force` is given.
 * Addresses on other domains (relayed or external) are delivered elsewhere and are not checked here.
 */
import type { Directory } from '../directory/types.js';
import { TempFailure } from '../lib/errors.js';
import { SettingsError } from './errors.js';
import type { Settings } from './store.js';
import { normalizeAddress } from './validate.js';

export type Reference =
  /** An address copies are sent to; `addingLocalDomain` is a local domain being added in the same request. */
  | { kind: 'bcc'; field: string; address: string; addingLocalDomain?: string }
  | { kind: 'user'; field: string; login: string }
  | { kind: 'group'; field: string; name: string };

export interface ReferenceProblem {
  field: string;
  message: string;
}

export interface ReferenceDeps {
  directory: Pick<Directory, 'findAddress' | 'findLogin' | 'findGroup'>;
  settings: Pick<Settings, 'getDomain' | 'findPseudonym'>;
}

/** Thrown when a reference is unknown and `force` was not given; `field` names the offending input. */
export class UnknownReferenceError extends SettingsError {
  constructor(readonly problem: ReferenceProblem) {
    super('not-found', problem.message, problem.field);
    this.name = 'UnknownReferenceError';
  }
}

async function problemOf(deps: ReferenceDeps, ref: Reference): Promise<string | null> {
  switch (ref.kind) {
    case 'user': {
      const u = await deps.directory.findLogin(ref.login);
      return u ? null : `the directory has no user ${JSON.stringify(ref.login)} (sAMAccountName, userPrincipalName or primary address)`;
    }
    case 'group': {
      const g = await deps.directory.findGroup(ref.name);
      return g ? null : `the directory has no group ${JSON.stringify(ref.name)}`;
    }
    case 'bcc': {
      let address: string;
      try {
        address = normalizeAddress(ref.address, 'Bcc address');
      } catch {
        return null; // the settings store refuses the syntax with its own message
      }
      const domain = address.slice(address.lastIndexOf('@') + 1);
      const d = deps.settings.getDomain(domain);
      const local = d ? d.type === 'local' : domain === ref.addingLocalDomain;
      if (!local) return null;
      const pseudonym = deps.settings.findPseudonym(address);
      if (pseudonym) {
        const { kind, name } = pseudonym.target;
        const target = kind === 'user' ? await deps.directory.findLogin(name) : await deps.directory.findGroup(name);
        return target ? null : `${address} is a pseudonym of ${kind} ${JSON.stringify(name)}, which the directory does not know: every copy would bounce`;
      }
      const entry = await deps.directory.findAddress(address);
      if (!entry) return `no user, group or pseudonym has the address ${address} (${domain} is a local domain): every copy would bounce`;
      if (entry.kind === 'user' && !entry.enabled) return `${address} belongs to ${entry.login}, whose account is disabled or expired: every copy would bounce`;
      if (entry.kind === 'group' && !entry.mailEnabled) return `${address} belongs to group ${entry.name}, which has no mail attribute and receives nothing: every copy would bounce`;
      return null;
    }
  }
}

/**
 * Checks `refs`; without `force` the first unknown one throws UnknownReferenceError (its message ends with how to
 * override: `forceHint`, e.g. "use --force"). With `force` the problems are returned as warnings instead.
 */
export async function checkReferences(
  deps: ReferenceDeps,
  refs: Reference[],
  opts: { force: boolean; forceHint: string },
): Promise<ReferenceProblem[]> {
  const warnings: ReferenceProblem[] = [];
  for (const ref of refs) {
    let message: string | null;
    try {
      message = await problemOf(deps, ref);
    } catch (err) {
      if (!(err instanceof TempFailure)) throw err;
      if (!opts.force) throw new TempFailure(`cannot check ${ref.field} against the directory: ${err.message}`, { cause: err });
      message = `not checked against the directory (${err.message})`;
    }
    if (!message) continue;
    const problem = { field: ref.field, message: `${ref.field}: ${message}` };
    if (!opts.force) {
      throw new UnknownReferenceError({ ...problem, message: `${problem.message}; if the AD account is about to be created, ${opts.forceHint}` });
    }
    warnings.push(problem);
  }
  return warnings;
}
