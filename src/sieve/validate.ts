/**
 * compile(): parse (parser.ts), then check every command and test against its definition (registry.ts, ext/*):
 * require (RFC 5228 §3.2), argument syntax (§2.6: tagged arguments first, then positional ones), comparators and
 * match types (§2.7), the if/elsif/else chain (§3.1), and each extension's own rules. Errors carry the line and
 * column of the offending token, worded for the person who wrote the script.
 */
import { COMPARATORS, RELATIONS } from './match.js';
import { parse, SieveSyntaxError, type Arg, type CommandNode, type Pos, type StringArg, type TestNode } from './parser.js';
import type { CheckContext, Def, Defs, Node } from './registry.js';
import type { CompileOptions, CompileResult, CompiledScript, SieveError } from './types.js';
import { defs as core } from './ext/core.js';
import { defs as fileinto } from './ext/fileinto.js';
import { defs as envelope } from './ext/envelope.js';
import { defs as reject } from './ext/reject.js';
import { defs as mailbox } from './ext/mailbox.js';
import { defs as body } from './ext/body.js';
import { defs as variables } from './ext/variables.js';
import { defs as imap4flags } from './ext/imap4flags.js';
import { defs as date } from './ext/date.js';
import { defs as include } from './ext/include.js';
import { defs as editheader } from './ext/editheader.js';
import { defs as vacation } from './ext/vacation.js';
import { defs as duplicate } from './ext/duplicate.js';
import { decodeEncodedCharacters } from './ext/encoded-character.js';

export const DEFS: Defs = { ...core, ...fileinto, ...envelope, ...reject, ...mailbox, ...body, ...variables, ...imap4flags, ...date, ...include, ...editheader, ...vacation, ...duplicate };

/** What we implement, in the order ManageSieve's SIEVE capability lists them (RFC 5804 §1.7). */
export const SIEVE_EXTENSIONS: readonly string[] = [
  'fileinto',
  'reject',
  'ereject',
  'envelope',
  'encoded-character',
  'imap4flags',
  'copy',
  'body',
  'variables',
  'relational',
  'subaddress',
  'date',
  'index',
  'mailbox',
  'include',
  'editheader',
  'vacation',
  'vacation-seconds',
  'duplicate',
  'comparator-i;ascii-numeric',
];

/** RFC 5228 §2.7.3: these two are always there; requiring them is allowed and changes nothing. */
const BUILTIN_CAPABILITIES = new Set(['comparator-i;octet', 'comparator-i;ascii-casemap']);

export const DEFAULT_MAX_SCRIPT_BYTES = 1024 * 1024;
const MAX_ERRORS = 10;

export interface ScriptBody {
  nodes: Node[];
  requires: ReadonlySet<string>;
}

class CompileError extends Error {
  constructor(
    message: string,
    readonly at: Pos,
  ) {
    super(message);
  }
}

export function compile(source: string, opts: CompileOptions = {}): CompileResult {
  const max = opts.maxScriptBytes ?? DEFAULT_MAX_SCRIPT_BYTES;
  const bytes = Buffer.byteLength(source, 'utf8');
  if (bytes > max) return { ok: false, errors: [{ line: 1, column: 1, message: `script is too large (${bytes} bytes, the limit is ${max})` }] };
  let tree: CommandNode[];
  try {
    tree = parse(source);
  } catch (e) {
    if (e instanceof SieveSyntaxError) return { ok: false, errors: [{ line: e.line, column: e.column, message: e.message }] };
    throw e;
  }
  const available = opts.extensions ?? new Set(SIEVE_EXTENSIONS);
  const requires = new Set<string>();
  const errors: SieveError[] = [];
  const ctx: CheckContext = {
    has: (ext) => requires.has(ext),
    error(message, at) {
      throw new CompileError(message, at);
    },
    included: opts.included ?? false,
  };
  const record = (e: unknown) => {
    if (e instanceof CompileError) errors.push({ line: e.at.line, column: e.at.column, message: e.message });
    else throw e;
  };

  // RFC 5228 §3.2: require comes before any other command.
  let i = 0;
  for (; i < tree.length && tree[i].name === 'require'; i++) {
    const r = tree[i];
    try {
      if (r.block) ctx.error("require: ends with ';', not a block", r);
      if (r.tests.length > 0 || r.args.length !== 1 || (r.args[0].kind !== 'string' && r.args[0].kind !== 'list')) ctx.error('require: expects a string list of capabilities', r);
      const caps = r.args[0].kind === 'list' ? r.args[0].items : [r.args[0] as StringArg];
      for (const c of caps) {
        const name = c.value.toLowerCase();
        if (BUILTIN_CAPABILITIES.has(name)) continue;
        if (!available.has(name)) ctx.error(SIEVE_EXTENSIONS.includes(name) ? `require: extension '${c.value}' is not enabled on this server` : `require: unknown extension '${c.value}'`, c);
        requires.add(name);
      }
    } catch (e) {
      record(e);
    }
  }
  const decode = requires.has('encoded-character');
  const nodes = checkCommands(tree.slice(i), ctx, available, decode, record, errors);
  if (errors.length > 0) return { ok: false, errors: errors.slice(0, MAX_ERRORS) };
  const script: CompiledScript = { kind: 'sieve-script', requires: [...requires], body: { nodes, requires } satisfies ScriptBody };
  return { ok: true, script };
}

