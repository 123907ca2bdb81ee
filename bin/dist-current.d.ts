export const BUILT_STAMP: string;
/** See dist-current.js. */
export function distIsCurrent(root: string): boolean;
