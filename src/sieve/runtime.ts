/**
 * What a command or test sees while a script runs (implemented by interpreter.ts). Kept as an interface so that
 * each extension file depends on this narrow surface and not on the interpreter's internals.
 */
import type { Arg, Pos, StringArg } from './parser.js';
import type { Node } from './registry.js';
import type { SieveAction, SieveEnvironment, SieveHeaderField, SieveMessage } from './types.js';

export interface Runtime {
  readonly msg: SieveMessage;
  readonly env: SieveEnvironment;
  readonly now: Date;
  /** The local zone for date tests without :zone, "+hhmm". */
  readonly zone: string;
  /** RFC 5229: a string with ${...} expanded when "variables" is in effect (the string as is otherwise). */
  expand(s: StringArg): string;
  expandList(a: Arg | true | undefined): string[];
  /** RFC 5228 §2.7: compares values with keys by the node's comparator, match type and relation. */
  match(node: Node, values: string[], keys: string[]): boolean;
  /** RFC 5231 §4.2 :count — compares the number of values with the keys. */
  matchCount(node: Node, count: number, keys: string[]): boolean;
  /** Adds an action, checking limits and RFC 5228 §2.10 / RFC 5429 conflicts. */
  addAction(action: SieveAction, at: Pos): void;
  cancelImplicitKeep(): void;
  /** RFC 5232 §3: the internal flags variable, and named flag variables (with "variables"). */
  getFlags(variable?: string): string[];
  setFlags(flags: string[], variable?: string): void;
  /** RFC 5229 variables (names are case-insensitive). */
  getVar(name: string): string;
  setVar(name: string, value: string, at: Pos): void;
  /** RFC 6609 §3.3: makes a name refer to the global variable. */
  declareGlobal(name: string, at: Pos): void;
  /** Header access seeing editheader's changes (RFC 5293 §5 sees the edited message). */
  headers(name: string): string[];
  rawHeaders(name: string): string[];
  /** The working copy of the header for editheader. */
  editableHeader(): SieveHeaderField[];
  /** RFC 6609 include. */
  include(name: string, location: 'personal' | 'global', once: boolean, optional: boolean, at: Pos): Promise<void>;
  /** RFC 7352: in-run duplicate bookkeeping and the ids to record. */
  duplicateCheck(id: string, seconds: number, last: boolean): Promise<boolean>;
  error(message: string, at: Pos): never;
  log(message: string): void;
  /** Whether the script required a capability. */
  has(ext: string): boolean;
  /** RFC 5228 §3.3 stop / RFC 6609 return. */
  stop(kind: 'stop' | 'return'): never;
}
