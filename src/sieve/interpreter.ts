/**
 * execute(): runs a compiled script on a message (RFC 5228 §2.10 for actions and the implicit keep), with the
 * run-time limits (actions, redirects, run time, include depth) that make a hostile or broken script harmless:
 * every failure is a SieveRuntimeError, on which the deliverer keeps the message in INBOX and logs why.
 */
import { decodeHeaderValue } from './header-decode.js';
import { compare, globMatch, isMatch, containsMatch, MatchBudgetExceeded, relationHolds } from './match.js';
import type { Arg, Pos, StringArg } from './parser.js';
import { listArg, StopSignal, type Node } from './registry.js';
import type { Runtime } from './runtime.js';
import { SieveRuntimeError, type CompiledScript, type ExecuteResult, type SieveAction, type SieveEnvironment, type SieveHeaderField, type SieveMessage } from './types.js';
import { compile, DEFS, SIEVE_EXTENSIONS, type ScriptBody } from './validate.js';
import { normaliseFlags } from './ext/core.js';

/** Pigeonhole's defaults: sieve_max_actions 32, sieve_max_redirects 4, include nesting 10. */
export const DEFAULT_LIMITS = { maxActions: 32, maxRedirects: 4, maxRunMs: 10_000, maxIncludeDepth: 10 } as const;
/** Pigeonhole's sieve_variables_max_variable_size: longer values are truncated (RFC 5229 §6 allows limits). */
export const MAX_VARIABLE_LENGTH = 4096;
/** Steps of :matches backtracking per run, so a pathological pattern ends as a limit error, not a hang. */
const MATCH_BUDGET = 2_000_000;

interface State {
  msg: SieveMessage;
  env: SieveEnvironment;
  now: Date;
  zone: string;
  limits: { maxActions: number; maxRedirects: number; maxRunMs: number; maxIncludeDepth: number };
  deadline: number;
  actions: SieveAction[];
  implicitKeep: boolean;
  flags: string[];
  globals: Map<string, string>;
  included: Set<string>;
  compiledIncludes: Map<string, CompiledScript>;
  edited?: SieveHeaderField[];
  duplicates: Map<string, { id: string; seconds: number; last: boolean; seen: boolean }>;
  budget: { steps: number };
  log: string[];
  extensions: ReadonlySet<string>;
}

function localZone(d: Date): string {
  const off = -d.getTimezoneOffset();
  const sign = off < 0 ? '-' : '+';
  const a = Math.abs(off);
  return `${sign}${String(Math.floor(a / 60)).padStart(2, '0')}${String(a % 60).padStart(2, '0')}`;
}