function checkCommands(
  list: CommandNode[],
  ctx: CheckContext,
  available: ReadonlySet<string>,
  decode: boolean,
  record: (e: unknown) => void,
  errors: SieveError[],
): Node[] {
  const out: Node[] = [];
  let lastIf: Node | undefined;
  for (const c of list) {
    if (errors.length >= MAX_ERRORS) break;
    try {
      if (c.name === 'require') ctx.error('require: must come before all other commands', c);
      const node = checkNode(c, 'command', ctx, available, decode);
      if (c.block) node.block = checkCommands(c.block, ctx, available, decode, record, errors);
      if (c.name === 'if') {
        node.branches = [{ test: node.tests[0], block: node.block ?? [] }];
        out.push(node);
        lastIf = node;
        continue;
      }
      if (c.name === 'elsif' || c.name === 'else') {
        // RFC 5228 §3.1: elsif and else follow an if (or an elsif) directly.
        if (!lastIf) ctx.error(`'${c.name}' without a preceding 'if'`, c);
        lastIf.branches!.push({ test: c.name === 'elsif' ? node.tests[0] : undefined, block: node.block ?? [] });
        if (c.name === 'else') lastIf = undefined;
        continue;
      }
      lastIf = undefined;
      out.push(node);
    } catch (e) {
      lastIf = undefined;
      record(e);
    }
  }
  return out;
}

