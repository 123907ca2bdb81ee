/**
 * How a command or test is declared: the tagged and positional arguments it takes (checked at compile time,
 * RFC 5228 §2.6 and the argument syntax of each RFC), the capability that enables it, and what it does at run time.
 * Each extension under ext/ exports its definitions; validate.ts checks scripts against them and interpreter.ts
 * runs them.
 */
import type { Arg, Pos, StringArg } from './parser.js';
import type { Runtime } from './runtime.js';

export type ArgType = 'string' | 'stringlist' | 'number';

export interface TagSpec {
  /** The argument that follows the tag, if it takes one. */
  value?: ArgType;
  /** The capability that must be required to use this tag. */
  ext?: string;
  /** Tags of one group exclude one another (match types, address parts, comparators ...). */
  group?: string;
}

/** A checked command or test. */
export interface Node extends Pos {
  name: string;
  /** Tag name (lower case, without ':') to its value argument, or true for a tag without one. */
  tags: Map<string, Arg | true>;
  tagPos: Map<string, Pos>;
  /** Positional arguments after the tags. */
  pos: Arg[];
  tests: Node[];
  block?: Node[];
  /** An "if": its elsif branches and else, in order (elsif and else are folded into the if by validate.ts). */
  branches?: { test?: Node; block: Node[] }[];
  /** Common arguments resolved at compile time (RFC 5228 §2.7). */
  comparator: string;
  matchType: string;
  /** RFC 5231 relational operator for :count/:value ("gt", "ge", ...). */
  relation?: string;
  addressPart: string;
  /** Free for an extension to keep what it worked out at compile time. */
  extra?: Record<string, unknown>;
}

export interface CheckContext {
  /** The capabilities the script required so far. */
  has(ext: string): boolean;
  error(message: string, at: Pos): never;
  /** True when compiling a script for include (RFC 6609). */
  included: boolean;
}

export interface Def {
  kind: 'command' | 'test';
  /** The capability that must be required (RFC 5228 §3.2); none for the base language. */
  ext?: string;
  tags?: Record<string, TagSpec>;
  /** Positional arguments; the last `optional` of them may be left out. */
  pos: ArgType[];
  optional?: number;
  /** The optional arguments are the first ones (setflag's variable name), not the last. */
  leadingOptional?: boolean;
  /** For tests that take tests (allof, anyof, not) and for if/elsif. */
  tests?: 'one' | 'list';
  block?: boolean;
  /** Further checks and normalisation (e.g. moving an optional leading argument) at compile time. */
  check?(node: Node, ctx: CheckContext): void;
  run?(node: Node, rt: Runtime): Promise<void> | void;
  test?(node: Node, rt: Runtime): Promise<boolean> | boolean;
}

export type Defs = Record<string, Def>;

// RFC 5228 §2.7.3, §2.7.1, §2.7.4; RFC 5231 §4 (:count, :value); RFC 5233 §4 (:user, :detail).
export const COMPARATOR_TAG: Record<string, TagSpec> = { comparator: { value: 'string', group: 'comparator' } };
export const MATCH_TAGS: Record<string, TagSpec> = {
  is: { group: 'match' },
  contains: { group: 'match' },
  matches: { group: 'match' },
  count: { value: 'string', ext: 'relational', group: 'match' },
  value: { value: 'string', ext: 'relational', group: 'match' },
};
export const ADDRESS_PART_TAGS: Record<string, TagSpec> = {
  all: { group: 'addresspart' },
  localpart: { group: 'addresspart' },
  domain: { group: 'addresspart' },
  user: { ext: 'subaddress', group: 'addresspart' },
  detail: { ext: 'subaddress', group: 'addresspart' },
};
// RFC 5260 §6: :index and :last on header, address and date.
export const INDEX_TAGS: Record<string, TagSpec> = {
  index: { value: 'number', ext: 'index' },
  last: { ext: 'index' },
};

export function strArg(a: Arg | true | undefined): StringArg | undefined {
  return a !== undefined && a !== true && a.kind === 'string' ? a : undefined;
}

export function listArg(a: Arg | true | undefined): StringArg[] {
  if (a === undefined || a === true) return [];
  if (a.kind === 'string') return [a];
  if (a.kind === 'list') return a.items;
  return [];
}

export function numArg(a: Arg | true | undefined): number | undefined {
  return a !== undefined && a !== true && a.kind === 'number' ? a.value : undefined;
}

/** RFC 6609 §3.4 / RFC 5228 §3.3: control-flow signals unwinding the interpreter. */
export class StopSignal {
  constructor(readonly kind: 'stop' | 'return') {}
}