export async function execute(script: CompiledScript, msg: SieveMessage, env: SieveEnvironment): Promise<ExecuteResult> {
  const now = env.now ?? new Date();
  const limits = { ...DEFAULT_LIMITS, ...stripUndefined(env.limits ?? {}) };
  const state: State = {
    msg,
    env,
    now,
    zone: env.zone ?? localZone(now),
    limits,
    deadline: Date.now() + limits.maxRunMs,
    actions: [],
    implicitKeep: true,
    flags: [],
    globals: new Map(),
    included: new Set(),
    compiledIncludes: new Map(),
    duplicates: new Map(),
    budget: { steps: MATCH_BUDGET },
    log: [],
    extensions: new Set(SIEVE_EXTENSIONS),
  };
  await new Frame(state, script.body as ScriptBody, []).runScript();
  const actions = [...state.actions];
  // RFC 5228 §2.10.2: the implicit keep files into INBOX unless an action cancelled it; RFC 5232 §5: with the
  // current flags of the internal variable.
  if (state.implicitKeep && !actions.some((a) => a.type === 'keep')) {
    actions.push({ type: 'keep', flags: [...state.flags], ...(state.edited ? { headers: state.edited.map((f) => ({ ...f })) } : {}) });
  }
  return {
    actions,
    editedHeaders: state.edited,
    duplicateIds: [...state.duplicates.values()].map(({ id, seconds, last }) => ({ id, seconds, last })),
    log: state.log,
  };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

class Frame implements Runtime {
  private readonly locals = new Map<string, string>();
  private readonly globalNames = new Set<string>();
  private matchVars: string[] = [];

  constructor(
    private readonly state: State,
    private readonly script: ScriptBody,
    /** The include chain leading to this script ("personal:name"), for recursion and depth (RFC 6609 §3.2). */
    private readonly chain: string[],
  ) {}

  get msg() {
    return this.state.msg;
  }
  get env() {
    return this.state.env;
  }
  get now() {
    return this.state.now;
  }
  get zone() {
    return this.state.zone;
  }

  async runScript(): Promise<void> {
    try {
      await this.runBlock(this.script.nodes);
    } catch (e) {
      if (e instanceof StopSignal) {
        // RFC 6609 §3.4: return ends this script only; stop ends them all (RFC 5228 §3.3).
        if (e.kind === 'return' && this.chain.length > 0) return;
        if (this.chain.length > 0) throw e;
        return;
      }
      throw e;
    }
  }

  private async runBlock(nodes: Node[]): Promise<void> {
    for (const n of nodes) await this.runCommand(n);
  }

  private checkTime(at: Pos): void {
    if (Date.now() > this.state.deadline) this.error(`the script ran longer than ${this.state.limits.maxRunMs} ms`, at);
  }

  private async runCommand(n: Node): Promise<void> {
    this.checkTime(n);
    if (n.branches) {
      for (const b of n.branches) {
        if (!b.test || (await this.evalTest(b.test))) {
          await this.runBlock(b.block);
          return;
        }
      }
      return;
    }
    const def = DEFS[n.name];
    if (!def?.run) return; // require, and nothing else, has no run-time effect
    await this.guard(n, () => def.run!(n, this));
  }

  private async evalTest(t: Node): Promise<boolean> {
    this.checkTime(t);
    switch (t.name) {
      case 'allof':
        for (const s of t.tests) if (!(await this.evalTest(s))) return false;
        return true;
      case 'anyof':
        for (const s of t.tests) if (await this.evalTest(s)) return true;
        return false;
      case 'not':
        return !(await this.evalTest(t.tests[0]));
    }
    const def = DEFS[t.name];
    return this.guard(t, () => def.test!(t, this));
  }

  /** Errors from the environment (a store that failed, a slow lookup) become SieveRuntimeErrors at this node. */
  private async guard<T>(at: Pos, f: () => Promise<T> | T): Promise<T> {
    try {
      const remaining = this.state.deadline - Date.now();
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new SieveRuntimeError(`the script ran longer than ${this.state.limits.maxRunMs} ms`, at.line, at.column)), Math.max(0, remaining));
      });
      try {
        return await Promise.race([Promise.resolve().then(f), timeout]);
      } finally {
        clearTimeout(timer);
      }
    } catch (e) {
      if (e instanceof SieveRuntimeError || e instanceof StopSignal) throw e;
      if (e instanceof MatchBudgetExceeded) throw new SieveRuntimeError('a :matches pattern needed too much work', at.line, at.column);
      const err = new SieveRuntimeError(`failed: ${e instanceof Error ? e.message : String(e)}`, at.line, at.column);
      (err as Error).cause = e;
      throw err;
    }
  }

  has(ext: string): boolean {
    return this.script.requires.has(ext);
  }

  error(message: string, at: Pos): never {
    throw new SieveRuntimeError(message, at.line, at.column);
  }

  log(message: string): void {
    this.state.log.push(message);
  }

  stop(kind: 'stop' | 'return'): never {
    throw new StopSignal(kind);
  }

  // ---- variables (RFC 5229) ----

  expand(s: StringArg): string {
    if (!this.has('variables') || !s.value.includes('${')) return s.value;
    // §3: "${" name "}" with an optional namespace; a reference that does not follow the syntax stays as written.
    return s.value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*|[0-9]+)\}/g, (whole, name: string) => {
      if (/^[0-9]+$/.test(name)) return this.matchVars[Number(name)] ?? '';
      const lower = name.toLowerCase();
      if (lower.includes('.') && !lower.startsWith('global.')) return whole;
      return this.getVar(lower);
    });
  }

  expandList(a: Arg | true | undefined): string[] {
    return listArg(a).map((s) => this.expand(s));
  }

  getVar(name: string): string {
    const n = name.toLowerCase();
    if (n.startsWith('global.')) return this.state.globals.get(n.slice(7)) ?? '';
    if (this.globalNames.has(n)) return this.state.globals.get(n) ?? '';
    return this.locals.get(n) ?? '';
  }

  setVar(name: string, value: string, _at: Pos): void {
    const n = name.toLowerCase();
    const v = value.length > MAX_VARIABLE_LENGTH ? Array.from(value).slice(0, MAX_VARIABLE_LENGTH).join('') : value;
    if (n.startsWith('global.')) this.state.globals.set(n.slice(7), v);
    else if (this.globalNames.has(n)) this.state.globals.set(n, v);
    else this.locals.set(n, v);
  }

  declareGlobal(name: string, at: Pos): void {
    const n = name.toLowerCase();
    // RFC 6609 §3.4.1: declaring global a variable this script already set is an error.
    if (this.locals.has(n)) this.error(`global: '${name}' was already set as a local variable`, at);
    this.globalNames.add(n);
  }

  // ---- flags (RFC 5232) ----

  getFlags(variable?: string): string[] {
    if (variable === undefined) return [...this.state.flags];
    return normaliseFlags([this.getVar(variable)]);
  }

  setFlags(flags: string[], variable?: string): void {
    const f = normaliseFlags(flags);
    if (variable === undefined) this.state.flags = f;
    else this.setVar(variable, f.join(' '), { line: 0, column: 0 });
  }

  // ---- matching (RFC 5228 §2.7, RFC 5231) ----

  match(node: Node, values: string[], keys: string[]): boolean {
    const c = node.comparator;
    for (const v of values) {
      for (const k of keys) {
        switch (node.matchType) {
          case 'is':
            if (isMatch(c, v, k)) return true;
            break;
          case 'contains':
            if (containsMatch(c, v, k)) return true;
            break;
          case 'value':
            if (relationHolds(node.relation!, compare(c, v, k))) return true;
            break;
          case 'matches': {
            const m = globMatch(c, k, v, this.state.budget);
            if (m) {
              // RFC 5229 §3.2: a successful :matches sets ${0}..${9}; a failed one leaves them.
              if (this.has('variables')) this.matchVars = m.slice(0, 10);
              return true;
            }
            break;
          }
        }
      }
    }
    return false;
  }

  matchCount(node: Node, count: number, keys: string[]): boolean {
    const v = String(count);
    return keys.some((k) => relationHolds(node.relation!, compare(node.comparator, v, k)));
  }

  // ---- header (with editheader's changes, RFC 5293) ----

  headers(name: string): string[] {
    if (!this.state.edited) return this.state.msg.headers(name);
    return this.rawHeaders(name).map(decodeHeaderValue);
  }

  rawHeaders(name: string): string[] {
    if (!this.state.edited) return this.state.msg.rawHeaders(name);
    const key = name.toLowerCase();
    return this.state.edited.filter((f) => f.name.toLowerCase() === key).map((f) => f.value);
  }

  editableHeader(): SieveHeaderField[] {
    this.state.edited ??= this.state.msg.headerFields().map((f) => ({ ...f }));
    return this.state.edited;
  }

  // ---- actions (RFC 5228 §2.10) ----

  cancelImplicitKeep(): void {
    this.state.implicitKeep = false;
  }

  addAction(action: SieveAction, at: Pos): void {
    const acts = this.state.actions;
    const has = (t: SieveAction['type']) => acts.some((a) => a.type === t);
    // RFC 5429 §2.4: one reject per script; reject MUST be incompatible with vacation (RFC 5230 §4.7 too) and is
    // NOT RECOMMENDED with actions that deliver (keep, fileinto, redirect): we refuse those combinations.
    if (action.type === 'reject') {
      if (has('reject')) this.error('reject: only one reject or ereject is allowed', at);
      const other = acts.find((a) => a.type === 'keep' || a.type === 'fileinto' || a.type === 'redirect' || a.type === 'vacation');
      if (other) this.error(`${action.ereject ? 'ereject' : 'reject'} cannot be combined with ${other.type}`, at);
    } else if (action.type !== 'discard' && has('reject')) {
      this.error(`${action.type} cannot be combined with reject`, at);
    }
    if (action.type === 'vacation' && has('vacation')) this.error('vacation: only one vacation action is allowed (RFC 5230 §4.7)', at);

    // RFC 5228 §2.10.3: the same delivery twice is done once.
    if (action.type === 'keep' || (action.type === 'fileinto' && action.mailbox.toUpperCase() === 'INBOX')) {
      const same = acts.find((a) => a.type === 'keep' || (a.type === 'fileinto' && a.mailbox.toUpperCase() === 'INBOX'));
      if (same && (same.type === 'keep' || same.type === 'fileinto')) {
        same.flags = action.flags;
        this.log(`${action.type}: already delivering to INBOX`);
        return;
      }
    }
    if (action.type === 'fileinto') {
      const same = acts.find((a): a is Extract<SieveAction, { type: 'fileinto' }> => a.type === 'fileinto' && a.mailbox === action.mailbox);
      if (same) {
        // the later command's flags win, as its :flags or the internal variable at that point
        same.flags = action.flags;
        same.create ||= action.create;
        same.copy &&= action.copy;
        return;
      }
    }
    if (action.type === 'redirect') {
      const same = acts.find((a): a is Extract<SieveAction, { type: 'redirect' }> => a.type === 'redirect' && a.address.toLowerCase() === action.address.toLowerCase());
      if (same) {
        same.copy &&= action.copy;
        return;
      }
      if (acts.filter((a) => a.type === 'redirect').length >= this.state.limits.maxRedirects) {
        this.error(`redirect: more than ${this.state.limits.maxRedirects} redirects`, at);
      }
    }
    if (action.type === 'discard' && has('discard')) return;
    if (acts.length >= this.state.limits.maxActions) this.error(`more than ${this.state.limits.maxActions} actions`, at);
    // RFC 5293 §7: what is stored or sent has the header as edited so far.
    if (this.state.edited && (action.type === 'keep' || action.type === 'fileinto' || action.type === 'redirect')) {
      action.headers = this.state.edited.map((f) => ({ ...f }));
    }
    acts.push(action);
    this.log(describeAction(action));
  }

  // ---- include (RFC 6609) ----

  async include(name: string, location: 'personal' | 'global', once: boolean, optional: boolean, at: Pos): Promise<void> {
    const key = `${location}:${name}`;
    if (once && this.state.included.has(key)) return;
    // §3.2: a script that includes itself, directly or not, is an error.
    if (this.chain.includes(key)) this.error(`include: '${name}' includes itself`, at);
    if (this.chain.length >= this.state.limits.maxIncludeDepth) this.error(`include: nested deeper than ${this.state.limits.maxIncludeDepth}`, at);
    let compiled = this.state.compiledIncludes.get(key);
    if (!compiled) {
      const text = await this.state.env.loadInclude(name, location);
      if (text === null) {
        // §3.2: :optional makes a missing script nothing; otherwise it is an error.
        if (optional) return;
        this.error(`include: ${location} script '${name}' does not exist`, at);
      }
      const r = compile(text, { included: true, extensions: this.state.extensions });
      if (!r.ok) this.error(`include: ${location} script '${name}' has errors: line ${r.errors[0].line}: ${r.errors[0].message}`, at);
      compiled = r.script;
      this.state.compiledIncludes.set(key, compiled);
    }
    this.state.included.add(key);
    this.log(`include ${key}`);
    await new Frame(this.state, compiled.body as ScriptBody, [...this.chain, key]).runScript();
  }

  // ---- duplicate (RFC 7352) ----

  async duplicateCheck(id: string, seconds: number, last: boolean): Promise<boolean> {
    // §3: ids met earlier in this run are not duplicates: every test with the same id gives the same answer; the
    // id is recorded only after the run succeeded (the caller does), with the arguments of the last test (§3.3).
    const earlier = this.state.duplicates.get(id);
    if (earlier) {
      earlier.seconds = seconds;
      earlier.last = last;
      return earlier.seen;
    }
    const seen = await this.state.env.duplicateSeen(id, seconds);
    this.state.duplicates.set(id, { id, seconds, last, seen });
    return seen;
  }
}

function describeAction(a: SieveAction): string {
  switch (a.type) {
    case 'keep':
      return `keep${a.flags.length ? ` flags ${a.flags.join(' ')}` : ''}`;
    case 'fileinto':
      return `fileinto "${a.mailbox}"${a.copy ? ' :copy' : ''}${a.create ? ' :create' : ''}${a.flags.length ? ` flags ${a.flags.join(' ')}` : ''}`;
    case 'redirect':
      return `redirect ${a.address}${a.copy ? ' :copy' : ''}`;
    case 'reject':
      return a.ereject ? 'ereject' : 'reject';
    case 'discard':
      return 'discard';
    case 'vacation':
      return `vacation handle ${a.handle} every ${a.periodSeconds}s`;
  }
}