function checkNode(c: TestNode & { block?: CommandNode[] }, kind: 'command' | 'test', ctx: CheckContext, available: ReadonlySet<string>, decode: boolean): Node {
  const def: Def | undefined = DEFS[c.name];
  if (!def) ctx.error(`unknown ${kind} '${c.name}'`, c);
  if (def.kind !== kind) ctx.error(kind === 'command' ? `'${c.name}' is a test, not a command` : `'${c.name}' is a command, not a test`, c);
  if (def.ext && !ctx.has(def.ext)) {
    ctx.error(available.has(def.ext) ? `${kind} '${c.name}' needs require "${def.ext}"` : `unknown ${kind} '${c.name}' (extension '${def.ext}' is not enabled)`, c);
  }
  const node: Node = {
    name: c.name,
    line: c.line,
    column: c.column,
    tags: new Map(),
    tagPos: new Map(),
    pos: [],
    tests: [],
    comparator: 'i;ascii-casemap',
    matchType: 'is',
    addressPart: 'all',
  };
  const groups = new Map<string, string>();
  const args = c.args.map((a) => (decode ? decodeArg(a, ctx) : a));
  if (ctx.has('variables')) for (const a of args) checkNamespaces(a, ctx);
  for (let k = 0; k < args.length; k++) {
    const a = args[k];
    if (a.kind === 'tag') {
      if (node.pos.length > 0) ctx.error(`${c.name}: tag ':${a.name}' must come before the other arguments`, a);
      const spec = def.tags?.[a.name];
      if (!spec) ctx.error(`${c.name}: unknown tag ':${a.name}'`, a);
      if (spec.ext && !ctx.has(spec.ext)) ctx.error(`${c.name}: tag ':${a.name}' needs require "${spec.ext}"`, a);
      if (node.tags.has(a.name)) ctx.error(`${c.name}: tag ':${a.name}' given twice`, a);
      if (spec.group) {
        const other = groups.get(spec.group);
        if (other) ctx.error(`${c.name}: ':${a.name}' cannot be used with ':${other}'`, a);
        groups.set(spec.group, a.name);
      }
      node.tagPos.set(a.name, a);
      if (spec.value) {
        const v = args[k + 1];
        if (!v || !fits(v, spec.value)) ctx.error(`${c.name}: ':${a.name}' must be followed by a ${typeName(spec.value)}`, v ?? a);
        node.tags.set(a.name, v);
        k++;
      } else node.tags.set(a.name, true);
    } else node.pos.push(a);
  }
  const min = def.pos.length - (def.optional ?? 0);
  if (node.pos.length < min || node.pos.length > def.pos.length) {
    const want = min === def.pos.length ? `${min}` : `${min} to ${def.pos.length}`;
    ctx.error(`${c.name}: expects ${want} argument${def.pos.length === 1 ? '' : 's'}${def.pos.length > 0 ? ` (${def.pos.map(typeName).join(', ')})` : ''}, got ${node.pos.length}`, node.pos[def.pos.length] ?? c);
  }
  // Leading optional arguments (setflag's variable name) pair with the end of the declared list.
  const shift = def.optional && def.leadingOptional ? def.pos.length - node.pos.length : 0;
  node.pos.forEach((a, j) => {
    const want = def.pos[j + shift];
    if (!fits(a, want)) ctx.error(`${c.name}: argument ${j + 1} must be a ${typeName(want)}`, a);
  });

  // RFC 5228 §2.7: comparator, match type, address part.
  for (const m of ['is', 'contains', 'matches', 'count', 'value']) if (node.tags.has(m)) node.matchType = m;
  for (const p of ['all', 'localpart', 'domain', 'user', 'detail']) if (node.tags.has(p) && def.tags?.[p]?.group === 'addresspart') node.addressPart = p;
  const comp = node.tags.get('comparator');
  if (comp && comp !== true && comp.kind === 'string') {
    const name = comp.value.toLowerCase();
    if (!(COMPARATORS as readonly string[]).includes(name)) ctx.error(`${c.name}: unknown comparator '${comp.value}'`, comp);
    // §2.7.3: comparators other than i;octet and i;ascii-casemap must be required.
    if (name === 'i;ascii-numeric' && !ctx.has('comparator-i;ascii-numeric')) ctx.error(`${c.name}: comparator 'i;ascii-numeric' needs require "comparator-i;ascii-numeric"`, comp);
    node.comparator = name;
  }
  if (node.comparator === 'i;ascii-numeric' && (node.matchType === 'contains' || node.matchType === 'matches')) {
    // RFC 4790 §9.1: i;ascii-numeric has equality and ordering only (RFC 5228 §2.7.3: an error).
    ctx.error(`${c.name}: comparator 'i;ascii-numeric' does not support :${node.matchType}`, node.tagPos.get(node.matchType)!);
  }
  if (node.matchType === 'count' || node.matchType === 'value') {
    const r = node.tags.get(node.matchType) as StringArg;
    const rel = r.value.toLowerCase();
    // RFC 5231 §4: relational-match is one of "gt" / "ge" / "lt" / "le" / "eq" / "ne".
    if (!(RELATIONS as readonly string[]).includes(rel)) ctx.error(`${c.name}: invalid relation '${r.value}' for :${node.matchType} (gt, ge, lt, le, eq or ne)`, r);
    node.relation = rel;
  }

  // Tests and blocks.
  if (def.tests === undefined && c.tests.length > 0) {
    // "keep\ndiscard;" reads as keep with the test "discard": most likely a missing ';'.
    ctx.error(kind === 'command' && !c.testList ? `expected ';' after '${c.name}' (before '${c.tests[0].name}')` : `${c.name}: does not take a test`, c.tests[0]);
  }
  if (def.tests === 'one' && c.tests.length !== 1) ctx.error(c.tests.length === 0 ? `${c.name}: needs a test` : `${c.name}: takes one test (combine tests with allof or anyof)`, c);
  if (def.tests === 'list' && c.tests.length === 0) ctx.error(`${c.name}: needs a list of tests`, c);
  node.tests = c.tests.map((t) => checkNode(t, 'test', ctx, available, decode));
  if (kind === 'command') {
    if (def.block && !c.block) ctx.error(`${c.name}: needs a block "{ ... }"`, c);
    if (!def.block && c.block) ctx.error(`${c.name}: does not take a block (missing ';'?)`, c);
  }
  def.check?.(node, ctx);
  return node;
}

function fits(a: Arg, t: 'string' | 'stringlist' | 'number'): boolean {
  if (t === 'string') return a.kind === 'string';
  if (t === 'stringlist') return a.kind === 'string' || a.kind === 'list';
  return a.kind === 'number';
}

function typeName(t: 'string' | 'stringlist' | 'number'): string {
  return t === 'stringlist' ? 'string list' : t;
}

/** RFC 5228 §2.4.2.4: encoded characters are decoded when the script is read, before variables are expanded. */
function decodeArg(a: Arg, ctx: CheckContext): Arg {
  const one = (s: StringArg): StringArg => {
    const r = decodeEncodedCharacters(s.value);
    if (typeof r !== 'string') ctx.error(r.error, s);
    return { ...s, value: r };
  };
  if (a.kind === 'string') return one(a);
  if (a.kind === 'list') return { ...a, items: a.items.map(one) };
  return a;
}

/**
 * RFC 5229 §3: a reference to a namespace whose extension is not required is an error; the only namespace we have
 * is "global" (RFC 6609 §3.4.2, with require "include").
 */
function checkNamespaces(a: Arg, ctx: CheckContext): void {
  const strings = a.kind === 'string' ? [a] : a.kind === 'list' ? a.items : [];
  for (const s of strings) {
    for (const m of s.value.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z0-9_.]*)\}/g)) {
      const ns = m[1].toLowerCase();
      if (ns !== 'global') ctx.error(`unknown variable namespace '${m[1]}' in "${m[0]}"`, s);
      if (!ctx.has('include')) ctx.error(`"${m[0]}": the "global" namespace needs require "include"`, s);
    }
  }
}
